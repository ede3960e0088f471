"""`vsearch status`, `thumbnails`, `list`, `remove`, `reindex`, `check`, `reembed`: inspecting and
keeping a store (`vsearch index` is in ``index_cmd``, registered first so it leads the help)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from . import index_cmd  # noqa: F401 - registers `vsearch index` before the commands below
from .app import app
from .common import (
    EXIT_INTERRUPTED,
    BaseOpt,
    DeviceOpt,
    JsonOpt,
    StoreOpt,
    WaitOpt,
    console,
    err_console,
    graceful_stop,
    handle_errors,
    human_bytes,
    human_seconds,
    print_json,
)
from .progress import IndexProgressBar


@app.command()
@handle_errors
def status(
    store: StoreOpt = None,
    failures: Annotated[bool, typer.Option("--failures", help="List the files that failed to index, with reasons.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Show what the store holds: encoder, videos, segments, index, sizes, last run.

    Example: [bold]vsearch status --failures[/]
    """
    from vsearch.store import Store
    from vsearch.video import display_path

    with Store.open(store, create=False) as st:
        info = {**st.status(), "sampling": st.sampling()}
        failed = st.failures() if failures else []
    for f in failed:
        f["path"] = display_path(f["path"])
    if as_json:
        print_json({**info, **({"failure_list": failed} if failures else {})})
        return
    t = Table(show_header=False, box=None, pad_edge=False)
    t.add_column(style="bold")
    t.add_column()
    t.add_row("store", escape(info["store"]))
    enc = info["encoder"]
    if enc:
        t.add_row("encoder", escape(f"{enc['name']} ({enc['family']})"))
        t.add_row("fingerprint", enc["fingerprint"])
        t.add_row("dim / frames / px", f"{enc['dim']} / {enc['frames']} / {enc['image_size']}")
    else:
        t.add_row("encoder", "none yet (empty store)")
    t.add_row("videos", f"{info['videos']} ({human_seconds(info['video_seconds'])} of video)")
    if info["segmenter"] == "shots":
        t.add_row("segments", f"{info['segments']} (cut at shots, split past {info['segment_seconds']:g} s; --segments shots)")
    else:
        t.add_row("segments", f"{info['segments']} (fixed {info['segment_seconds']:g} s windows; --segments fixed)")
    if info["sampling"]:
        t.add_row("sampling", info["sampling"] + (" (keyframes where the GOPs allow)" if info["sampling"] != "exact" else ""))
    idx = info["index"]
    t.add_row(
        "index",
        f"{idx['kind']}, file at generation {idx['file_generation']} (store at {info['generation']}), {human_bytes(idx['bytes'])}",
    )
    p = idx.get("params") or {}
    if "recall_at_10" in p:
        # Per build: what it reached on held-out queries, how it searches, how long it took.
        tuned = f"recall@10 {p['recall_at_10']:.3f} against exact at nprobe {p.get('nprobe')} of {p.get('nlist')} lists"
        trained = f"trained on {p['trained_on']:,} vectors" if "trained_on" in p else ""
        built = f"built in {p['build_s']:g} s" if "build_s" in p else ""
        t.add_row("", ", ".join(x for x in (tuned, trained, built) if x))
        drift = p.get("drift") or []
        if drift:
            d = drift[-1]
            t.add_row("", f"last drift check at {d['vectors']:,} vectors: recall@10 {d['recall_at_10']:.3f}, {d['action']}")
    if idx.get("problem"):
        t.add_row("", f"[red]damaged:[/] {escape(idx['problem'])}; run [bold]vsearch check --repair[/]")
    t.add_row("database", human_bytes(info["database_bytes"]))
    t.add_row("failures", str(info["failures"]) + ("" if failures or not info["failures"] else "  (see --failures)"))
    last = info["last_run"]
    if last:
        counts = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in last["counts"].items())
        when = f"{last['status']} at {last['finished_at']}" if last.get("finished_at") else f"{last['status']} (started {last['started_at']})"
        t.add_row("last run", f"{when}: {counts}")
    console.print(t)
    if idx.get("problem"):
        err_console.print(
            f"[yellow]warning:[/] the index file is damaged ({escape(idx['problem'])}); run vsearch check --repair.",
            soft_wrap=True,
        )
    for f in failed:
        console.print(f"[red]failed[/] {escape(f['path'])}: {escape(f['reason'])}", soft_wrap=True)


@app.command()
@handle_errors
def thumbnails(
    store: StoreOpt = None,
    rebuild: Annotated[
        bool, typer.Option("--rebuild", help="Also replace thumbnails narrower than 320 px (stores indexed before they were).")
    ] = False,
    wait: WaitOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Make the thumbnails a store lacks (stores indexed before thumbnails, or with --no-thumbnails).

    One frame per segment is decoded at thumbnail size (the middle of the frames the encoder saw).
    Example: [bold]vsearch thumbnails --rebuild --store /tmp/demo[/]
    """
    from rich.progress import Progress

    from vsearch.store import Store
    from vsearch.thumbnails import make_thumbnails

    with Store.open(store, create=False) as st, st.lock("thumbnails", wait=wait):
        with Progress(console=err_console, disable=as_json) as bar:
            task = bar.add_task("thumbnails", total=None)
            made, failed = make_thumbnails(
                st, rebuild=rebuild, on_progress=lambda done, total: bar.update(task, completed=done, total=total)
            )
    if as_json:
        print_json({"made": made, "failed": failed})
    else:
        console.print(f"made {made} thumbnail(s)" + (f"; {failed} segment(s) could not be decoded" if failed else "") + ".")


@app.command("list")
@handle_errors
def list_cmd(
    under: Annotated[Path | None, typer.Argument(help="Only videos under this folder.", show_default=False)] = None,
    store: StoreOpt = None,
    missing: Annotated[bool, typer.Option("--missing", help="Only videos whose file is gone from disk.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """List the videos in the store: duration, segments, when indexed, and whether the file is still there.

    Example: [bold]vsearch list --missing[/]
    """
    from vsearch.store import Store
    from vsearch.video import display_path

    with Store.open(store, create=False) as st:
        videos = st.list_videos(str(under) if under else None)
    if missing:
        videos = [v for v in videos if not v["exists"]]
    for v in videos:
        v["path"] = display_path(v["path"])
    if as_json:
        print_json(videos)
        return
    t = Table(title=f"{len(videos)} video(s)" + (" whose file is missing" if missing else ""))
    for col, just in (("video", "left"), ("duration", "right"), ("segments", "right"), ("indexed", "left"), ("file", "left")):
        t.add_column(col, justify=just, overflow="fold" if col == "video" else "ellipsis")
    for v in videos:
        t.add_row(
            escape(v["path"]), human_seconds(v["duration"]), str(v["segments"]), v["indexed_at"] or "",
            "ok" if v["exists"] else "[red]missing[/]",
        )  # fmt: skip
    console.print(t)


@app.command()
@handle_errors
def remove(
    paths: Annotated[list[Path], typer.Argument(help="Video files, or folders whose videos to remove.", show_default=False)],
    store: StoreOpt = None,
    wait: WaitOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Remove videos from the store and its index (the files on disk are not touched).

    Example: [bold]vsearch remove ~/Videos/old[/]
    """
    from vsearch.store import Store
    from vsearch.video import display_path

    with Store.open(store, create=False) as st, st.lock("remove", wait=wait):
        removed = st.remove_paths([str(p) for p in paths])
        st.save_index()
    if as_json:
        print_json({"removed": [display_path(p) for p in removed]})
    else:
        for p in removed:
            console.print(f"removed {escape(display_path(p))}")
        if removed:
            console.print(f"{len(removed)} video(s) removed.")
    if not removed:
        from vsearch.errors import ConfigError

        names = ", ".join(str(p) for p in paths)
        raise ConfigError(f"{names}: not in the store (nothing was removed); see vsearch list.")


@app.command()
@handle_errors
def reindex(
    store: StoreOpt = None,
    kind: Annotated[
        str, typer.Option("--index", help="keep (the current kind), auto (by size), flat (exact), ivf, or ivf-pq (smallest).")
    ] = "keep",
    nlist: Annotated[int | None, typer.Option(help="IVF lists (default: 4*sqrt(N) as a power of two).")] = None,
    nprobe: Annotated[
        int | None, typer.Option(help="IVF lists searched per query (default: tuned for recall@10 >= 0.95).")
    ] = None,
    wait: WaitOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Rebuild the FAISS index from the vectors in the database, optionally as another kind.

    Example: [bold]vsearch reindex --index ivf-pq[/]
    """
    from vsearch.store import Store

    with Store.open(store, create=False) as st, st.lock("reindex", wait=wait):
        result = st.rebuild_index(None if kind == "keep" else kind, nlist=nlist, nprobe=nprobe)
    if as_json:
        print_json(result)
        return
    extra = ", ".join(f"{k} {v}" for k, v in result.items() if k not in ("kind", "vectors"))
    console.print(f"rebuilt the index: {result['vectors']} vectors, {result['kind']}" + (f" ({extra})" if extra else ""))


@app.command()
@handle_errors
def check(
    store: StoreOpt = None,
    repair: Annotated[
        bool, typer.Option("--repair", help="Fix what is found: rebuild the index, drop half-written videos.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Check that the FAISS index and the database agree, and that no video is half-written.

    The database itself is checked first (SQLite's integrity_check): a damaged one is reported
    in one line, and --repair salvages every row SQLite can still read into a new database
    (the damaged file is kept beside it, renamed), then rebuilds the index.
    Exit code 1 when a problem is found (and not repaired).
    Example: [bold]vsearch check --repair[/]
    """
    from vsearch.store import Store, database_problem, recover_locked

    folder, damaged = database_problem(store)
    salvaged = None
    if damaged:
        if not repair:
            if as_json:
                print_json({"ok": False, "repaired": False, "damaged": damaged})
            else:
                err_console.print(f"[red]damaged:[/] {escape(damaged)} (run [bold]vsearch check --repair[/])", soft_wrap=True)
            raise typer.Exit(1)
        salvaged = recover_locked(folder)
        if not as_json:
            copied = salvaged.copied
            err_console.print(
                f"recovered {copied.get('videos', 0)} videos, {copied.get('segments', 0)} segments and "
                f"{copied.get('embeddings', 0) - salvaged.dropped.get('embeddings', 0)} vectors from the damaged database "
                f"(kept at {escape(salvaged.kept_at)}); videos that lost rows are indexed again by the next `vsearch index`",
                soft_wrap=True,
            )
    with Store.open(folder, create=False) as st, (st.lock("check", wait=True) if repair else contextlib.nullcontext()):
        report = st.check(repair=repair)
    data = {
        "ok": report.ok,
        "repaired": report.repaired,
        "generation": report.generation,
        "index_file_generation": report.index_file_generation,
        "db_vectors": report.db_vectors,
        "index_vectors": report.index_vectors,
        "only_in_index": report.only_in_index[:100],
        "only_in_db": report.only_in_db[:100],
        "segments_without_vector": report.segments_without_vector[:100],
        "videos_without_segments": report.videos_without_segments[:100],
        "index_file_problem": report.index_file_problem,
        "without_thumbnail": report.without_thumbnail,
        "orphan_thumbnails": report.orphan_thumbnails,
    }
    if salvaged is not None:
        data.update(damaged=damaged, salvage=salvaged.as_dict(), repaired=True)
    if as_json:
        print_json(data)
    else:
        verdict = "[green]consistent[/]" if report.ok else ("[yellow]repaired[/]" if report.repaired else "[red]inconsistent[/]")
        console.print(
            f"{verdict}: {report.db_vectors} vectors in the database, {report.index_vectors} in the index (generation {report.generation})"
        )
        if report.index_file_problem:
            console.print(
                f"  index file: {escape(report.index_file_problem)}" + (" (rebuilt from the database)" if report.repaired else "")
            )
        for key in ("only_in_index", "only_in_db", "segments_without_vector", "videos_without_segments"):
            if data[key]:
                console.print(f"  {key.replace('_', ' ')}: {len(getattr(report, key))} ({data[key][:10]}...)")
        if report.without_thumbnail:
            console.print(f"  {report.without_thumbnail} segment(s) have no thumbnail ([bold]vsearch thumbnails[/] makes them)")
        if not report.ok and not repair:
            console.print("run [bold]vsearch check --repair[/] to rebuild the index from the database")
    if not report.ok and not report.repaired and salvaged is None:
        raise typer.Exit(1)


@app.command()
@handle_errors
def reembed(
    model: Annotated[
        str, typer.Option("--model", "-m", help="The new model (e.g. the folder `vsearch train` wrote).", show_default=False)
    ],
    store: StoreOpt = None,
    base: BaseOpt = None,
    workers: Annotated[int | None, typer.Option(help="Decoder processes.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Segments per encoder batch.")] = None,
    decode_timeout: float = 120.0,
    wait: WaitOpt = False,
    restart: Annotated[
        bool, typer.Option("--restart", help="Discard an interrupted re-embedding into another model first.")
    ] = False,
    device: DeviceOpt = "auto",
    as_json: JsonOpt = False,
) -> None:
    """Re-embed every video of the store with a new model; searches keep working until the switch.

    The new vectors are built beside the old ones and swapped in one transaction when all are done.
    Interrupted? Run the same command again: finished videos are skipped.
    Example: [bold]vsearch reembed --model runs/my-finetuned-model[/]
    """
    from vsearch.models import load_encoder
    from vsearch.reembed import reembed as run_reembed
    from vsearch.store import Store
    from vsearch.video import display_path

    with Store.open(store, create=False) as st, st.lock("reembed", wait=wait):
        with err_console.status(f"loading model {model} ..."):
            encoder = load_encoder(model, device=device, base=base)
        with graceful_stop("stopping after the files in progress; run the command again to continue") as stop:
            with IndexProgressBar(err_console, enabled=not as_json, label="re-embedding") as bar:
                rep = run_reembed(
                    st, encoder, workers=workers, batch_size=batch_size, decode_timeout=decode_timeout,
                    wait=wait, stop=stop, progress=bar, restart=restart,
                )  # fmt: skip
    data = {
        "videos": rep.videos,
        "segments": rep.segments,
        "skipped": rep.skipped,
        "swapped": rep.swapped,
        "interrupted": rep.interrupted,
        "failed": [{"path": display_path(p), "reason": r} for p, r in rep.failed],
        "dropped": [display_path(p) for p in rep.dropped],
        "seconds": round(rep.seconds, 2),
    }
    if as_json:
        print_json(data)
    else:
        if rep.swapped:
            console.print(
                f"re-embedded {rep.videos} videos ({rep.segments} segments, {rep.skipped} already done); the store now uses {escape(encoder.name)}"
            )
        elif rep.interrupted:
            console.print(f"[yellow]interrupted[/] after {rep.videos} videos; run the same command again to continue")
        else:
            console.print("nothing to do: the store already uses this model")
        for p, r in rep.failed:
            console.print(f"[yellow]skipped[/] {escape(display_path(p))}: {escape(r)}", soft_wrap=True)
    if rep.interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)
