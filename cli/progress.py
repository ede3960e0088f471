"""A rich progress bar for `vsearch index` (implements ``vsearch.ingest.Progress``)."""

from __future__ import annotations

import time

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class IndexProgressBar:
    """Files done / total with ETA, segments embedded, throughput, current file. On stderr."""

    def __init__(self, console: Console, enabled: bool = True, label: str = "indexing"):
        self.enabled = enabled
        self._progress = Progress(
            TextColumn(f"[bold]{label}"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[segments]} segments · {task.fields[rate]} seg/s"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn("[dim]{task.fields[current]}", justify="left"),
            console=console,
            transient=False,
            disable=not enabled,
        )
        self._task = None
        self._segments = 0
        self._t0 = time.monotonic()

    def __enter__(self) -> IndexProgressBar:
        self._progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._progress.__exit__(*exc)

    def start(self, total_files: int) -> None:
        self._t0 = time.monotonic()
        self._task = self._progress.add_task("index", total=total_files, segments=0, rate="0.0", current="")

    def update(self, *, files: int = 0, segments: int = 0, new_segments: int = 0, current: str | None = None) -> None:
        if self._task is None:
            return
        self._segments += segments
        elapsed = max(time.monotonic() - self._t0, 1e-6)
        fields = {"segments": self._segments, "rate": f"{self._segments / elapsed:.1f}"}
        if current is not None:
            fields["current"] = escape(current[-40:])
        self._progress.update(self._task, advance=files, **fields)
