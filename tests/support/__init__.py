"""Reusable test harnesses: real services started by fixtures (see loopback_galera)."""
