"""`vsearch search`: find videos by text."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from .app import app
from .common import BaseOpt, DeviceOpt, JsonOpt, ModelOpt, StoreOpt, console, err_console, handle_errors, print_json


@app.command()
@handle_errors
def search(
    query: Annotated[str | None, typer.Argument(help="What to find, in words.", show_default=False)] = None,
    image: Annotated[
        Path | None, typer.Option("--image", help="Search by a picture instead (embedded as a one-frame video).")
    ] = None,
    like: Annotated[
        str | None, typer.Option("--like", help="Search by a moment of an indexed video: VIDEO@SECONDS (e.g. a.mp4@12.5).")
    ] = None,
    k: Annotated[int, typer.Option("-k", "--top", help="How many results.")] = 10,
    segments: Annotated[
        bool, typer.Option("--segments", help="List raw segments instead of one best segment per video.")
    ] = False,
    rerank: Annotated[
        int,
        typer.Option(
            "--rerank", help="Re-score the best N segments with the model's re-ranker (X-CLIP's video-conditioned prompts)."
        ),
    ] = 0,
    refine: Annotated[
        bool,
        typer.Option(
            "--refine/--no-refine",
            help="Widen each hit's segment to the moment: the neighbouring segments that match as well (on by default).",
        ),
    ] = True,
    export: Annotated[
        Path | None, typer.Option("--export", help="Also write each hit's moment as a video file into this folder.")
    ] = None,
    not_: Annotated[
        list[str] | None,
        typer.Option("--not", help="Move results away from this description (repeatable): \"a beach\" --not \"people\"."),
    ] = None,
    within: Annotated[
        list[str] | None, typer.Option("--in", help="Only videos in this folder or this file (repeatable).")
    ] = None,
    min_duration: Annotated[float | None, typer.Option("--min-duration", help="Only videos at least this long (seconds).")] = None,
    max_duration: Annotated[float | None, typer.Option("--max-duration", help="Only videos at most this long (seconds).")] = None,
    after: Annotated[
        str | None, typer.Option("--after", help="Only videos recorded on or after this date (YYYY, YYYY-MM, YYYY-MM-DD, ISO; UTC).")
    ] = None,
    before: Annotated[str | None, typer.Option("--before", help="Only videos recorded before this date (same forms).")] = None,
    store: StoreOpt = None,
    model: ModelOpt = None,
    base: BaseOpt = None,
    device: DeviceOpt = "auto",
    as_json: JsonOpt = False,
) -> None:
    """Search the store by text: the best matching videos, with the time range that matched.

    Example: [bold]vsearch search "a dog catches a frisbee" -k 5[/]
    Each hit shows its moment (the matched segment widened to the neighbours that match as well);
    [bold]--segments[/] lists each segment's own range beside its moment, [bold]--no-refine[/] skips moments.
    Also: [bold]vsearch search --image photo.jpg[/], [bold]vsearch search --like holiday.mp4@12.5[/],
    [bold]vsearch search "at night" --image photo.jpg[/] (both at once),
    [bold]vsearch search "a beach" --not "people" --in ~/Videos/2024 --after 2024-06 --max-duration 120[/]
    """
    from vsearch.errors import QueryError
    from vsearch.filters import SearchFilter
    from vsearch.search import load_store_encoder, precheck, search_image, search_like
    from vsearch.search import search as run_search
    from vsearch.store import Store

    if like is not None and (query is not None or image is not None):
        raise QueryError("--like is a query of its own: leave out the words and --image")
    if query is None and image is None and like is None:
        raise QueryError('give a query: words, --image PHOTO, or --like VIDEO@SECONDS (e.g. vsearch search "a red circle")')
    if not_ and query is None and image is None:
        raise QueryError("--not needs words or --image to move away from")
    flt = SearchFilter.parse(within or (), min_duration, max_duration, after, before)  # refused before a model loads
    with Store.open(store, create=False) as st:
        if like is not None:
            from vsearch.image_query import parse_moment

            path, seconds = parse_moment(like)
            sid = st.segment_at(path, seconds)
            if sid is None:
                raise QueryError(f"{path} at {seconds:g} s is not in the store (index it first; see vsearch list)")
            resp = search_like(st, sid, k, segments=segments, filters=flt, refine=refine)
        elif query is None:
            from vsearch.image_query import load_image

            pixels = load_image(image)  # a bad image is refused before the model loads
            precheck(st, "image", k, model=model)
            encoder = load_store_encoder(st, model, device, base=base)
            if not_:
                resp = run_search(
                    st, "", k, encoder=encoder, segments=segments, filters=flt, negatives=not_, image=pixels, refine=refine
                )
            else:
                resp = search_image(st, pixels, k, encoder=encoder, segments=segments, filters=flt, refine=refine)
        else:
            pixels = None
            if image is not None:
                from vsearch.image_query import load_image

                pixels = load_image(image)
            precheck(st, query, k, model=model, rerank=rerank)  # seconds before a model loads, not after
            encoder = load_store_encoder(st, model, device, base=base, query_only=not rerank and pixels is None)
            resp = run_search(
                st, query, k, encoder=encoder, segments=segments, rerank=rerank, filters=flt, negatives=not_ or (), image=pixels,
                refine=refine,
            )  # fmt: skip
    for w in resp.warnings:
        # "0 results: ..." is an answer, not a problem: said plainly, exit 0.
        err_console.print(escape(w) if w.startswith("0 results") else f"[yellow]warning:[/] {escape(w)}", soft_wrap=True)
    exported = _export(resp.hits, export) if export else {}
    if as_json:
        print_json(
            [{**h.as_dict(), **({"export": exported[h.segment_id]} if h.segment_id in exported else {})} for h in resp.hits]
        )
        return
    q = resp.query if len(resp.query) <= 60 else resp.query[:57] + "..."
    shown = f"{len(resp.hits)} segment(s)" if segments else f"{len(resp.hits)} video(s), best segment each"
    table = Table(title=f"“{escape(q)}” · {shown} · {resp.searched} segments searched · {resp.took_ms:.0f} ms")
    table.add_column("#", justify="right")
    table.add_column("score", justify="right")
    table.add_column("segment" if segments else "time", no_wrap=True)
    if segments:
        table.add_column("moment", no_wrap=True)
    table.add_column("recorded", no_wrap=True)
    table.add_column("video", overflow="fold")
    for i, h in enumerate(resp.hits, 1):
        d = h.as_dict()
        seg = f" (segment {h.segment})" if segments else ""
        gone = " [red](missing)[/]" if h.missing else ""
        when = (d["recorded_at"] or "")[:10]
        times = [d["range"], d["moment_range"] or ""] if segments else [_moment_cell(d)]
        table.add_row(str(i), f"{h.score:.3f}", *times, when, escape(_short(d["path"])) + seg + gone)
    console.print(table)


def _moment_cell(d: dict) -> str:
    """The moment, and the best segment's own range beside it where the two differ."""
    if d["moment_range"] is None or d["moment_range"] == d["range"]:
        return d["range"]
    return f"{d['moment_range']} [dim](best {d['range']})[/]"


def _export(hits, folder: Path) -> dict[int, str]:
    """Cut every hit's moment (its segment without one) into ``folder`` (NN_name_MMSS-MMSS.mp4); a missing
    file is skipped with a warning."""
    import os

    from vsearch.errors import VsearchError
    from vsearch.video.cut import cut

    done = {}
    for i, h in enumerate(hits, 1):
        stem = os.path.splitext(os.path.basename(h.path))[0]
        a, b = (h.start, h.end) if h.moment_start is None else (h.moment_start, h.moment_end)
        name = f"{i:02d}_{stem}_{int(a) // 60:02d}{int(a) % 60:02d}-{int(b) // 60:02d}{int(b) % 60:02d}.mp4"
        try:
            done[h.segment_id] = cut(h.path, folder / name, a, b).path
        except VsearchError as exc:
            err_console.print(f"[yellow]warning:[/] not exported: {escape(str(exc))}", soft_wrap=True)
    if done:
        err_console.print(f"exported {len(done)} moment(s) to {escape(str(folder))}")
    return done


def _short(path: str) -> str:
    """Relative to the working directory when the file is under it: the name is what matters."""
    import os

    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


@app.command()
@handle_errors
def serve(
    store: StoreOpt = None,
    host: Annotated[
        str, typer.Option(help="Address to bind. Anything but loopback exposes your index to the network.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0 picks a free one).")] = 8765,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="VSEARCH_TOKEN",
            help="Require this token on every request (header Authorization: Bearer T, or open /?token=T once).",
            show_envvar=True,
        ),
    ] = None,
    allow_host: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-host",
            help="Also answer requests addressed to this host name (repeatable; * for any). Localhost, 127.0.0.1, "
            "[::1] and --host are always answered; other names are refused (DNS rebinding).",
        ),
    ] = None,
    model: ModelOpt = None,
    device: DeviceOpt = "auto",
) -> None:
    """Serve the search page and JSON API: thumbnails, playback at the moment, search by image.

    Open the printed address in a browser; /api/search?q=... and /openapi.json for scripts.
    Example: [bold]vsearch serve --port 8765[/]  then open [bold]http://127.0.0.1:8765/?q=a+red+circle[/]
    """
    from vsearch.web.app import create_app
    from vsearch.web.guard import allowed_hosts
    from vsearch.web.server import Server, bind, is_loopback
    from vsearch.web.service import SearchService

    sock = bind(host, port)  # a busy port is one line, before the model loads
    if not is_loopback(host):
        warn = "a token is required on every request" if token else "there is no authentication: pass --token"
        err_console.print(
            f"[yellow]warning:[/] binding to {escape(host)}: anyone who can reach this machine can search the store "
            f"and play its videos; {warn}. Other machines must use a name given with --allow-host.",
            soft_wrap=True,
        )
    with err_console.status("loading the store and its model ..."):
        service = SearchService(store, model=model, device=device)
    server = Server(create_app(service, token=token, hosts=allowed_hosts(host, allow_host or ())), sock)
    err_console.print(f"serving {escape(str(service.store.root))} on {server.url}/ (Ctrl-C to stop)", soft_wrap=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
        service.close()
