"""Delivering a site's files through etcd: `kgt publish` writes generations, `kgt agent` applies them on each host.

`keys` is the layout in etcd, `credentials` what each host logs in and decrypts with,
`manifest` what a generation says about each file, `publish` the writer, `agent` the
host side, `status` what `kgt rollout status|wait` read back.
"""
