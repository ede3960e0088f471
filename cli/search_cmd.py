"""`vsearch search`: find videos by text."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from .app import app
from .common import BaseOpt, DeviceOpt, JsonOpt, ModelOpt, StoreOpt, console, err_console, handle_errors, print_json


@app.command()
@handle_errors
def search(
    query: Annotated[str, typer.Argument(help="What to find, in words.", show_default=False)],
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
    store: StoreOpt = None,
    model: ModelOpt = None,
    base: BaseOpt = None,
    device: DeviceOpt = "auto",
    as_json: JsonOpt = False,
) -> None:
    """Search the store by text: the best matching videos, with the time range that matched.

    Example: [bold]vsearch search "a dog catches a frisbee" -k 5[/]
    """
    from vsearch.search import load_store_encoder, precheck
    from vsearch.search import search as run_search
    from vsearch.store import Store

    with Store.open(store, create=False) as st:
        precheck(st, query, k, model=model, rerank=rerank)  # seconds before a model loads, not after
        encoder = load_store_encoder(st, model, device, base=base, query_only=not rerank)
        resp = run_search(st, query, k, encoder=encoder, segments=segments, rerank=rerank)
    for w in resp.warnings:
        err_console.print(f"[yellow]warning:[/] {escape(w)}", soft_wrap=True)
    if as_json:
        print_json([h.as_dict() for h in resp.hits])
        return
    q = resp.query if len(resp.query) <= 60 else resp.query[:57] + "..."
    shown = f"{len(resp.hits)} segment(s)" if segments else f"{len(resp.hits)} video(s), best segment each"
    table = Table(title=f"“{escape(q)}” · {shown} · {resp.searched} segments searched · {resp.took_ms:.0f} ms")
    table.add_column("#", justify="right")
    table.add_column("score", justify="right")
    table.add_column("time", no_wrap=True)
    table.add_column("video", overflow="fold")
    for i, h in enumerate(resp.hits, 1):
        d = h.as_dict()
        seg = f" (segment {h.segment})" if segments else ""
        gone = " [red](missing)[/]" if h.missing else ""
        table.add_row(str(i), f"{h.score:.3f}", d["range"], escape(_short(d["path"])) + seg + gone)
    console.print(table)


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
    model: ModelOpt = None,
    device: DeviceOpt = "auto",
) -> None:
    """Serve search over HTTP (JSON): /search?q=...&k=10, /status. Loads the model once.

    Example: [bold]vsearch serve --port 8765[/]  then  [bold]curl 'http://127.0.0.1:8765/search?q=a+red+circle&k=3'[/]
    """
    from vsearch.serve import SearchService, is_loopback, make_server

    if not is_loopback(host):
        err_console.print(
            f"[yellow]warning:[/] binding to {escape(host)}: anyone who can reach this machine can search the store"
        )
    with err_console.status("loading the store and its model ..."):
        service = SearchService(store, model=model, device=device)
    server = make_server(service, host, port)
    err_console.print(f"serving {escape(str(service.store.root))} on http://{host}:{server.server_address[1]} (Ctrl-C to stop)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        service.close()
