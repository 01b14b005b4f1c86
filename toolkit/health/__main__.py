"""`python -m toolkit.health serve …`: the `kgt health` group without the rest of the CLI."""

from toolkit.health.commands import health

if __name__ == "__main__":
    health(prog_name="kgt health")
