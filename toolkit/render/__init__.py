"""Rendering: every per-host config of a topology, written atomically with a manifest."""
