"""keystone-galera-toolkit: configs, lab, checks, probes and drills for one Keystone on a geo-distributed Galera cluster."""

__version__ = "0.1.0"
