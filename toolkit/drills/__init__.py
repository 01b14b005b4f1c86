"""`kgt drill`: Jepsen-style failure drills against a running site (the Docker lab first).

A drill is data: workloads (`workloads`: the verify loop of `kgt check verify` and a
Keystone token loop per region) run for the whole drill while a nemesis (`nemesis`)
injects one fault (`faults`) at a known time and always heals it; monitors record what
the cluster, HAProxy and keepalived say. Everything lands in one history of operations
typed ok / fail / info; the checker (`checker`) reads only that history, compares it with
`kgt analyze`'s prediction for the scenario and the bounds derived from the rendered
configuration, and returns pass / fail / unknown. `report` writes report.json and a
self-contained report.html. Faults reach the site through a `backend.Backend`; the lab's
is `backend.LabBackend`.
"""
