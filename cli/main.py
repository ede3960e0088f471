"""Entry point of the `vsearch` console script.

Command modules register themselves on ``app``; they import ``vsearch`` (and torch) only inside
command bodies, so `vsearch --help` and `vsearch models` start fast.
"""

from . import clip_cmd, eval_cmd, models_cmd, search_cmd, store_cmds, synth, train_cmd  # noqa: F401 - registers commands
from .app import app


def run() -> None:
    from vsearch.perf import freeze_for_exit

    try:
        app()
    finally:
        freeze_for_exit()  # (1 s less at exit once torch is loaded)


if __name__ == "__main__":
    run()
