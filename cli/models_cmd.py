"""`vsearch models` and `vsearch embed`: what encoders exist, and raw embeddings for other tools."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from .app import app
from .common import BaseOpt, DeviceOpt, JsonOpt, ModelOpt, RayAddressOpt, RayOpt, console, err_console, handle_errors, print_json


@app.command()
@handle_errors
def models(as_json: JsonOpt = False) -> None:
    """List the encoders this build knows: families and named models.

    Any model folder or Hugging Face hub id also works wherever --model is accepted.
    Example: [bold]vsearch models[/]
    """
    from vsearch.models.catalog import FAMILY_SUMMARY, REGISTRY

    rows = [{"name": e.name, "family": e.family, "summary": e.summary, **e.facts} for e in REGISTRY.values()]
    if as_json:
        print_json({"families": FAMILY_SUMMARY, "models": rows})
        return
    fam = Table(title="families", show_header=True, header_style="bold")
    fam.add_column("family")
    fam.add_column("how it models time")
    for name, summary in FAMILY_SUMMARY.items():
        fam.add_row(name, escape(summary))
    console.print(fam)
    # The name is what a user types: it never truncates. Narrow terminals lose the least
    # needed columns first (all of it stays in --json).
    cols = ["name", "family", "params", "frames", "resolution", "norm", "what"]
    width = console.width
    if width < 140:
        cols.remove("what")
    if width < 100:
        cols.remove("resolution")
        cols.remove("norm")
    t = Table(title="models", show_header=True, header_style="bold")
    name_width = max(len(r["name"]) for r in rows)
    for col in cols:
        if col in ("name", "family"):
            t.add_column(col, no_wrap=True, min_width=name_width if col == "name" else 9)
        else:
            t.add_column(col)
    cell = {"what": "summary"}
    for r in rows:
        t.add_row(*(escape(str(r.get(cell.get(c, c), ""))) for c in cols))
    console.print(t)
    if len(cols) < 7:
        console.print(
            f"(a wider terminal, or --json, shows {', '.join(c for c in ('resolution', 'norm', 'what') if c not in cols)})"
        )


@app.command()
@handle_errors
def embed(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="Video files or folders (searched recursively), e.g. what a shell glob gives.", show_default=False),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Output .npy (a .json sidecar names the rows), or a folder: Parquet shards of every segment "
            "(resumable; load them with vsearch import).",
            show_default=False,
        ),
    ] = None,
    use_ray: RayOpt = False,
    ray_address: RayAddressOpt = None,
    model: ModelOpt = None,
    base: BaseOpt = None,
    videos: Annotated[
        list[Path] | None, typer.Option("--videos", help="Video files or folders (repeat the option; or give them as arguments).")
    ] = None,
    texts: Annotated[list[str] | None, typer.Option("--texts", help="Texts (repeat the option).")] = None,
    texts_file: Annotated[Path | None, typer.Option("--texts-file", help="A file with one text per line.")] = None,
    segments: Annotated[bool, typer.Option("--segments", help="One row per segment instead of one per video.")] = False,
    segment_seconds: Annotated[float, typer.Option(help="Segment length with --segments.")] = 10.0,
    segmenter: Annotated[
        str, typer.Option("--segmenter", help="How --segments cuts: fixed windows, or shots (segments end at cuts).")
    ] = "fixed",
    workers: Annotated[int | None, typer.Option(help="Decoder processes.")] = None,
    sampling: Annotated[
        str, typer.Option("--sampling", help="exact: the uniform frames; fast: the nearest keyframes when the GOPs allow.")
    ] = "exact",
    device: DeviceOpt = "auto",
    as_json: JsonOpt = False,
) -> None:
    """Write L2-normalised embeddings of videos or texts to a .npy file, for notebooks and other tools.

    With --ray, --out is a folder of Parquet shards.
    Example: [bold]vsearch embed clips/*.mp4 --model clip-b32 --out clips.npy[/]
    """
    from vsearch.config import DEFAULT_MODEL
    from vsearch.embedding import embed_texts, embed_videos, write_embeddings
    from vsearch.errors import ConfigError
    from vsearch.models import load_encoder

    if out is None:
        raise ConfigError("give --out FILE.npy (where the embeddings go)")
    if sampling not in ("exact", "fast"):
        raise ConfigError(f"unknown sampling {sampling!r}: use exact or fast")
    if segmenter not in ("fixed", "shots"):
        raise ConfigError(f"unknown segmenter {segmenter!r}: use fixed or shots")
    videos = [*(paths or []), *(videos or [])]
    sources = sum(bool(x) for x in (videos, texts, texts_file))
    if sources != 1:
        raise ConfigError("give exactly one source: video paths (arguments or --videos), --texts, or --texts-file")
    if videos:
        from vsearch.ingest import check_roots
        from vsearch.video.discover import list_videos

        check_roots(videos)
        listing = list_videos(videos)
        videos = [f.path for f in listing.files]
        if not videos:
            raise ConfigError("no video files found in the given paths")
    shards = out.suffix.lower() != ".npy"
    if use_ray and not (shards and videos):
        raise ConfigError("--ray writes Parquet shards: give video paths and a folder as --out")
    encoder = load_encoder(model or DEFAULT_MODEL, device=device, base=base)
    if shards and videos:
        from vsearch.scale.shards import export_shards

        res = export_shards(
            encoder, videos, out, ray=(ray_address or True) if use_ray else None, segment_seconds=segment_seconds,
            workers=workers, sampling=sampling, segmenter=segmenter,
        )  # fmt: skip
        if as_json:
            print_json(res)
        else:
            console.print(
                f"wrote {res['shards']} shard(s) to {escape(res['out'])}"
                + (f"; {res['failed_files']} file(s) failed" if res["failed_files"] else "")
            )
        if res["failed_files"]:
            raise typer.Exit(3)
        return
    if videos:
        result = embed_videos(
            encoder, [str(v) for v in videos], segments=segments, segment_seconds=segment_seconds, workers=workers,
            sampling=sampling, segmenter=segmenter,
        )  # fmt: skip
    else:
        lines = texts or [line.strip() for line in texts_file.read_text(encoding="utf-8").splitlines() if line.strip()]
        result = embed_texts(encoder, lines)
    npy, sidecar = write_embeddings(result, out, encoder)
    for path, reason in result.failed:
        err_console.print(f"[red]failed[/] {escape(path)}: {escape(reason)}", soft_wrap=True)
    if as_json:
        print_json(
            {
                "out": str(npy),
                "sidecar": str(sidecar),
                "rows": len(result.rows),
                "dim": int(result.vectors.shape[1]),
                "failed": len(result.failed),
            }
        )
    else:
        console.print(
            f"wrote {len(result.rows)} x {result.vectors.shape[1]} to {escape(str(npy))} (rows named in {escape(str(sidecar))})"
        )
    if result.failed:
        raise typer.Exit(3)


@app.command("import")
@handle_errors
def import_cmd(
    directory: Annotated[
        Path, typer.Argument(help="A folder of part-*.parquet shards (vsearch embed ... --out DIR).", show_default=False)
    ],
    model: ModelOpt = None,
    store: Annotated[
        Path | None,
        typer.Option(
            "--store", "-s", help="Store folder (default: $VSEARCH_HOME, else ~/.local/share/vsearch).", show_default=False
        ),
    ] = None,
    device: DeviceOpt = "auto",
    as_json: JsonOpt = False,
) -> None:
    """Load embeddings written as Parquet shards into a store, after checking model, dimension and norms.

    Example: [bold]vsearch import shards/ --model clip-b32 --store /data/vsearch[/]
    """
    import json as _json

    from vsearch.config import DEFAULT_MODEL
    from vsearch.models import load_encoder
    from vsearch.scale.shards import import_shards
    from vsearch.store import Store

    meta_path = directory / "shards.json"
    meta = _json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    ref = model or meta.get("source") or DEFAULT_MODEL
    encoder = load_encoder(ref, device=device)
    with Store.open(store) as st, st.lock("import"):
        res = import_shards(st, directory, encoder)
    if as_json:
        print_json(res)
    else:
        console.print(f"imported {res['videos']} video(s), {res['segments']} segment(s) from {res['shards']} shard(s).")


@app.command("convert-checkpoint")
@handle_errors
def convert_checkpoint(
    src: Annotated[
        Path, typer.Argument(help="Official CLIP-ViP .pt, ViFi-CLIP .pth, or an OpenAI CLIP state dict.", show_default=False)
    ],
    out: Annotated[Path, typer.Argument(help="Output model folder (HF layout + vsearch.json).", show_default=False)],
    base: Annotated[
        str, typer.Option("--base", help="The CLIP it was trained from: hub id or folder (B/16 files need ...-patch16).")
    ] = "openai/clip-vit-base-patch32",
    fp16: Annotated[bool, typer.Option("--fp16", help="Store the weights as float16 (half the size).")] = False,
    fill_from_base: Annotated[
        bool,
        typer.Option("--fill-from-base", help="Take weights the checkpoint lacks from the base (which must have weights)."),
    ] = False,
) -> None:
    """Convert a third-party checkpoint into a model folder, checking every key and shape.

    The layout is detected from the keys: official CLIP-ViP (clipmodel.*) or OpenAI-layout
    CLIP (ViFi-CLIP's image_encoder.*/text_encoder.*, OpenAI's visual.*).
    Example: [bold]vsearch convert-checkpoint pretrain_clipvip_base_32.pt clipvip-b32 --base openai/clip-vit-base-patch32[/]
    """
    import torch

    from vsearch.models.registry import convert_checkpoint as convert

    path = convert(src, out, base, dtype=torch.float16 if fp16 else None, fill_from_base=fill_from_base)
    console.print(f"wrote {escape(str(path))}: load it with --model {escape(str(path))}")
