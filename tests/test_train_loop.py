"""The training loop as documented: warmup then cosine, gradient clipping, the temperature clamp,
Ctrl-C saving a checkpoint that the rerun resumes, and the GPU path (skipped without CUDA)."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from vsearch.datasets.clips import collate
from vsearch.train.loop import warmup_cosine

runner = CliRunner()


def test_the_training_schedule_warms_up_then_follows_a_cosine():
    f = warmup_cosine(total=10, warmup=2)
    assert [f(0), f(1)] == [0.5, 1.0]
    assert f(2) == pytest.approx(1.0)
    assert f(6) == pytest.approx(0.5 * (1 + math.cos(math.pi * 4 / 8)))
    assert f(10) == pytest.approx(0.0) and f(50) == pytest.approx(0.0)


def test_gradients_are_clipped_to_the_configured_norm(tmp_path):
    from vsearch.train.loop import TrainConfig, Trainer

    cfg = TrainConfig(data="synth:static,size=32", model="tiny-clip:32", out=str(tmp_path), frames=1, steps=1,
                      batch_size=4, lr=1e-3, grad_clip=1e-3, workers=0)  # fmt: skip
    tr = Trainer(cfg)
    tr._setup()
    seen = []
    real = torch.nn.utils.clip_grad_norm_

    def spy(params, max_norm, *a, **k):
        params = list(params)
        total = real(params, max_norm, *a, **k)
        seen.append((float(total), float(torch.norm(torch.stack([p.grad.norm() for p in params if p.grad is not None])))))
        return total

    torch.nn.utils.clip_grad_norm_ = spy
    try:
        loader = torch.utils.data.DataLoader(tr.dataset, batch_sampler=tr.sampler, collate_fn=collate)
        batch = next(iter(loader))
        tr._step([batch])
    finally:
        torch.nn.utils.clip_grad_norm_ = real
        tr.log.close()
    before, after = seen[0]
    assert before > 1e-3 and after == pytest.approx(1e-3, rel=1e-3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: the GPU path is exercised where one exists")
def test_the_cuda_path_matches_the_cpu():
    from vsearch.models import load_encoder

    cpu = load_encoder("tiny-clip-vip", device="cpu", cache=False)
    gpu = load_encoder("tiny-clip-vip", device="cuda", cache=False)
    frames = np.random.default_rng(0).integers(0, 255, (2, 12, 64, 64, 3), dtype=np.uint8)
    a = cpu.encode_frames(frames).numpy()
    b = gpu.encode_frames(frames).cpu().numpy()
    assert np.abs(a - b).max() < 2e-2  # bf16 autocast on the GPU


def test_the_temperature_clamp_holds_when_training_pushes_past_it(tmp_path):
    from vsearch.train.loop import TrainConfig, Trainer
    from vsearch.train.loss import LOGIT_SCALE_MAX

    cfg = TrainConfig(data="synth:static,size=32", model="tiny-clip:32", out=str(tmp_path), frames=1, steps=1,
                      batch_size=4, lr=1e-3, workers=0)  # fmt: skip
    tr = Trainer(cfg)
    tr._setup()
    with torch.no_grad():
        tr.encoder.logit_scale.fill_(LOGIT_SCALE_MAX + 0.5)  # past the clamp: one step must bring it back
    loader = torch.utils.data.DataLoader(tr.dataset, batch_sampler=tr.sampler, collate_fn=collate)
    tr._step([next(iter(loader))])
    tr.log.close()
    assert float(tr.encoder.logit_scale.detach()) == pytest.approx(LOGIT_SCALE_MAX)


def test_ctrl_c_during_training_saves_a_checkpoint_and_the_rerun_resumes(tmp_path):
    """The CLI's Ctrl-C sets the stop event (graceful_stop); training stops after the step,
    checkpoints, and the same command continues from there."""
    from vsearch.train.loop import TrainConfig, train

    stop = threading.Event()
    cfg = TrainConfig(data="synth:static,size=32", model="tiny-clip:32", out=str(tmp_path / "m"), frames=1, steps=5,
                      batch_size=4, lr=1e-3, workers=0)  # fmt: skip
    first = train(cfg, progress=lambda r: r["step"] == 2 and stop.set(), stop=stop)
    assert not first.finished and first.steps == 2
    assert (tmp_path / "m" / "checkpoints" / "step-00000002" / "trainer_state.json").is_file()
    assert not (tmp_path / "m" / "vsearch.json").exists()  # no final model from an interrupted run
    second = train(cfg)
    assert second.finished and second.steps == 5 and len(second.losses) == 3  # steps 3-5 only
