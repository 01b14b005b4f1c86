"""The site PKI: a CA and one certificate per host, their names computed from the topology.

`names` says which names each certificate must carry, `authority` makes keys and
certificates, `store` keeps them on disk (`kgt pki init | rotate`), `verify` checks them
against the hosts before rendering, `status` reports them (`kgt pki status`).
"""
