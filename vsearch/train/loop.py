"""The training loop behind ``vsearch train retrieval`` (callable from Python: ``train(cfg)``).

Contrastive results depend on the batch: every other pair in a batch is a negative. So
gradient accumulation here is **contrastive-exact** (GradCache): embeddings of all
micro-batches are computed first, the loss is taken over the whole effective batch, and its
gradients are pushed back through each micro-batch in a second pass. ``--batch-size 16
--accumulate 8`` then trains like a batch of 128, at about 1.3x the compute, in the memory of 16.

Resume is exact on CPU: data order and augmentation are functions of (seed, epoch, index), and
the checkpoint holds model, optimizer, scheduler, RNG and step.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ..atomic import atomic_write, atomic_write_text
from ..config import resolve_device
from ..datasets.clips import collate
from ..errors import ConfigError, DatasetError, TrainingError
from ..models.registry import load_encoder
from . import distributed
from .config import TrainConfig
from .distributed import World
from .loss import clamp_logit_scale
from .reversal import MODES
from .sampler import EpochBatchSampler
from .surgery import freeze_lower_layers, init_temporal
from .tasks import TASKS

NO_DECAY_MARKERS = ("bias", "norm", "layrnorm", "embedding", "class_embedding", "added_cls", "logit_scale")


@dataclass
class TrainResult:
    out: Path
    steps: int
    final_loss: float
    losses: list[float] = field(default_factory=list)
    skipped: int = 0
    seconds: float = 0.0
    samples_per_s: float = 0.0
    eval: dict | None = None
    finished: bool = True


def param_groups(
    model: torch.nn.Module, weight_decay: float, lr: float | None = None, added: tuple[str, ...] = (), added_mul: float = 1.0
) -> list[dict]:
    """AdamW groups: no decay on biases, norms, embeddings and the temperature; parameters whose
    names contain one of ``added`` (what a family adds to CLIP) at ``added_mul`` x ``lr``."""
    groups: dict[tuple[bool, bool], list] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        low = name.lower()
        no_decay = p.ndim < 2 or any(m in low for m in NO_DECAY_MARKERS)
        is_added = added_mul != 1.0 and any(a in name for a in added)
        groups.setdefault((no_decay, is_added), []).append(p)
    out = []
    for (no_decay, is_added), params in sorted(groups.items()):
        group = {"params": params, "weight_decay": 0.0 if no_decay else weight_decay}
        if lr is not None:
            group["lr"] = lr * (added_mul if is_added else 1.0)
        out.append(group)
    return out


def validate(cfg: TrainConfig) -> None:
    """Refuse settings that would train nothing or something else than asked, before any work."""
    if cfg.steps is not None and cfg.steps < 1:
        raise ConfigError(f"steps must be at least 1, not {cfg.steps}")
    if cfg.steps is None and not cfg.epochs > 0:
        raise ConfigError(f"epochs must be more than 0, not {cfg.epochs}")
    if cfg.batch_size < 2:
        raise ConfigError(f"batch_size must be at least 2 (contrastive training), not {cfg.batch_size}")
    if cfg.accumulate < 1:
        raise ConfigError(f"accumulate must be at least 1, not {cfg.accumulate}")
    if not cfg.lr > 0:
        raise ConfigError(f"lr must be more than 0, not {cfg.lr}")
    if cfg.freeze_layers < 0:
        raise ConfigError(f"freeze_layers must be 0 or more, not {cfg.freeze_layers}")
    if not cfg.new_lr_mul > 0:
        raise ConfigError(f"new_lr_mul must be more than 0, not {cfg.new_lr_mul}")
    if cfg.frames is not None and cfg.frames < 1:
        raise ConfigError(f"frames must be at least 1, not {cfg.frames}")
    if cfg.time_reversal not in MODES:
        raise ConfigError(f"time_reversal must be one of {', '.join(MODES)}, not {cfg.time_reversal!r}")
    if cfg.pair_weight < 0 or (cfg.pair_weight and cfg.time_reversal == "off"):
        raise ConfigError("pair_weight needs time_reversal twins or negatives, and must be >= 0")
    if cfg.time_reversal != "off" and cfg.task == "recognition":
        raise ConfigError("time_reversal applies to retrieval and pretrain, not recognition")


def warmup_cosine(total: int, warmup: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


class Trainer:
    def __init__(self, cfg: TrainConfig, progress: Callable[[dict], None] | None = None, stop: threading.Event | None = None):
        self.cfg = cfg
        self.progress = progress
        self.stop = stop
        self.out = Path(cfg.out)
        self.ckpt_dir = self.out / "checkpoints"
        self.world = World()  # set by _setup: torchrun's ranks, or one process

    def _setup(self) -> None:

        cfg = self.cfg
        validate(cfg)
        torch.manual_seed(cfg.seed)
        dev = resolve_device(cfg.device)
        self.world = distributed.setup(dev)
        if self.world.distributed and dev.startswith("cuda"):
            dev = f"cuda:{self.world.local_rank}"
        self.device = torch.device(dev)
        start = self._last_checkpoint() if cfg.resume else None
        if start and (self.out / "train_config.json").is_file():
            done = json.loads((Path(start) / "trainer_state.json").read_text())
            if cfg.steps is None or done["step"] >= cfg.steps:
                raise ConfigError(
                    f"{self.out} already holds a finished model ({done['step']} steps): choose another out, "
                    f"or a larger steps to train it further"
                )
        family = None if start else cfg.family
        self.encoder = load_encoder(
            start or cfg.model, family=family, device=str(self.device), cache=False, base=cfg.base,
            frames=cfg.frames if family else None,
        )  # fmt: skip
        if cfg.temporal_init_std is not None and not start:
            self.task_info_extra = {"temporal_init": init_temporal(self.encoder, cfg.temporal_init_std, cfg.seed)}
        if cfg.frames:
            self.encoder.spec = self.encoder.spec.with_frames(cfg.frames)
        self.encoder.train()
        if cfg.task not in TASKS:
            raise ConfigError(f"unknown task {cfg.task!r} (choose from {', '.join(TASKS)})")
        if self.world.distributed:
            distributed.broadcast_parameters(self.encoder)
        self.task = TASKS[cfg.task](cfg, self.encoder, self.device)
        self.dataset = self.task.dataset()
        self.task.info.update(getattr(self, "task_info_extra", {}))
        if cfg.freeze_layers:
            self.task.info["frozen"] = freeze_lower_layers(self.encoder, cfg.freeze_layers)
        new = getattr(self.encoder, "new_parameters", None)
        if new:
            self.task.info["new"] = ", ".join(n.strip(".").rsplit(".", 1)[-1] for n in new)
        world = self.world.size
        if len(self.dataset) < cfg.batch_size * world:
            raise DatasetError(
                f"{cfg.data}: {len(self.dataset)} videos, fewer than one global batch of {cfg.batch_size} x {world} processes"
            )
        self.sampler = EpochBatchSampler(len(self.dataset), cfg.batch_size, cfg.seed, rank=self.world.rank, world=world)
        self.task.info["global_batch"] = cfg.batch_size * world * cfg.accumulate
        if self.world.distributed:
            self.task.info["world_size"] = world
        self.batches_per_epoch = len(self.sampler.batches())
        self.total = cfg.steps or max(1, math.ceil(cfg.epochs * self.batches_per_epoch / cfg.accumulate))
        warm = int(cfg.warmup if cfg.warmup >= 1 else round(cfg.warmup * self.total))
        added = type(self.encoder).added_to_clip
        if cfg.new_lr_mul != 1.0 and not added:
            raise ConfigError(f"new_lr_mul: a {self.encoder.family} model adds nothing to CLIP")
        groups = param_groups(self.encoder, cfg.weight_decay, cfg.lr, added, cfg.new_lr_mul)
        self.optimizer = torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, warmup_cosine(self.total, warm))
        self.step = 0
        self.skipped = 0
        if start:
            self._restore(Path(start))
        self.log, self.tb = None, None
        if self.world.main:  # rank 0 alone writes logs, checkpoints and the model
            self.out.mkdir(parents=True, exist_ok=True)
            self.log = open(self.out / "train_log.jsonl", "a", encoding="utf-8")
            if self.task.info:
                self.log.write(json.dumps({"step": self.step, **self.task.info}) + "\n")
                self.log.flush()
            self.tb = _tensorboard(self.out)

    # -- one optimizer step ------------------------------------------------------------------
    def _step(self, micro: list[dict]) -> float:
        """One optimizer step over the micro-batches in ``micro`` (contrastive-exact when several)."""
        enc, task = self.encoder, self.task
        if len(micro) == 1:
            loss = task.loss(task.embed(micro[0]), micro)
            loss.backward()
        else:
            # GradCache: loss over the whole effective batch, gradients pushed back per micro-batch.
            with torch.no_grad():
                parts = [task.embed(b) for b in micro]
            whole = tuple(torch.cat(cols).requires_grad_(True) for cols in zip(*parts))
            loss = task.loss(whole, micro)
            loss.backward()
            offset = 0
            for b in micro:
                embs = task.embed(b)
                n = embs[0].shape[0]
                torch.autograd.backward(list(embs), [w.grad[offset : offset + n] for w in whole])
                offset += n
        params = [p for p in enc.parameters() if p.requires_grad]
        if self.world.distributed:
            from .distributed import average_gradients

            average_gradients(params)
        if self.cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(params, self.cfg.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        clamp_logit_scale(enc.logit_scale)
        return float(loss.detach())

    # -- the loop ----------------------------------------------------------------------------
    def run(self) -> TrainResult:
        self._setup()
        cfg = self.cfg
        losses: list[float] = []
        t0 = time.perf_counter()
        samples = 0
        budget = cfg.max_steps_this_run
        steps_this_run = 0
        micro_step = self.step * cfg.accumulate
        buf: list[dict] = []
        finished = True
        eval_report = None
        while self.step < self.total:
            epoch, skip = divmod(micro_step, self.batches_per_epoch)
            self.dataset.set_epoch(epoch)
            self.sampler.set_epoch(epoch, skip)
            workers = 0 if cfg.cache_frames else cfg.workers
            # Workers open their own readers in __getitem__, so the default fork start is safe here.
            loader = torch.utils.data.DataLoader(
                self.dataset, batch_sampler=self.sampler, num_workers=workers, collate_fn=collate
            )
            stop_now = False
            for batch in loader:
                micro_step += 1
                self.skipped += batch["failed"]
                if batch["size"] >= 2:
                    buf.append(batch)
                if micro_step % cfg.accumulate:
                    continue
                if not buf:
                    continue
                loss = self._step(buf)
                if not math.isfinite(loss):
                    raise TrainingError(
                        f"the loss became {loss} at step {self.step + 1}: no model was written "
                        f"(lower lr, or check the data); the last checkpoint in {self.ckpt_dir} is intact"
                    )
                samples += sum(b["size"] for b in buf)
                buf = []
                self.step += 1
                steps_this_run += 1
                losses.append(loss)
                self._log_step(loss, epoch, samples / max(time.perf_counter() - t0, 1e-9))
                if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0:
                    self._checkpoint()
                if cfg.eval_every and cfg.val_data and self.step % cfg.eval_every == 0 and self.world.main:
                    eval_report = self._evaluate()
                if self.step >= self.total:
                    break
                want_stop = (budget and steps_this_run >= budget) or (self.stop is not None and self.stop.is_set())
                if self.world.distributed:
                    from .distributed import any_rank

                    want_stop = any_rank(bool(want_stop), self.device)  # every rank stops at the same step
                if want_stop:
                    stop_now = True
                    break
            if stop_now:
                finished = False
                break
        seconds = time.perf_counter() - t0
        self.encoder.eval()
        if finished and self.world.main:
            self.encoder.save_pretrained(self.out, dtype=getattr(torch, cfg.save_dtype))
            atomic_write_text(self.out / "train_config.json", json.dumps(asdict(cfg), indent=2) + "\n")
            eval_report = self._evaluate()
        self._checkpoint()
        if self.log is not None:
            self.log.close()
        if self.tb is not None:
            self.tb.close()
        if self.world.distributed:
            from .distributed import teardown

            teardown()
        return TrainResult(
            self.out, self.step, losses[-1] if losses else float("nan"), losses, self.skipped, seconds,
            samples / seconds if seconds > 0 else 0.0, eval_report, finished,
        )  # fmt: skip

    def _log_step(self, loss: float, epoch: int, rate: float) -> None:
        record = {
            "step": self.step,
            "epoch": epoch,
            "loss": round(loss, 6),
            "lr": self.scheduler.get_last_lr()[0],
            "logit_scale": round(float(self.encoder.logit_scale.detach().exp()), 4),
            "samples_per_s": round(rate, 2),
            "skipped": self.skipped,
            "time": time.time(),
            **self.task.metrics,
        }
        if self.log is not None and (self.step % self.cfg.log_every == 0 or self.step == 1 or self.step == self.total):
            self.log.write(json.dumps(record) + "\n")
            self.log.flush()
        if self.tb is not None:
            self.tb.add_scalar("train/loss", loss, self.step)
            self.tb.add_scalar("train/lr", record["lr"], self.step)
            for key, value in self.task.metrics.items():
                self.tb.add_scalar(f"train/{key}", value, self.step)
        if self.progress and self.world.main:
            self.progress({**record, "total": self.total})

    def _evaluate(self) -> dict | None:
        if self.log is None:  # not rank 0
            return None
        self.encoder.eval()
        report = self.task.evaluate()
        self.encoder.train()
        if report is None:
            return None
        record = {"step": self.step, "eval": report}
        self.log.write(json.dumps(record) + "\n")
        self.log.flush()
        atomic_write_text(self.out / "eval.json", json.dumps(report, indent=2) + "\n")
        return report

    # -- checkpoints -------------------------------------------------------------------------
    def _last_checkpoint(self) -> str | None:
        if not self.ckpt_dir.is_dir():
            return None
        done = sorted(p for p in self.ckpt_dir.glob("step-*") if (p / "trainer_state.json").is_file())
        return str(done[-1]) if done else None

    def _checkpoint(self) -> None:
        if not self.world.main:
            return
        target = self.ckpt_dir / f"step-{self.step:08d}"
        if target.exists():
            return
        state = {"step": self.step, "skipped": self.skipped, "total": self.total, "model": self.cfg.model}

        def write(tmp: str) -> None:
            self.encoder.save_pretrained(tmp)
            blob = {
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "torch_rng": torch.get_rng_state(),
            }
            torch.save(blob, Path(tmp) / "trainer_state.pt")
            (Path(tmp) / "trainer_state.json").write_text(json.dumps(state) + "\n")

        atomic_write(target, write, folder=True)  # a checkpoint is whole, or absent
        for old in sorted(self.ckpt_dir.glob("step-*"))[: -self.cfg.keep_checkpoints]:
            shutil.rmtree(old, ignore_errors=True)

    def _restore(self, path: Path) -> None:
        state = json.loads((path / "trainer_state.json").read_text())
        blob = torch.load(path / "trainer_state.pt", map_location="cpu", weights_only=True)
        self.optimizer.load_state_dict(blob["optimizer"])
        self.scheduler.load_state_dict(blob["scheduler"])
        torch.set_rng_state(blob["torch_rng"])
        self.step = int(state["step"])
        self.skipped = int(state.get("skipped", 0))


def train(cfg: TrainConfig, progress: Callable[[dict], None] | None = None, stop: threading.Event | None = None) -> TrainResult:
    """Fine-tune ``cfg.model`` on ``cfg.data`` and save a loadable model in ``cfg.out``."""
    return Trainer(cfg, progress, stop).run()


def _tensorboard(out: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        return None
    return SummaryWriter(os.fspath(out / "tensorboard"))
