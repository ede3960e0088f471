"""The quality guard of --sampling fast (issue 24): on footage with motion and cuts, re-encoded
with camera GOPs (2 s), fast embeddings stay within cos 0.98 of exact ones on average and find
the same segments for the sample data's segment queries, for mean pool and CLIP-ViP."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from vsearch.embedding import SegmentBatcher, StageTimes, encode_stream
from vsearch.models import load_encoder
from vsearch.video.workers import DecodeJob, DecodePool

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="Debian's ffmpeg re-encodes the sample films"),
]


@pytest.fixture(scope="module")
def camera_films(tmp_path_factory) -> list[str]:
    """The four sample compilations (three scenes each, cut at 10 and 20 s) with a keyframe every 2 s."""
    out = tmp_path_factory.mktemp("gop2s")
    paths = []
    for src in sorted((SAMPLE / "videos").glob("compilation_*.mp4")):
        dst = out / src.name
        subprocess.run(
            [
                "ffmpeg", "-loglevel", "error", "-y", "-i", str(src), "-c:v", "libx264", "-preset", "veryfast",
                "-g", "30", "-keyint_min", "30", "-sc_threshold", "0", "-bf", "2", "-pix_fmt", "yuv420p", str(dst),
            ],
            check=True, timeout=120,
        )  # fmt: skip
        paths.append(str(dst))
    return paths


def _embed(encoder, paths: list[str], sampling: str) -> dict[tuple[str, int], tuple[np.ndarray, list[int], float]]:
    spec = encoder.spec
    jobs = [
        DecodeJob(i, p, spec.frames, spec.pixels.image_size, spec.pixels.resize, 10.0, 2.0, sampling=sampling)
        for i, p in enumerate(paths)
    ]
    out = {}
    times = StageTimes()
    for kind, job_id, video in encode_stream(DecodePool(0).messages(jobs), SegmentBatcher(encoder, 8, times), times):
        if kind == "video":
            for seg, vec in video.vectors.items():
                out[(os.path.basename(paths[job_id]), seg)] = (vec, video.frame_idx[seg], video.plans[seg][3])
    return out


@pytest.mark.parametrize("model", ["model", "clip-vip"])
def test_fast_stays_close_to_exact(camera_films, model):
    encoder = load_encoder(str(SAMPLE / model), device="cpu")
    exact, fast = _embed(encoder, camera_films, "exact"), _embed(encoder, camera_films, "fast")
    keys = sorted(exact)
    assert keys == sorted(fast) and len(keys) == 12
    assert sum(exact[k][1] != fast[k][1] for k in keys) >= 10, "fast sampling moved (almost) no frame: nothing was tested"
    cos = np.array([float(np.dot(exact[k][0], fast[k][0])) for k in keys])
    assert cos.mean() >= 0.98 and cos.min() >= 0.95, cos.round(4)

    rows = list(csv.DictReader(open(SAMPLE / "segments.csv")))
    texts = np.asarray(encoder.encode_texts([r["caption"] for r in rows]))
    s_exact = texts @ np.stack([exact[k][0] for k in keys]).T
    s_fast = texts @ np.stack([fast[k][0] for k in keys]).T
    top_e, top_f = s_exact.argmax(1), s_fast.argmax(1)
    if model == "clip-vip":
        assert (top_e == top_f).all()  # measured 12 / 12
    else:
        # The 64-d mean-pool demo is direction-blind: its segments draw. Measured 10 / 12 the
        # same; where fast picks another segment, exact scored it within 0.03 of its own pick.
        assert (top_e == top_f).sum() >= 10
        q = np.flatnonzero(top_e != top_f)
        gaps = s_exact[q, top_e[q]] - s_exact[q, top_f[q]]
        assert (gaps < 0.03).all(), gaps
