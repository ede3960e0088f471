"""Shared CLI plumbing: options declared once, error mapping, JSON and console output.

Rule: commands parse, call ``vsearch``, render. Library errors (``VsearchError``) become one red
line on stderr and exit code 1; ``--json`` output is plain ``json.dumps`` on stdout; progress
and tables for humans go to stderr and stdout respectively.
"""

from __future__ import annotations

import contextlib
import functools
import json
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

#: Exit code of `vsearch index` when the run finished but some files failed.
EXIT_FILES_FAILED = 3
#: Exit code when a run was interrupted (Ctrl-C) after saving its progress.
EXIT_INTERRUPTED = 130

StoreOpt = Annotated[
    Path | None,
    typer.Option("--store", "-s", help="Store folder (default: $VSEARCH_HOME, else ~/.local/share/vsearch).", show_default=False),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON on stdout (for scripts).")]
ModelOpt = Annotated[
    str | None,
    typer.Option("--model", "-m", help="Model: a name from `vsearch models`, a model folder, or a Hugging Face hub id."),
]
BaseOpt = Annotated[
    str | None,
    typer.Option(
        "--base",
        help="With --model FILE.pt (an official CLIP-ViP checkpoint): the CLIP it was trained from (default: openai/clip-vit-base-patch32).",
    ),
]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto (CUDA when present), cpu, cuda, cuda:1, ...")]
WaitOpt = Annotated[bool, typer.Option("--wait", help="Wait for another writer to finish instead of refusing.")]
#: Recognition (train and eval): how class names become texts, and where the names come from.
PromptOpt = Annotated[
    str | None, typer.Option(help='Class-name template, e.g. "a video of a person {}." (default: the model\'s).')
]
ClassesOpt = Annotated[Path | None, typer.Option("--classes", help="Class names, one per line (when labels are indices).")]
RayOpt = Annotated[
    bool, typer.Option("--ray", help="Decode and encode on Ray (a local Ray, or the cluster in --ray-address / RAY_ADDRESS).")
]
RayAddressOpt = Annotated[
    str | None,
    typer.Option("--ray-address", envvar="RAY_ADDRESS", help="Ray cluster to join with --ray (e.g. ray://head:10001)."),
]


def handle_errors(fn):
    """Turn ``VsearchError`` into a one-line message and an exit code, without a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from vsearch.errors import VsearchError

        try:
            return fn(*args, **kwargs)
        except VsearchError as exc:
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except Exception as exc:
            from vsearch.store.damage import damage_message

            damage = damage_message(exc)
            if damage is None:
                raise  # a bug: keep its traceback
            err_console.print(f"[bold red]error:[/] {escape(damage)}", soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def human_seconds(s: float) -> str:
    s = int(round(s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{sec:02d}s" if m else f"{sec}s")


@contextlib.contextmanager
def graceful_stop(message: str):
    """The first Ctrl-C sets the yielded event (the work stops at its next safe point and saves);
    a second one aborts at once."""
    stop = threading.Event()
    previous = signal.getsignal(signal.SIGINT)

    def on_sigint(signum, frame):
        if stop.is_set():
            signal.signal(signal.SIGINT, previous)
            raise KeyboardInterrupt
        stop.set()
        err_console.print(f"[yellow]{message} (Ctrl-C again to abort now)[/]")

    signal.signal(signal.SIGINT, on_sigint)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)
