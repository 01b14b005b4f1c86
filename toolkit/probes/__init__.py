"""Nagios/Icinga probes (`kgt probe …`): one status line with perfdata and exit 0/1/2/3.

Each probe module follows nagiosplugin's resource → metric → context → result →
summary; `runtime` is the edge that applies `-t` and turns every error into UNKNOWN.
See README.md in this folder for the states each probe gives and its perfdata labels.
"""
