"""`vsearch eval ...`: retrieval (and recognition) metrics for a model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from .app import app
from .common import BaseOpt, ClassesOpt, DeviceOpt, JsonOpt, PromptOpt, console, handle_errors, print_json

eval_app = typer.Typer(
    help="Evaluate a model: retrieval recall@k, recognition accuracy, temporal order.\n\n"
    "Example: [bold]vsearch eval retrieval --model sample_data/model --data sample_data/captions.csv[/]",
    no_args_is_help=True,
)
app.add_typer(eval_app, name="eval")

Model = Annotated[str, typer.Option("--model", "-m", help="Model: name, folder, hub id, or .pt with --base.")]


@eval_app.command("retrieval")
@handle_errors
def eval_retrieval(
    model: Model,
    data: Annotated[
        Path | None, typer.Option("--data", help="Captions CSV/JSONL (`path,caption`); every caption is a query.")
    ] = None,
    dataset: Annotated[str, typer.Option("--dataset", help="captions (with --data) or msrvtt (with --root).")] = "captions",
    root: Annotated[Path | None, typer.Option("--root", help="MSR-VTT root: videos/all/videoNNNN.mp4 + split files.")] = None,
    split: Annotated[str, typer.Option("--split", help="MSR-VTT split: 1k-A (test), train-9k, train-7k.")] = "1k-A",
    video_root: Annotated[Path | None, typer.Option(help="Folder that relative paths in --data refer to.")] = None,
    base: BaseOpt = None,
    save_similarity: Annotated[
        Path | None, typer.Option(help="Save the query x video similarity matrix (.npy + .json naming rows/columns).")
    ] = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Decode everything again instead of reusing cached embeddings.")
    ] = False,
    allow_missing: Annotated[
        bool, typer.Option("--allow-missing", help="Evaluate the videos that exist (the figure is then not comparable).")
    ] = False,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Also write the report as JSON here (a .json file or a folder).")
    ] = None,
    workers: int = 2,
    device: DeviceOpt = "auto",
    as_json: JsonOpt = False,
) -> None:
    """Text-to-video and video-to-text R@1/5/10, MdR, MnR (tie-safe ranks); DSL reported apart.

    Example: [bold]vsearch eval retrieval --model clipvip-b32 --dataset msrvtt --root ~/data/msrvtt --split 1k-A[/]
    """
    from vsearch.errors import ConfigError
    from vsearch.eval.run import evaluate
    from vsearch.models import load_encoder

    if dataset == "msrvtt" and root is None:  # refused before a model loads, in the flags' names
        raise ConfigError("--dataset msrvtt needs --root (the folder with the MSR-VTT videos and split files)")
    if dataset == "captions" and data is None:
        raise ConfigError("give --data captions.csv (or --dataset msrvtt --root ...)")
    encoder = load_encoder(model, device=device, base=base)
    report = evaluate(
        encoder, dataset=dataset, data=data, root=root, split=split, video_root=video_root, workers=workers,
        use_cache=not no_cache, save_similarity=save_similarity, allow_missing_videos=allow_missing, out=out,
    )  # fmt: skip
    if as_json:
        print_json(report)
        return
    table = Table(title=f"{report['dataset']}: {report['texts']} queries, {report['videos']} videos ({report['model']})")
    for col in ("", "R@1", "R@5", "R@10", "MdR", "MnR"):
        table.add_column(col, justify="right")
    rows = [
        ("text→video", report["t2v"]),
        ("video→text", report["v2t"]),
        ("t2v + DSL", report["dsl"]["t2v"]),
        ("v2t + DSL", report["dsl"]["v2t"]),
    ]
    for label, m in rows:
        table.add_row(label, *(f"{m[k]:.1f}" for k in ("R@1", "R@5", "R@10", "MdR", "MnR")))
    console.print(table)
    if report["failed_videos"]:
        console.print(f"[yellow]{report['failed_videos']} videos could not be decoded; their captions count as misses[/]")
    console.print(
        "[dim]DSL uses the whole query set at once (not available to a live search); the plain rows are the main figures.[/]"
    )
    if "written_to" in report:
        console.print(f"written to {report['written_to']}")


@eval_app.command("recognition")
@handle_errors
def eval_recognition(
    model: Model,
    data: Annotated[
        Path, typer.Option("--data", help="Class folders, a `path,label` CSV, or UCF101/HMDB51/Kinetics split files.")
    ],
    split: Annotated[str | None, typer.Option(help="Split: UCF101 testlist01, HMDB51 test1, Kinetics val.")] = None,
    classes: ClassesOpt = None,
    video_root: Annotated[Path | None, typer.Option(help="Folder the split files' paths refer to.")] = None,
    prompt: PromptOpt = None,
    clips: Annotated[int, typer.Option(help="Temporal views per video (averaged).")] = 1,
    crops: Annotated[int, typer.Option(help="Spatial views per clip: 1 or 3.")] = 1,
    base: BaseOpt = None,
    workers: int = 2,
    device: DeviceOpt = "auto",
    as_json: JsonOpt = False,
) -> None:
    """Top-1 / top-5 accuracy against every class prompt (zero-shot or fine-tuned), single or multi-view.

    Example: [bold]vsearch eval recognition --model clip-b16 --data ucf101/splits --split testlist01 --video-root ucf101/videos[/]
    """
    from vsearch.datasets.recognition import read_recognition
    from vsearch.errors import ConfigError
    from vsearch.eval.recognition import evaluate_recognition
    from vsearch.models import load_encoder

    if crops not in (1, 3) or clips < 1:
        raise ConfigError("--crops must be 1 or 3 and --clips at least 1")
    encoder = load_encoder(model, device=device, base=base)
    ds = read_recognition(data, split=split, classes=classes, video_root=video_root)
    report = {
        "model": encoder.name,
        **evaluate_recognition(encoder, ds, prompt=prompt, clips=clips, crops=crops, workers=workers),
    }
    if as_json:
        print_json(report)
        return
    console.print(
        f"{report['videos']} videos, {report['classes']} classes ({clips}x{crops} views, prompt “{report['prompt']}”): "
        f"top-1 {report['top1']:.1f}  top-5 {report['top5']:.1f}"
    )
    if report["failed_videos"]:
        console.print(f"[yellow]{report['failed_videos']} videos could not be decoded (counted as errors)[/]")


@eval_app.command("direction")
@handle_errors
def eval_direction(
    model: Model,
    data: Annotated[
        Path,
        typer.Option(
            "--data", help="A direction set (`path,caption,group`; `vsearch synth OUT --direction-set`).", show_default=False
        ),
    ],
    frames: Annotated[int | None, typer.Option(help="Frames per clip (default: the model's; an image model needs this).")] = None,
    base: BaseOpt = None,
    device: DeviceOpt = "auto",
    as_json: JsonOpt = False,
) -> None:
    """Temporal order: clips and their exact time reversals, captions and their direction-swapped twins.

    A frame-averaging model scores exactly 50 (video side: 100% ties); chance for 4-way is 25.
    Example: [bold]vsearch eval direction --model sample_data/clip-vip --data direction/captions.csv[/]
    """
    from vsearch.errors import ConfigError
    from vsearch.eval.direction import evaluate_direction
    from vsearch.models import load_encoder

    try:
        report = evaluate_direction(load_encoder(model, device=device, base=base, cache=False), data, frames)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if as_json:
        print_json(report)
        return
    table = Table(title=f"temporal order on {report['clips']} clips and their reversals ({model})")
    for col in ("measure", "%", "ties %"):
        table.add_column(col, justify="right")
    for key, label in (
        ("text_side", "clip picks its caption over the swapped one"),
        ("video_side", "caption picks its clip over the reversed clip"),
        ("four_way", "4-way among the motions (chance 25)"),
    ):
        table.add_row(label, f"{report[key]:.1f}", f"{report[key + '_ties']:.1f}")
    table.add_row("R@1 / R@5 inside a group", f"{report['R@1']:.1f} / {report['R@5']:.1f}", "")
    table.add_row("colour+shape top-1", f"{report['colour_shape_top1']:.1f}", "")
    table.add_row("reversal sensitivity (1 - cos)", f"{report['reversal_sensitivity']:.3f}", "")
    console.print(table)


@eval_app.command("moments")
@handle_errors
def eval_moments(
    model: Model,
    films: Annotated[int, typer.Option("--films", help="Films to render (4 scenes each, every scene once; at most 12).")] = 12,
    seed: Annotated[int, typer.Option(help="Rendering seed (the default is this benchmark's own).")] = 20261207,
    segment_seconds: Annotated[
        float | None,
        typer.Option("--segment-seconds", help="Window length (fixed) or longest segment (shots); default: a new store's."),
    ] = None,
    segments: Annotated[
        str,
        typer.Option("--segments", help="shots: segments end at the detected cuts (as `vsearch index`); fixed: windows."),
    ] = "shots",
    keep: Annotated[Path | None, typer.Option("--keep", help="Render and index into this folder and keep it.")] = None,
    device: DeviceOpt = "auto",
    as_json: JsonOpt = False,
) -> None:
    """Moments: films of scenes with random lengths and cuts; is each caption's time range found?

    Reports mean temporal IoU of the best hit in the right film, R@1 at IoU 0.5 / 0.7 and video R@1.
    Example: [bold]vsearch eval moments --model sample_data/clip-vip --segments shots[/]
    """
    import tempfile

    from vsearch.errors import ConfigError
    from vsearch.eval.moments import evaluate_moments

    if not 1 <= films <= 12:
        raise ConfigError(f"--films must be between 1 and 12 (48 distinct scenes, 4 per film), got {films}")
    if segments not in ("shots", "fixed"):
        raise ConfigError(f"unknown segmenter {segments!r}: use one of shots, fixed")
    with tempfile.TemporaryDirectory(prefix="vsearch-moments-") as tmp:
        work = keep if keep is not None else Path(tmp)
        with console.status(f"rendering {films} films, indexing them with {model} ..."):
            report = evaluate_moments(
                model, work, count=films, seed=seed, segment_seconds=segment_seconds, segmenter=segments, device=device
            )
    if as_json:
        print_json(report)
        return
    cut = "at shots, split past" if report["segmenter"] == "shots" else "fixed"
    table = Table(
        title=f"moments: {report['queries']} captions in {report['films']} films ({model}, {report['segments']} segments: "
        f"{cut} {report['segment_seconds']:g} s)"
    )
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("mean IoU (best hit in the right film)", f"{report['mean_iou']:.3f}")
    table.add_row("R@1, IoU >= 0.5 (%)", f"{report['r1_iou50']:.1f}")
    table.add_row("R@1, IoU >= 0.7 (%)", f"{report['r1_iou70']:.1f}")
    table.add_row("video R@1 (%)", f"{report['video_r1']:.1f}")
    seg = report.get("segment_ranges")
    if seg:
        table.add_row(
            "segment ranges only: IoU / R@1 0.5 / 0.7",
            f"{seg['mean_iou']:.3f} / {seg['r1_iou50']:.1f} / {seg['r1_iou70']:.1f}",
        )
    if report.get("cut_detection"):
        c = report["cut_detection"]
        table.add_row(
            f"cuts found: F1 (precision / recall) of {c['cuts']}", f"{c['f1']:.3f} ({c['precision']:.3f} / {c['recall']:.3f})"
        )
    console.print(table)


@eval_app.command("robustness")
@handle_errors
def eval_robustness(
    model: Model,
    videos: Annotated[
        Path | None,
        typer.Option("--videos", help="Single-scene clips: a folder with captions.csv, its videos/ folder, or the CSV."),
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Render fresh clips with this seed instead of --videos.")] = None,
    count: Annotated[int, typer.Option("--count", help="Clips to render with --seed (48: every scene once).")] = 48,
    device: DeviceOpt = "auto",
    as_json: JsonOpt = False,
) -> None:
    """Does a model hold up? "a COLOUR SHAPE" queries, a frame at 1 s as an image query, and the
    cosine of each clip to itself re-encoded, resized by 10% and stored rotated like a phone's.

    Example: [bold]vsearch eval robustness --model sample_data/clip-vip --videos sample_data/videos[/]
    (or [bold]--seed 7 --count 48[/] for clips it has never seen)
    """
    from vsearch.errors import ConfigError
    from vsearch.eval.robustness import VARIANTS, evaluate_robustness

    if (videos is None) == (seed is None):
        raise ConfigError("give --videos DIR or --seed N (clips rendered fresh), one of the two")
    with console.status(f"measuring {model} ..."):
        report = evaluate_robustness(model, videos=videos, seed=seed, count=count, device=device)
    if as_json:
        print_json(report)
        return
    where = report.get("videos") or f"seed {report['seed']}"
    table = Table(title=f"robustness on {report['clips']} single-scene clips ({where}; {model})")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row('"a COLOUR SHAPE": right colour and shape first', report["appearance"]["score"])
    table.add_row(f"frame at {report['image']['at_s']:g} s as an image: right colour and shape first", report["image"]["score"])
    for v in VARIANTS:
        s = report["stability"][v]
        label = f"cos to itself, {v}: min / mean (clips >= {report['stable_at']:g})"
        table.add_row(label, f"{s['min']:.3f} / {s['mean']:.3f} ({s['score']})")
    console.print(table)
    if report["appearance"]["absent"]:
        console.print(f"[yellow]no clip of {', '.join(report['appearance']['absent'])}: those queries were not asked[/]")
