"""Ingest throughput against its physical limits, and memory as the collection grows.

    python bench/ingest.py                 # tiny encoder, ViT-B/32-sized encoder, memory (~10 min)
    python bench/ingest.py --skip b32      # without the slow ViT-B/32 part

1. **Tiny encoder: decoding is the limit.** Baseline: decord alone decoding the same frames of
   the same files (one ``get_batch`` per segment, decoded at the encoder's size), in as many
   processes as vsearch uses, no model, no store. vsearch: ``index`` on a fresh store. Goal:
   vsearch >= 0.85x the baseline's segments/s.
2. **ViT-B/32-sized encoder (random weights): the encoder is the limit.** Baseline: the
   encoder alone on pre-decoded pixels in the same batch size. Goal: >= 0.9x.
3. **Memory:** peak RSS of ``vsearch index`` (its largest process: the indexer or a decode
   worker) on 200 videos against 20. Goal: <= 1.5x (segments stream; nothing accumulates).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from multiprocessing import get_context
from pathlib import Path


def _decode_file(args) -> int:
    """Baseline worker: decord alone, the same frames vsearch would sample."""
    path, frames, size, seg_s = args
    import decord

    from vsearch.video.sampling import plan_segments, uniform_indices

    vr = decord.VideoReader(path, ctx=decord.cpu(0), width=size, height=size, num_threads=1)
    import numpy as np

    times = np.asarray(vr.get_frame_timestamp(np.arange(len(vr))))
    n = 0
    for p in plan_segments(times, seg_s):
        vr.get_batch(uniform_indices(p.start_frame, p.end_frame, frames)).asnumpy()
        n += 1
    return n


def _warm(_=None) -> int:
    import decord  # noqa: F401
    import numpy  # noqa: F401

    import vsearch.video.sampling  # noqa: F401

    return os.getpid()


def decode_baseline(paths: list[str], frames: int, size: int, workers: int, seg_s: float) -> tuple[int, float]:
    """Segments decoded and seconds, by ``workers`` warm processes (start-up not counted: the
    physical limit is decoding, not spawning interpreters)."""
    with get_context("spawn").Pool(workers, initializer=_warm) as pool:
        pool.map(_warm, range(workers * 4))
        t0 = time.perf_counter()
        segs = sum(pool.map(_decode_file, [(p, frames, size, seg_s) for p in paths], chunksize=1))
        return segs, time.perf_counter() - t0


def vsearch_index(paths_dir: Path, encoder, workers: int, batch: int) -> tuple[int, float, dict]:
    from vsearch.ingest import index
    from vsearch.store import Store

    store_dir = Path(tempfile.mkdtemp(prefix="vsearch-ingest-"))
    st = Store.open(store_dir)
    t0 = time.perf_counter()
    report = index(st, [paths_dir], encoder, workers=workers, batch_size=batch)
    seconds = time.perf_counter() - t0
    st.close()
    shutil.rmtree(store_dir, ignore_errors=True)
    return report.counts()["segments"], seconds, report.timings


def encoder_alone(encoder, segments: int, batch: int) -> float:
    import torch

    spec = encoder.spec
    px = torch.randn(batch, spec.frames, 3, spec.pixels.image_size, spec.pixels.image_size)
    encoder.encode_videos(px)  # warm-up
    t0 = time.perf_counter()
    done = 0
    while done < segments:
        encoder.encode_videos(px)
        done += batch
    return done / (time.perf_counter() - t0)


def index_peak_rss(folder: Path, *options: str) -> tuple[float, int]:
    """Peak RSS (MB) of the largest process of ``vsearch index FOLDER`` (the indexer or one of its
    decode workers: ``ru_maxrss`` of waited-for descendants is a maximum, not a sum) and its exit
    code. Run from a fresh interpreter, so nothing this benchmark loaded counts."""
    cmd = [
        sys.executable,
        "-m",
        "vsearch_cli.main",
        "index",
        str(folder),
        "--store",
        str(folder / "store"),
        "--model",
        "tiny-clip",
        *options,
    ]
    code = (
        "import json, resource, subprocess; "
        f"p = subprocess.run({cmd!r}, capture_output=True); "
        "print(json.dumps([resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, p.returncode]))"
    )
    rss, rc = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    return rss, rc


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--videos", type=int, default=24)
    p.add_argument("--size", default="640x360", help="synthetic video size (decode cost grows with it; real footage is larger)")
    p.add_argument("--seconds", type=float, default=20.0, help="length of each synthetic video (2 segments of 10 s)")
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--b32-videos", type=int, default=24, help="videos for the ViT-B/32 part (2 segments each)")
    p.add_argument("--skip", default="")
    args = p.parse_args()
    skip = set(filter(None, args.skip.split(",")))

    from vsearch.embedding import default_workers
    from vsearch.models import load_encoder
    from vsearch.synth.scenes import RenderSettings, generate

    workers = args.workers or default_workers()
    work = Path(tempfile.mkdtemp(prefix="vsearch-ingest-bench-"))
    os.environ["VSEARCH_HOME"] = str(work / "home")
    report = {"machine": f"{os.cpu_count()} cores", "workers": workers}
    try:
        width, height = (int(x) for x in args.size.split("x"))
        generate(
            work / "set", args.videos, seed=5, settings=RenderSettings(width=width, height=height, fps=25, seconds=args.seconds)
        )
        paths = sorted(str(x) for x in (work / "set" / "videos").iterdir())
        if "tiny" not in skip:
            enc = load_encoder("tiny-clip")
            base_segs, base_s = decode_baseline(paths, enc.spec.frames, enc.spec.pixels.image_size, workers, 10.0)
            segs, secs, timings = vsearch_index(work / "set" / "videos", enc, workers, 16)
            report["tiny"] = {
                "segments": segs,
                "baseline_segments_per_s": round(base_segs / base_s, 2),
                "vsearch_segments_per_s": round(segs / secs, 2),
                "ratio": round((segs / secs) / (base_segs / base_s), 3),
                "vsearch_timings": timings,
            }
            print("tiny encoder:", json.dumps(report["tiny"]), flush=True)
        if "b32" not in skip:
            import torch
            from transformers import CLIPConfig

            from vsearch.models.mean_pool import MeanPoolEncoder

            torch.manual_seed(0)
            big = MeanPoolEncoder.from_config(CLIPConfig(projection_dim=512), frames=12).eval()
            subset = work / "b32"
            (subset / "videos").mkdir(parents=True)
            for x in paths[: args.b32_videos]:
                shutil.copy(x, subset / "videos")
            # The encoder alone, on as many segments, before and after vsearch: a shared machine
            # drifts over minutes, and the faster of the two is the conservative baseline.
            before = encoder_alone(big, 2 * args.b32_videos, 8)
            segs, secs, timings = vsearch_index(subset / "videos", big, workers, 8)
            alone = max(before, encoder_alone(big, segs, 8))
            report["b32"] = {
                "segments": segs,
                "encoder_alone_segments_per_s": round(alone, 3),
                "vsearch_segments_per_s": round(segs / secs, 3),
                "ratio": round((segs / secs) / alone, 3),
                "vsearch_timings": timings,
            }
            print("ViT-B/32-sized encoder:", json.dumps(report["b32"]), flush=True)
        if "memory" not in skip:
            small, large = work / "m20", work / "m200"
            generate(small, 20, seed=6)
            generate(large, 200, seed=6)
            (r20, rc20), (r200, rc200) = index_peak_rss(small / "videos"), index_peak_rss(large / "videos")
            if rc20 or rc200:
                raise SystemExit(f"vsearch index failed (exit codes {rc20}, {rc200}): the memory figures would not mean anything")
            report["memory"] = {"peak_rss_mb_20": round(r20, 1), "peak_rss_mb_200": round(r200, 1), "ratio": round(r200 / r20, 3)}
            print("memory:", json.dumps(report["memory"]), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
