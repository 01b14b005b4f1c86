"""The Docker lab: a rendered topology booted for real, one container per host."""
