"""Behaviour the README documents, each checked: --wait, touch-only, the training schedule,
embed --segments / --texts-file, synth from the CLI, and the GPU path (skipped without CUDA)."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from vsearch.datasets.clips import collate
from vsearch.store import Store
from vsearch.train.loop import warmup_cosine
from vsearch_cli.main import app

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"
runner = CliRunner()


def run(*args, code=0):
    res = runner.invoke(app, [str(a) for a in args])
    assert res.exit_code == code, res.output
    return res


def test_index_wait_waits_for_the_writer_then_runs(tmp_path, synth_dir):
    store = tmp_path / "s"
    vids = tmp_path / "v"
    vids.mkdir()
    for f in sorted((synth_dir / "videos").iterdir())[:2]:
        shutil.copy(f, vids / f.name)
    st = Store.open(store)
    lock = st.lock("test holder")
    cmd = [sys.executable, "-m", "vsearch", "index", str(vids), "--store", str(store), "--model", "tiny-clip", "--workers", "0"]
    busy = subprocess.run(cmd + ["--json"], capture_output=True, text=True, timeout=120)
    assert busy.returncode != 0 and "test holder" in busy.stderr  # refused, naming the holder
    proc = subprocess.Popen(cmd + ["--wait", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(3)
    assert proc.poll() is None  # still waiting
    lock.release()
    st.close()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert json.loads(out)["counts"]["indexed"] == 2


def test_a_new_mtime_with_the_same_bytes_is_only_touched(tmp_path, synth_dir):
    store, vids = tmp_path / "s", tmp_path / "v"
    shutil.copytree(synth_dir / "videos", vids)
    run("index", vids, "--store", store, "--model", "tiny-clip", "--workers", "0")
    gen = json.loads(run("status", "--store", store, "--json").stdout)["generation"]
    victim = sorted(vids.iterdir())[0]
    os.utime(victim, ns=(time.time_ns(), time.time_ns() + 10**9))
    rep = json.loads(run("index", vids, "--store", store, "--json").stdout)
    assert rep["counts"]["unchanged"] == 12 and rep["counts"]["indexed"] == 0
    assert json.loads(run("status", "--store", store, "--json").stdout)["generation"] == gen  # nothing re-embedded
    listed = {v["path"]: v for v in json.loads(run("list", "--store", store, "--json").stdout)}
    assert str(victim) in listed
    with Store.open(store) as st:  # the new mtime is recorded: the next run skips the file unread
        assert st.known_videos([str(vids)])[str(victim)].mtime_ns == victim.stat().st_mtime_ns


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


def test_embed_segments_and_texts_file(tmp_path):
    out = tmp_path / "seg.npy"
    comp = SAMPLE / "videos" / "compilation_01.mp4"
    res = json.loads(run("embed", comp, "--model", "tiny-clip", "--segments", "--out", out, "--workers", "0", "--json").stdout)
    assert res["rows"] == 3  # a 30 s compilation: three 10 s segments
    rows = json.loads(out.with_suffix(".json").read_text())["rows"]
    assert [(r["start"], r["end"]) for r in rows] == [(0.0, 10.0), (10.0, 20.0), (20.0, 30.0)]
    texts = tmp_path / "t.txt"
    texts.write_text("a red circle\n\na blue square\n")
    res = json.loads(run("embed", "--texts-file", texts, "--model", "tiny-clip", "--out", tmp_path / "t.npy", "--json").stdout)
    v = np.load(tmp_path / "t.npy")
    assert res["rows"] == 2 and v.shape == (2, 64) and np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)


def test_synth_from_the_cli(tmp_path):
    run("synth", tmp_path / "s", "--count", "3", "--seed", "4")
    lines = (tmp_path / "s" / "captions.csv").read_text().splitlines()
    assert lines[0] == "path,caption" and len(lines) == 4
    assert len(list((tmp_path / "s" / "videos").glob("*.mp4"))) == 3
    run("synth", tmp_path / "d", "--direction-set", "--count", "1")
    assert len((tmp_path / "d" / "captions.csv").read_text().splitlines()) == 17  # 16 held-out scenes


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


def test_the_eval_cache_is_invalidated_by_a_changed_file(tmp_path):
    from vsearch.eval.cache import EmbeddingCache

    video = tmp_path / "a.mp4"
    shutil.copy(SAMPLE / "videos" / "red_circle_left_01.mp4", video)
    sampling = {"frames": 8}
    cache = EmbeddingCache("fp-test", tmp_path / "cache")
    key = EmbeddingCache.key(str(video), sampling)
    cache.put_many([(key, np.ones(4, np.float32))])
    assert set(cache.get_many([EmbeddingCache.key(str(video), sampling)])) == {key}  # same file, sampling: a hit
    assert EmbeddingCache.key(str(video), {"frames": 12}) != key  # another sampling
    os.utime(video, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert EmbeddingCache.key(str(video), sampling) != key  # a touched file is embedded again
    assert cache.get_many([EmbeddingCache.key(str(video), sampling)]) == {}
    other = EmbeddingCache("fp-other", tmp_path / "cache")
    assert other.path != cache.path and other.get_many([key]) == {}  # another model never reads these vectors


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
