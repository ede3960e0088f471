"""`vsearch train ...`: fine-tune an encoder and save it as a loadable model folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from .app import app
from .common import BaseOpt, DeviceOpt, JsonOpt, console, err_console, graceful_stop, handle_errors, print_json

train_app = typer.Typer(
    help="Fine-tune an encoder (contrastive, CLIP-ViP style).\n\n"
    "Example: [bold]vsearch train retrieval --data train.csv --model clip-b32 --out my-model[/]",
    no_args_is_help=True,
)
app.add_typer(train_app, name="train")


Steps = Annotated[int | None, typer.Option(help="Optimizer steps (default: from --epochs).")]
Epochs = Annotated[float, typer.Option(help="Passes over the videos (one random caption per video each).")]
BatchSize = Annotated[
    int,
    typer.Option(
        help="Videos per micro-batch. Contrastive results depend on the effective batch (batch x accumulate): "
        "every other pair is a negative; CLIP-ViP used 128."
    ),
]
Accumulate = Annotated[int, typer.Option(help="Micro-batches per step, contrastive-exact (GradCache): 16 x 8 trains like 128.")]
Warmup = Annotated[float, typer.Option(help="Warmup: a fraction of the steps (<1) or a step count.")]
Frames = Annotated[int | None, typer.Option(help="Frames per clip (default: the model's).")]
Workers = Annotated[int, typer.Option(help="DataLoader decode workers.")]
CkptEvery = Annotated[int, typer.Option(help="Save a resumable checkpoint every N steps (0: only at the end).")]
EvalEvery = Annotated[int, typer.Option(help="Evaluate --val every N steps (0: only at the end).")]
Resume = Annotated[bool, typer.Option(help="Continue from OUT/checkpoints when there is one.")]
CacheFrames = Annotated[bool, typer.Option(help="Decode every clip once and keep it in memory (small datasets).")]
SaveDtype = Annotated[str, typer.Option(help="float32 or float16 for the saved weights.")]
VideoRoot = Annotated[Path | None, typer.Option(help="Folder that relative paths / video ids refer to.")]
TimeReversal = Annotated[
    str,
    typer.Option(
        help="Time reversal in every batch (off | twins | negatives). twins: each clip also brings its reversed "
        "frames paired with the caption whose direction words are swapped (left/right, up/down, before/after; "
        "others fall back to negatives). negatives: the reversed clip is an extra negative video for the "
        "caption (any data, MSR-VTT included). Teaches temporal order; see README, Temporal order."
    ),
]
PairWeight = Annotated[
    float,
    typer.Option(help="Weight of the 2-way direction loss (clip vs reversed clip, caption vs swapped) [needs --time-reversal]."),
]
Family = Annotated[
    str | None,
    typer.Option(
        help="Build this family (clip-vip, stan, xclip) on top of the starting model, a plain CLIP: its weights load, the rest is new."
    ),
]
FreezeLayers = Annotated[
    int,
    typer.Option(
        help="Keep the embeddings and the first N transformer layers of each tower fixed (Test of Time freezes 5 of 6): "
        "pretrained appearance stays while the top layers and the family's new parts learn order; 0 trains everything."
    ),
]
NewLrMul = Annotated[
    float,
    typer.Option(
        help="Multiply the learning rate of the parts a family adds to CLIP (CLIP-ViP's proxies and temporal table, "
        "STAN's branch, X-CLIP's message, MIT and prompt modules) by this: with a low learning rate the CLIP keeps "
        "what it knows while the new parts learn fast (CLIP-ViP's lr_mul)."
    ),
]
TemporalInit = Annotated[
    float | None,
    typer.Option(help="Draw the temporal tables from N(0, STD^2) before training (new tables start at 0) (default: keep)."),
]
Out = Annotated[
    Path, typer.Option("--out", "-o", help="Output model folder (checkpoints go in OUT/checkpoints).", show_default=False)
]
Model = Annotated[
    str, typer.Option("--model", "-m", help="Starting model: a name, a folder, a hub id, or an official .pt with --base.")
]


def run_training(cfg, as_json: bool) -> None:
    """Run ``vsearch.train.loop.train`` with a progress bar; Ctrl-C stops after the step and checkpoints.

    Under torchrun only rank 0 draws the bar and prints the summary.
    """
    import os

    from vsearch.train.loop import train

    main_rank = int(os.environ.get("RANK", "0")) == 0
    bar = Progress(
        TextColumn(f"[bold]{cfg.task}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]} · {task.fields[rate]} samples/s"), TimeElapsedColumn(), TimeRemainingColumn(),
        console=err_console, disable=as_json or not main_rank,
    )  # fmt: skip
    task = None

    def on_step(rec: dict) -> None:
        nonlocal task
        if task is None:
            task = bar.add_task("train", total=rec["total"], completed=rec["step"] - 1, loss="-", rate="-")
        bar.update(task, completed=rec["step"], loss=f"{rec['loss']:.3f}", rate=f"{rec['samples_per_s']:.1f}")

    with graceful_stop("stopping after this step; a checkpoint will be saved") as stop, bar:
        result = train(cfg, progress=on_step, stop=stop)
    if not main_rank:
        return
    summary = {
        "out": str(result.out),
        "task": cfg.task,
        "steps": result.steps,
        "finished": result.finished,
        "final_loss": result.final_loss,
        "samples_per_s": round(result.samples_per_s, 2),
        "seconds": round(result.seconds, 1),
        "skipped_videos": result.skipped,
        "eval": result.eval,
    }
    if as_json:
        print_json(summary)
        return
    if not result.finished:
        console.print(
            f"[yellow]stopped at step {result.steps}[/]; run the same command again to resume from {cfg.out}/checkpoints"
        )
        return
    console.print(
        f"saved {cfg.out} after {result.steps} steps (final loss {result.final_loss:.3f}, {result.samples_per_s:.1f} samples/s)"
    )
    if result.skipped:
        console.print(f"[yellow]{result.skipped} videos could not be decoded and were skipped[/]")
    ev = result.eval or {}
    if "t2v" in ev:
        t2v = ev["t2v"]
        console.print(
            f"held-out text→video: R@1 {t2v['R@1']:.1f}  R@5 {t2v['R@5']:.1f}  R@10 {t2v['R@10']:.1f}  MdR {t2v['MdR']:.1f}"
        )
    elif "top1" in ev:
        console.print(f"held-out accuracy: top-1 {ev['top1']:.1f}  top-5 {ev['top5']:.1f}")


@train_app.command("retrieval")
@handle_errors
def train_retrieval(
    data: Annotated[
        Path,
        typer.Option(
            "--data",
            help="Captions CSV/JSONL (`path,caption`, one row per caption), msrvtt:ROOT@SPLIT, or a synthetic stream "
            "rendered on the fly: synth:motion (moving shapes) or synth:static (1-frame stills), options after commas "
            "(size=64, split=train|all, frames=N; motion only: stills=0.25, framecaps=0.25, wander=0.25).",
            show_default=False,
        ),
    ],
    out: Out,
    model: Model = "clip-b32",
    base: BaseOpt = None,
    val: Annotated[Path | None, typer.Option("--val", help="Held-out captions file, evaluated at the end.")] = None,
    video_root: VideoRoot = None,
    steps: Steps = None,
    epochs: Epochs = 1.0,
    batch_size: BatchSize = 32,
    accumulate: Accumulate = 1,
    lr: float = 1e-5,
    weight_decay: float = 0.2,
    warmup: Warmup = 0.01,
    grad_clip: float = 1.0,
    frames: Frames = None,
    workers: Workers = 2,
    seed: int = 42,
    checkpoint_every: CkptEvery = 0,
    eval_every: EvalEvery = 0,
    resume: Resume = True,
    cache_frames: CacheFrames = False,
    time_reversal: TimeReversal = "off",
    pair_weight: PairWeight = 0.0,
    family: Family = None,
    temporal_init_std: TemporalInit = None,
    new_lr_mul: NewLrMul = 1.0,
    freeze_layers: FreezeLayers = 0,
    save_dtype: SaveDtype = "float32",
    device: DeviceOpt = "auto",
    as_json: JsonOpt = False,
) -> None:
    """Fine-tune on captioned videos with symmetric InfoNCE and a learnable temperature.

    Example: [bold]vsearch train retrieval --data train.csv --val val.csv --model clip-b32 --out my-model[/]

    An image CLIP is a video model trained on 1-frame clips: [bold]--data synth:static --frames 1[/].
    """
    from vsearch.train.loop import TrainConfig

    run_training(
        TrainConfig(**_common(locals()), **_temporal(locals()), task="retrieval", val_data=str(val) if val else None), as_json
    )


@train_app.command("recognition")
@handle_errors
def train_recognition(
    data: Annotated[
        Path,
        typer.Option(
            "--data",
            help="Class folders (ROOT/CLASS/clip.mp4), a `path,label` CSV, or UCF101/HMDB51/Kinetics split files.",
            show_default=False,
        ),
    ],
    out: Out,
    model: Model = "clip-b32",
    base: BaseOpt = None,
    classes: Annotated[
        Path | None, typer.Option("--classes", help="Class names, one per line (when labels are indices).")
    ] = None,
    split: Annotated[str | None, typer.Option(help="Training split: UCF101 trainlist01, HMDB51 train1, Kinetics train.")] = None,
    val: Annotated[Path | None, typer.Option("--val", help="Held-out data in any of the --data forms.")] = None,
    val_split: Annotated[str | None, typer.Option(help="Held-out split: testlist01, test1, val, ...")] = None,
    prompt: Annotated[
        str | None, typer.Option(help='Class-name template, e.g. "a video of a person {}." (default: the model\'s).')
    ] = None,
    freeze_text: Annotated[
        bool, typer.Option("--freeze-text", help="Keep the text tower fixed (class embeddings computed once).")
    ] = False,
    video_root: VideoRoot = None,
    steps: Steps = None,
    epochs: Epochs = 1.0,
    batch_size: BatchSize = 32,
    accumulate: Accumulate = 1,
    lr: float = 1e-5,
    weight_decay: float = 0.2,
    warmup: Warmup = 0.01,
    grad_clip: float = 1.0,
    frames: Frames = None,
    workers: Workers = 2,
    seed: int = 42,
    checkpoint_every: CkptEvery = 0,
    eval_every: EvalEvery = 0,
    resume: Resume = True,
    cache_frames: CacheFrames = False,
    save_dtype: SaveDtype = "float32",
    device: DeviceOpt = "auto",
    as_json: JsonOpt = False,
) -> None:
    """Fine-tune for action recognition: each video against every class prompt (ViFi-CLIP style).

    Example: [bold]vsearch train recognition --data ucf101/splits --split trainlist01 --video-root ucf101/videos --model clip-b16 --out ucf-model[/]
    """
    from vsearch.train.loop import TrainConfig

    cfg = TrainConfig(
        **_common(locals()), task="recognition", val_data=str(val) if val else None, prompt=prompt, freeze_text=freeze_text,
        classes=str(classes) if classes else None, split=split, val_split=val_split,
    )  # fmt: skip
    run_training(cfg, as_json)


@app.command("pretrain")
@handle_errors
def pretrain(
    data: Annotated[
        Path,
        typer.Option(
            "--data",
            help="CSV/JSONL with `path` and `subtitle` and/or `caption`, or synth:motion (subtitle = the motion caption, "
            "caption = the still caption of the middle frame).",
            show_default=False,
        ),
    ],
    out: Out,
    model: Model = "clip-vip-b32",
    base: BaseOpt = None,
    val: Annotated[Path | None, typer.Option("--val", help="Held-out captions (`path,caption`) for retrieval metrics.")] = None,
    video_root: VideoRoot = None,
    steps: Steps = None,
    epochs: Epochs = 1.0,
    batch_size: BatchSize = 32,
    accumulate: Accumulate = 1,
    lr: float = 5e-6,
    weight_decay: float = 0.05,
    warmup: Warmup = 0.01,
    grad_clip: float = 5.0,
    frames: Frames = None,
    workers: Workers = 2,
    seed: int = 42,
    checkpoint_every: CkptEvery = 0,
    eval_every: EvalEvery = 0,
    resume: Resume = True,
    cache_frames: CacheFrames = False,
    time_reversal: TimeReversal = "off",
    pair_weight: PairWeight = 0.0,
    family: Family = None,
    temporal_init_std: TemporalInit = None,
    new_lr_mul: NewLrMul = 1.0,
    freeze_layers: FreezeLayers = 0,
    save_dtype: SaveDtype = "float32",
    device: DeviceOpt = "auto",
    as_json: JsonOpt = False,
) -> None:
    """Post-pretrain with CLIP-ViP's omnisource loss: clip, subtitle, caption and middle frame.

    With both text columns: the six-term loss (joint subtitle+caption negatives, frame<->caption).
    With one: the plain two-term loss (the log says which). Defaults follow CLIP-ViP's pretraining.
    With --time-reversal the reversal terms (InfoNCE over clips and their reversals, and --pair-weight
    times the direction loss) are added to the omnisource loss.
    Example: [bold]vsearch pretrain --data clips.csv --model clip-vip-b32 --out vip-post[/]
    From an image CLIP: [bold]vsearch pretrain --data synth:motion --model image-clip --family clip-vip --time-reversal twins --out vip[/]
    """
    from vsearch.train.loop import TrainConfig

    run_training(
        TrainConfig(**_common(locals()), **_temporal(locals()), task="pretrain", val_data=str(val) if val else None), as_json
    )


def _common(args: dict) -> dict:
    keys = (
        "model base steps epochs batch_size accumulate lr weight_decay warmup grad_clip frames workers seed "
        "checkpoint_every eval_every resume cache_frames device save_dtype"
    ).split()
    out = {k: args[k] for k in keys}
    out.update(data=str(args["data"]), out=str(args["out"]), video_root=str(args["video_root"]) if args["video_root"] else None)
    return out


def _temporal(args: dict) -> dict:
    return {k: args[k] for k in ("time_reversal", "pair_weight", "family", "temporal_init_std", "new_lr_mul", "freeze_layers")}
