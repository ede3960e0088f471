"""``python -m vsearch``: the CLI, for launchers that take a module (``torchrun -m vsearch train ...``)."""

from vsearch_cli.main import run

if __name__ == "__main__":
    run()
