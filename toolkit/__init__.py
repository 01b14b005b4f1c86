"""keystone-galera-toolkit: configs, lab, checks, probes and drills.

For one OpenStack Keystone on a geo-distributed MariaDB Galera cluster.
"""

__version__ = "0.1.0"
