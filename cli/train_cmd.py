"""`vsearch train ...`: fine-tune an encoder and save it as a loadable model folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from .app import app
from .common import (
    BaseOpt,
    ClassesOpt,
    DeviceOpt,
    JsonOpt,
    PromptOpt,
    console,
    err_console,
    graceful_stop,
    handle_errors,
    print_json,
)

train_app = typer.Typer(
    help="Fine-tune an encoder (contrastive, CLIP-ViP style).\n\n"
    "Example: [bold]vsearch train retrieval --data train.csv --model clip-b32 --out my-model[/]",
    no_args_is_help=True,
)
app.add_typer(train_app, name="train")


#: TrainConfig fields every training command takes as options, in the order --help lists them;
#: their help and defaults come from the fields (``vsearch.train.config``).
COMMON = (
    "video_root steps epochs batch_size accumulate lr weight_decay warmup grad_clip frames workers seed "
    "checkpoint_every eval_every resume cache_frames"
).split()
#: ... and those of the commands that train a video-text contrastive model (retrieval, pretrain).
TEMPORAL = "time_reversal pair_weight family temporal_init_std new_lr_mul freeze_layers".split()
LAST = ["save_dtype"]
#: Where the command line reads a type other than the field's (paths, shown as PATH in --help).
CLI_TYPES = {"video_root": Path | None}


def config_options(*names: str, **defaults):
    """Declare the ``TrainConfig`` fields ``names`` as options of the decorated command.

    The command's own parameters come first and ``device`` / ``as_json`` last; the generated
    ones go between, each typed, described and defaulted by its field (``defaults`` overrides a
    default, e.g. pretrain's learning rate). The command receives them as one dict, ``options``,
    ready for ``TrainConfig(**options, ...)``: no option is written twice, and a new field with
    help metadata is a new flag.
    """
    import dataclasses
    import functools
    import inspect
    import typing

    from vsearch.train.config import TrainConfig

    hints = typing.get_type_hints(TrainConfig)
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}

    def decorate(func):
        own = [p for p in inspect.signature(func, eval_str=True).parameters.values() if p.name != "options"]
        last = [p for p in own if p.name in ("device", "as_json")]
        generated = [
            inspect.Parameter(
                name,
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                default=defaults.get(name, fields[name].default),
                annotation=Annotated[CLI_TYPES.get(name, hints[name]), typer.Option(help=fields[name].metadata["help"])],
            )
            for name in names
        ]
        params = [p for p in own if p not in last] + generated + last

        @functools.wraps(func)
        def command(**kwargs):
            options = {name: kwargs.pop(name) for name in names}
            if options.get("video_root") is not None:
                options["video_root"] = str(options["video_root"])
            return func(**kwargs, options=options)

        command.__signature__ = inspect.Signature(params)
        command.__annotations__ = {p.name: p.annotation for p in params}
        return command

    return decorate


Out = Annotated[
    Path, typer.Option("--out", "-o", help="Output model folder (checkpoints go in OUT/checkpoints).", show_default=False)
]
Model = Annotated[
    str, typer.Option("--model", "-m", help="Starting model: a name, a folder, a hub id, or an official .pt with --base.")
]


def run_training(
    task: str, data: Path, model: str, out: Path, val: Path | None, *, options: dict, as_json: bool, **settings
) -> None:
    """Run ``vsearch.train.loop.train`` on the command's ``TrainConfig`` with a progress bar;
    Ctrl-C stops after the step and checkpoints. ``options`` are the generated ``config_options``,
    ``settings`` the command's own (base, device, task-specific ones).

    Under torchrun only rank 0 draws the bar and prints the summary.
    """
    import os

    from vsearch.perf import tune_malloc
    from vsearch.train.config import TrainConfig
    from vsearch.train.loop import train

    cfg = TrainConfig(str(data), model, str(out), task=task, val_data=str(val) if val else None, **settings, **options)
    tune_malloc()  # a process-wide setting: the command's to make, not the library's
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
@config_options(*COMMON, *TEMPORAL, "view_consistency", "image_video", *LAST)
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
    options: dict | None = None,
    device: DeviceOpt = "auto",
    as_json: JsonOpt = False,
) -> None:
    """Fine-tune on captioned videos with symmetric InfoNCE and a learnable temperature.

    Example: [bold]vsearch train retrieval --data train.csv --val val.csv --model clip-b32 --out my-model[/]

    An image CLIP is a video model trained on 1-frame clips: [bold]--data synth:static --frames 1[/].
    """
    run_training("retrieval", data, model, out, val, base=base, device=device, options=options, as_json=as_json)


@train_app.command("recognition")
@handle_errors
@config_options(*COMMON, *LAST)
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
    classes: ClassesOpt = None,
    split: Annotated[str | None, typer.Option(help="Training split: UCF101 trainlist01, HMDB51 train1, Kinetics train.")] = None,
    val: Annotated[Path | None, typer.Option("--val", help="Held-out data in any of the --data forms.")] = None,
    val_split: Annotated[str | None, typer.Option(help="Held-out split: testlist01, test1, val, ...")] = None,
    prompt: PromptOpt = None,
    freeze_text: Annotated[
        bool, typer.Option("--freeze-text", help="Keep the text tower fixed (class embeddings computed once).")
    ] = False,
    options: dict | None = None,
    device: DeviceOpt = "auto",
    as_json: JsonOpt = False,
) -> None:
    """Fine-tune for action recognition: each video against every class prompt (ViFi-CLIP style).

    Example: [bold]vsearch train recognition --data ucf101/splits --split trainlist01 --video-root ucf101/videos --model clip-b16 --out ucf-model[/]
    """
    run_training(
        "recognition", data, model, out, val, base=base, device=device, options=options, as_json=as_json,
        prompt=prompt, freeze_text=freeze_text, classes=str(classes) if classes else None, split=split, val_split=val_split,
    )  # fmt: skip


@app.command("pretrain")
@handle_errors
@config_options(*COMMON, *TEMPORAL, *LAST, lr=5e-6, weight_decay=0.05, grad_clip=5.0)
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
    options: dict | None = None,
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
    run_training("pretrain", data, model, out, val, base=base, device=device, options=options, as_json=as_json)
