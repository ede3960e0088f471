"""`vsearch clip`: cut a moment out of a video (what `search --export` does for every hit)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from .app import app
from .common import JsonOpt, console, handle_errors, print_json


@app.command()
@handle_errors
def clip(
    video: Annotated[Path, typer.Argument(help="The video file.", show_default=False)],
    start: Annotated[float, typer.Option("--start", "-s", help="Start, seconds from the first frame.", show_default=False)],
    end: Annotated[float, typer.Option("--end", "-e", help="End, seconds.", show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output file (.mp4, .mkv, ...).", show_default=False)],
    as_json: JsonOpt = False,
) -> None:
    """Write the moment START..END of VIDEO to OUT: stream-copied when START is on a keyframe, re-encoded otherwise.

    Example: [bold]vsearch clip holiday.mp4 --start 10 --end 20 -o moment.mp4[/]
    """
    from vsearch.video.cut import cut

    r = cut(video, out, start, end)
    if as_json:
        print_json({"out": r.path, "start": r.start, "end": r.end, "mode": r.mode})
        return
    how = "stream-copied" if r.mode == "copy" else "re-encoded (the start is not on a keyframe)"
    console.print(f"wrote {escape(r.path)} ({r.start:g}–{r.end:g} s, {how}).")
