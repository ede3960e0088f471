"""`vsearch index`: building a store from folders of video."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from .app import app
from .common import (
    EXIT_FILES_FAILED,
    EXIT_INTERRUPTED,
    BaseOpt,
    DeviceOpt,
    JsonOpt,
    ModelOpt,
    RayAddressOpt,
    RayOpt,
    StoreOpt,
    WaitOpt,
    console,
    err_console,
    graceful_stop,
    handle_errors,
    human_seconds,
    print_json,
)
from .progress import IndexProgressBar


@app.command()
@handle_errors
def index(
    folders: Annotated[list[Path], typer.Argument(help="Folders (searched recursively) or video files.", show_default=False)],
    store: StoreOpt = None,
    model: ModelOpt = None,
    base: BaseOpt = None,
    workers: Annotated[
        int | None, typer.Option(help="Decoder processes (default: CPU count, at most 4); 0 decodes in-process.")
    ] = None,
    batch_size: Annotated[int | None, typer.Option(help="Segments per encoder batch (default: 8 on CPU, 32 on GPU).")] = None,
    segment_seconds: Annotated[
        float | None,
        typer.Option(help="Segment length: the longest with shots, the window with fixed (default: 10; kept per store)."),
    ] = None,
    segments: Annotated[
        str | None,
        typer.Option(
            "--segments",
            help="shots: segments end at the footage's cuts (a new store's default); fixed: windows. "
            "A store keeps its own unless re-segmented.",
            show_default=False,
        ),
    ] = None,
    resegment: Annotated[
        bool,
        typer.Option(
            "--resegment",
            help="Plan the stored videos again (with the segmenter and length given, if any); re-embed those that change.",
        ),
    ] = False,
    decode_timeout: Annotated[
        float, typer.Option(help="Abandon a file when its decoder makes no progress for this many seconds.")
    ] = 120.0,
    wait: WaitOpt = False,
    reembed_store: Annotated[
        bool, typer.Option("--reembed", help="First re-embed what the store holds with --model (see `vsearch reembed`).")
    ] = False,
    no_thumbnails: Annotated[
        bool, typer.Option("--no-thumbnails", help="Store no thumbnail per segment (the search page then makes them lazily).")
    ] = False,
    use_ray: RayOpt = False,
    ray_address: RayAddressOpt = None,
    sampling: Annotated[
        str,
        typer.Option(
            "--sampling", help="fast: nearest keyframe within half a GOP when the GOPs allow; exact: the uniform frames."
        ),
    ] = "fast",
    device: DeviceOpt = "auto",
    as_json: JsonOpt = False,
) -> None:
    """Index the videos under FOLDERS: new and changed files are embedded, deleted ones removed.

    With nothing changed it answers without loading a model. --sampling fast (the default) takes
    the nearest keyframe for a sampled frame when one lies within half a GOP; exact decodes the
    uniformly spaced frames (what papers' numbers assume). --segments shots (a new store's
    default) ends segments at the footage's cuts and splits long shots evenly; fixed cuts windows.
    Example: [bold]vsearch index ~/Videos --model clip-b32[/]; [bold]vsearch index ~/Videos --resegment --segments shots[/]
    """
    from vsearch.index_command import index_folders

    with graceful_stop("stopping after the files in progress") as stop:
        report = index_folders(
            store, [str(f) for f in folders], model=model, base=base, device=device, reembed=reembed_store,
            user_cache=True,  # later command-line searches and runs may skip the full model
            sampling=sampling, segmenter=segments, resegment=resegment, wait=wait, stop=stop, feedback=_Feedback(as_json),
            workers=workers, batch_size=batch_size, decode_timeout=decode_timeout, segment_seconds=segment_seconds,
            thumbnails=not no_thumbnails, ray=(ray_address or True) if use_ray else None,
        )  # fmt: skip
    if as_json:
        print_json(report.as_dict())
    else:
        _print_index_summary(report)
    if report.interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)
    if report.failed:
        raise typer.Exit(EXIT_FILES_FAILED)


class _Feedback:
    """``vsearch.index_command.Feedback`` on the terminal: a spinner while a model loads, a bar per pass."""

    def __init__(self, quiet: bool):
        self.quiet = quiet

    def loading(self, ref: str):
        return err_console.status(f"loading model {ref} ...")

    def progress(self, label: str):
        return IndexProgressBar(err_console, enabled=not self.quiet, label=label)


def _print_index_summary(report) -> None:
    from vsearch.video import display_path

    c = report.counts()
    table = Table(title="vsearch index", show_header=True, header_style="bold")
    table.add_column("outcome")
    table.add_column("files", justify="right")
    table.add_row("indexed", str(c["indexed"]))
    table.add_row("unchanged", str(c["unchanged"]))
    if c["moved"]:
        table.add_row("moved (kept vectors)", str(c["moved"]))
    table.add_row("removed", str(c["removed"]))
    table.add_row("[red]failed[/]" if c["failed"] else "failed", str(c["failed"]))
    if c["not_video"]:
        kinds = ", ".join(f"{ext or '(no extension)'} {n}" for ext, n in sorted(report.not_video.items(), key=lambda kv: -kv[1]))
        table.add_row("not video (skipped)", f"{c['not_video']} ({kinds})")
    console.print(table)
    rate = c["segments"] / report.seconds if report.seconds > 0 else 0.0
    if not report.model_loaded:
        console.print(f"nothing changed: checked in {human_seconds(report.seconds)} without loading a model")
    else:
        sampled = f", {report.sampling} sampling" if report.sampling and c["indexed"] else ""
        sampled += ", segments cut at shots" if report.segmenter == "shots" and c["indexed"] else ""
        console.print(f"{c['segments']} segments embedded in {human_seconds(report.seconds)} ({rate:.1f} segments/s{sampled})")
    if report.replanned:
        console.print(
            f"re-planned {report.replanned} stored video(s) ({report.segmenter}): {report.resegmented} got new segments "
            f"and were re-embedded, {report.replanned - report.resegmented} kept theirs"
        )
    for path, reason in report.failed:
        console.print(f"[red]failed[/] {escape(display_path(path))}: {escape(reason)}", soft_wrap=True)
    for path, warning in report.warnings:
        console.print(f"[yellow]warning[/] {escape(display_path(path))}: {escape(warning)}", soft_wrap=True)
    if report.interrupted:
        console.print("[yellow]Interrupted.[/] Everything finished so far is saved; run the same command again to continue.")
