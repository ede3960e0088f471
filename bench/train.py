"""Training throughput: ``vsearch train`` against a bare loop on pre-decoded tensors.

    python bench/train.py                  # tiny CLIP, 64 px, 8 frames, batch 32 (~5 min)

The bare loop is the floor of what training costs here: frames already decoded and in memory,
then pixels → video and text embeddings → loss → backward → AdamW step, nothing else. vsearch's
loop adds data loading (decoding in DataLoader workers, or the in-memory frame cache), jittered
sampling, tokenising, logging and checkpointing. Printed: samples/s of each and the ratio, for
streaming decode (2 workers) and for ``--cache-frames``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def bare_loop(model_dir: Path, clips: list[np.ndarray], captions: list[str], steps: int, batch: int, lr: float) -> float:
    from vsearch.models import load_encoder
    from vsearch.perf import tune_malloc
    from vsearch.train.loop import param_groups
    from vsearch.train.loss import contrastive_loss
    from vsearch.video.transforms import to_pixels

    tune_malloc()
    torch.manual_seed(0)
    enc = load_encoder(model_dir, cache=False).train()
    opt = torch.optim.AdamW(param_groups(enc, 0.05), lr=lr)
    frames = torch.from_numpy(np.stack(clips))
    rng = np.random.default_rng(0)
    done = 0
    t0 = None
    for step in range(steps + 2):
        if step == 2:  # two warm-up steps
            t0, done = time.perf_counter(), 0
        idx = rng.choice(len(clips), size=batch, replace=False)
        tok = enc.tokenize([captions[i] for i in idx])
        v = enc.embed_videos(to_pixels(frames[idx], enc.spec.pixels))
        t = enc.embed_texts(tok["input_ids"], tok["attention_mask"])
        loss = contrastive_loss(v, t, enc.logit_scale)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        done += batch
    return done / (time.perf_counter() - t0)


def vsearch_loop(data: Path, model_dir: Path, out: Path, steps: int, batch: int, lr: float, cache: bool, workers: int) -> float:
    from vsearch.train.loop import TrainConfig, train

    cfg = TrainConfig(data=str(data), model=str(model_dir), out=str(out), steps=steps, batch_size=batch, lr=lr, weight_decay=0.05,
                      warmup=2, workers=workers, cache_frames=cache, resume=False, log_every=1)  # fmt: skip
    train(cfg)
    log = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    times = [r["time"] for r in log if "loss" in r]
    # samples/s after the first epoch (the cache fills, the workers start, during the first one)
    per_epoch = max(1, len(list(__import__("csv").DictReader(open(data)))) // batch)
    start = min(per_epoch, len(times) - 2)
    return (len(times) - 1 - start) * batch / (times[-1] - times[start])


def main() -> None:
    from vsearch.models import load_encoder
    from vsearch.synth.scenes import generate
    from vsearch.video.decode import VideoReader, center_crop
    from vsearch.video.sampling import uniform_indices

    steps, batch, lr, frames = 40, 32, 1e-3, 8
    work = Path(tempfile.mkdtemp(prefix="vsearch-train-bench-"))
    os.environ["VSEARCH_HOME"] = str(work / "home")
    try:
        generate(work / "data", 128, seed=9)
        enc = load_encoder("tiny-clip", cache=False)
        enc.spec = enc.spec.with_frames(frames)
        model_dir = enc.save_pretrained(work / "start")
        rows = [r for r in __import__("csv").DictReader(open(work / "data" / "captions.csv"))]
        clips, caps = [], []
        for r in rows:
            with VideoReader(str(work / "data" / r["path"]), 64, "squash") as vr:
                clips.append(center_crop(vr.get(uniform_indices(0, vr.info.num_frames, frames)), 64))
            caps.append(r["caption"])
        bare = bare_loop(model_dir, clips, caps, steps, batch, lr)
        streamed = vsearch_loop(work / "data" / "captions.csv", model_dir, work / "o1", steps, batch, lr, cache=False, workers=2)
        cached = vsearch_loop(work / "data" / "captions.csv", model_dir, work / "o2", steps, batch, lr, cache=True, workers=0)
        print(f"tiny CLIP, {frames} frames, batch {batch}, {os.cpu_count()} cores, samples/s after warm-up:")
        print(f"  bare forward/backward loop on pre-decoded tensors  {bare:7.1f}")
        print(f"  vsearch train, decoding in 2 DataLoader workers    {streamed:7.1f}   ({streamed / bare:.2f}x)")
        print(f"  vsearch train, --cache-frames                      {cached:7.1f}   ({cached / bare:.2f}x)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
