"""`vsearch train ...`: fine-tune an encoder and save it as a loadable model folder."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from .app import app
from .common import BaseOpt, DeviceOpt, JsonOpt, console, err_console, handle_errors, print_json

train_app = typer.Typer(help="Fine-tune an encoder (contrastive, CLIP-ViP style).", no_args_is_help=True)
app.add_typer(train_app, name="train")


@train_app.command("retrieval")
@handle_errors
def train_retrieval(
    data: Annotated[
        Path, typer.Option("--data", help="Captions CSV/JSONL: `path,caption` (one row per caption).", show_default=False)
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Output model folder (checkpoints go in OUT/checkpoints).", show_default=False)
    ],
    model: Annotated[
        str, typer.Option("--model", "-m", help="Starting model: a name, a folder, a hub id, or an official .pt with --base.")
    ] = "clip-b32",
    base: BaseOpt = None,
    val: Annotated[Path | None, typer.Option("--val", help="Held-out captions file, evaluated at the end.")] = None,
    video_root: Annotated[Path | None, typer.Option(help="Folder that relative paths / video ids refer to.")] = None,
    steps: Annotated[int | None, typer.Option(help="Optimizer steps [default: from --epochs].")] = None,
    epochs: Annotated[float, typer.Option(help="Passes over the videos (one random caption per video each).")] = 1.0,
    batch_size: Annotated[
        int,
        typer.Option(
            help="Videos per micro-batch. Contrastive results depend on the effective batch (batch x accumulate): every other pair is a negative; CLIP-ViP used 128."
        ),
    ] = 32,
    accumulate: Annotated[
        int, typer.Option(help="Micro-batches per step, contrastive-exact (GradCache): 16 x 8 trains like 128.")
    ] = 1,
    lr: float = 1e-5,
    weight_decay: float = 0.2,
    warmup: Annotated[float, typer.Option(help="Warmup: a fraction of the steps (<1) or a step count.")] = 0.01,
    grad_clip: float = 1.0,
    frames: Annotated[int | None, typer.Option(help="Frames per clip [default: the model's].")] = None,
    workers: Annotated[int, typer.Option(help="DataLoader decode workers.")] = 2,
    seed: int = 42,
    checkpoint_every: Annotated[int, typer.Option(help="Save a resumable checkpoint every N steps (0: only at the end).")] = 0,
    eval_every: Annotated[int, typer.Option(help="Evaluate --val every N steps (0: only at the end).")] = 0,
    resume: Annotated[bool, typer.Option(help="Continue from OUT/checkpoints when there is one.")] = True,
    cache_frames: Annotated[bool, typer.Option(help="Decode every clip once and keep it in memory (small datasets).")] = False,
    save_dtype: Annotated[str, typer.Option(help="float32 or float16 for the saved weights.")] = "float32",
    device: DeviceOpt = "auto",
    as_json: JsonOpt = False,
) -> None:
    """Fine-tune on captioned videos with symmetric InfoNCE and a learnable temperature.

    Example: [bold]vsearch train retrieval --data train.csv --val val.csv --model clip-b32 --out my-model[/]
    """
    from vsearch.train.loop import TrainConfig, train

    cfg = TrainConfig(
        data=str(data), model=model, base=base, out=str(out), val_data=str(val) if val else None,
        video_root=str(video_root) if video_root else None, steps=steps, epochs=epochs, batch_size=batch_size,
        accumulate=accumulate, lr=lr, weight_decay=weight_decay, warmup=warmup, grad_clip=grad_clip,
        frames=frames, workers=workers, seed=seed, checkpoint_every=checkpoint_every, eval_every=eval_every,
        resume=resume, cache_frames=cache_frames, device=device, save_dtype=save_dtype,
    )  # fmt: skip
    stop = threading.Event()
    previous = signal.getsignal(signal.SIGINT)

    def on_sigint(signum, frame):
        if stop.is_set():
            signal.signal(signal.SIGINT, previous)
            raise KeyboardInterrupt
        stop.set()
        err_console.print("[yellow]stopping after this step; a checkpoint will be saved (Ctrl-C again to abort)[/]")

    signal.signal(signal.SIGINT, on_sigint)
    bar = Progress(
        TextColumn("[bold]training"), BarColumn(), MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]} · {task.fields[rate]} samples/s"), TimeElapsedColumn(), TimeRemainingColumn(),
        console=err_console, disable=as_json,
    )  # fmt: skip
    task = None

    def on_step(rec: dict) -> None:
        nonlocal task
        if task is None:
            task = bar.add_task("train", total=rec["total"], completed=rec["step"] - 1, loss="-", rate="-")
        bar.update(task, completed=rec["step"], loss=f"{rec['loss']:.3f}", rate=f"{rec['samples_per_s']:.1f}")

    try:
        with bar:
            result = train(cfg, progress=on_step, stop=stop)
    finally:
        signal.signal(signal.SIGINT, previous)
    summary = {
        "out": str(result.out),
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
        console.print(f"[yellow]stopped at step {result.steps}[/]; run the same command again to resume from {out}/checkpoints")
        return
    console.print(
        f"saved {out} after {result.steps} steps (final loss {result.final_loss:.3f}, {result.samples_per_s:.1f} samples/s)"
    )
    if result.eval:
        t2v = result.eval["t2v"]
        console.print(
            f"held-out text→video: R@1 {t2v['R@1']:.1f}  R@5 {t2v['R@5']:.1f}  R@10 {t2v['R@10']:.1f}  MdR {t2v['MdR']:.1f}"
        )
