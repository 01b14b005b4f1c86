"""`kgt check`: the cluster's quorum as seen from every node, and a Jepsen-style verify workload.

- `nodes`: probe every Galera node in parallel with short deadlines (`NodeResult`).
- `quorum`: the pure evaluation `evaluate(topology, results) -> QuorumVerdict`, shared with
  the Nagios probes; its docstring documents the states and the JSON schema.
- `history`, `workload`, `checker`: `kgt check verify` records a history of operations
  (ok / fail / info) and a checker reads only that history (`kgt check history FILE`
  re-checks a saved one).
- `state` (Nagios states and worst-wins), `stats` (percentiles), `report` (tables),
  `commands` (the click group).
"""
