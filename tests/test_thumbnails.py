"""Thumbnails worth looking at (issue 24): >= 320 px wide, aspect kept, <= 40 KB, and
`vsearch thumbnails --rebuild` upgrades a store whose thumbnails were cut at the encoder's size."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vsearch.index_command import index_folders
from vsearch.store import Store
from vsearch.video.pictures import MAX_BYTES, MIN_WIDTH, encode_jpeg, thumbnail_decode_side

SAMPLE_MODEL = Path(__file__).resolve().parents[1] / "sample_data" / "model"
needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="Debian's ffmpeg writes the test footage")


def footage(path: Path, size: str, seconds: int = 12) -> Path:
    subprocess.run(
        [
            "ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=10", "-t", str(seconds),
            "-c:v", "libx264", "-preset", "veryfast", "-g", "20", "-pix_fmt", "yuv420p", str(path),
        ],
        check=True, timeout=120,
    )  # fmt: skip
    return path


def _thumbs(store: Path) -> list[tuple[int, int, bytes]]:
    import sqlite3

    with sqlite3.connect(store / "vsearch.db") as db:
        return [(w, h, bytes(j)) for w, h, j in db.execute("SELECT width, height, jpeg FROM thumbnails ORDER BY segment_id")]


def test_decode_side_keeps_the_aspect_and_never_upscales():
    assert thumbnail_decode_side(1920, 1080, 640) == 360
    assert thumbnail_decode_side(1080, 1920, 640) == 640  # portrait: the width is the short side
    assert thumbnail_decode_side(200, 100, 640) == 100  # a small video stays its own size


def test_noisy_frames_still_fit_the_byte_budget():
    noise = np.random.default_rng(0).integers(0, 256, (720, 1280, 3), dtype=np.uint8)
    jpeg, w, h = encode_jpeg(noise)
    assert len(jpeg) <= MAX_BYTES and w >= MIN_WIDTH and abs(w / h - 16 / 9) < 0.02
    assert Image.open(io.BytesIO(jpeg)).size == (w, h)


@needs_ffmpeg
def test_index_stores_display_size_thumbnails_and_rebuild_upgrades_old_ones(tmp_path):
    vids = tmp_path / "vids"
    vids.mkdir()
    footage(vids / "wide.mp4", "960x540")
    footage(vids / "tall.mp4", "360x640", seconds=6)
    store = tmp_path / "store"
    report = index_folders(store, [vids], model=str(SAMPLE_MODEL), workers=0)
    assert report.ok and report.sampling == "fast"
    thumbs = _thumbs(store)
    assert len(thumbs) == 3  # two segments of the wide file, one of the tall one
    for w, h, jpeg in thumbs:
        assert w >= MIN_WIDTH and len(jpeg) <= MAX_BYTES
        assert Image.open(io.BytesIO(jpeg)).size == (w, h)
    assert sorted({(w, h) for w, h, _ in thumbs}) == [(360, 640), (640, 360)]  # aspect kept, 64 px model

    # An old store: thumbnails cut from the 64 px model's frames.
    with Store.open(store, create=False) as st:
        small = encode_jpeg(np.zeros((64, 64, 3), np.uint8), aspect=16 / 9)
        st.put_thumbnails([(sid, *small) for sid in (1, 2, 3)])
    assert {w for w, _h, _j in _thumbs(store)} == {114}
    cmd = [sys.executable, "-m", "vsearch_cli.main", "thumbnails", "--store", str(store), "--json"]
    plain = subprocess.run(cmd, capture_output=True, text=True, timeout=170)
    assert json.loads(plain.stdout) == {"made": 0, "failed": 0}  # without --rebuild, only missing ones
    rebuilt = subprocess.run([*cmd, "--rebuild"], capture_output=True, text=True, timeout=170)
    assert json.loads(rebuilt.stdout) == {"made": 3, "failed": 0}, rebuilt.stderr
    assert sorted({(w, h) for w, h, _ in _thumbs(store)}) == [(360, 640), (640, 360)]
    again = subprocess.run([*cmd, "--rebuild"], capture_output=True, text=True, timeout=170)
    assert json.loads(again.stdout) == {"made": 0, "failed": 0}
    status = subprocess.run(
        [sys.executable, "-m", "vsearch_cli.main", "status", "--store", str(store), "--json"],
        capture_output=True, text=True, timeout=170,
    )  # fmt: skip
    assert json.loads(status.stdout)["sampling"] == "fast"
