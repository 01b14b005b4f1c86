"""The Galera-aware health endpoint HAProxy checks (`kgt health serve`): 200 or 503 per node.

`status` holds the wsrep values, the verdict per path and the query that fetches them;
`server` answers HTTP within a deadline; `commands` is the `kgt health` click group.
"""
