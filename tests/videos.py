"""Writers of small real video files for tests (PyAV), some with frames that encode their index; copies in batches."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

#: Frame i of an indexed video is a flat grey of value STEP * i, so a decoded frame tells its index.
STEP = 6


def indexed_frames(n: int, width: int, height: int) -> np.ndarray:
    if n * STEP > 255:
        raise ValueError(f"at most {255 // STEP + 1} indexed frames")
    values = (np.arange(n) * STEP).astype(np.uint8)
    return np.broadcast_to(values[:, None, None, None], (n, height, width, 3)).copy()


def frame_index(frame: np.ndarray) -> int:
    """Recover the index of a decoded indexed frame (robust to codec noise of a few levels)."""
    return int(round(float(frame.mean()) / STEP))


def write_video(
    path: str | os.PathLike[str], frames: np.ndarray, fps: int = 10, codec: str = "libx264", crf: int = 10,
    options: dict[str, str] | None = None,
) -> Path:  # fmt: skip
    """``frames`` encoded with PyAV; ``options``: the encoder's own (they replace the defaults)."""
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n, h, w, _ = frames.shape
    with av.open(os.fspath(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = w, h
        stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        if options is not None:
            stream.options = dict(options)
        elif codec == "libx264":
            stream.options = {"crf": str(crf), "preset": "veryfast"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_indexed(path, n: int = 40, width: int = 64, height: int = 48, fps: int = 10, **kw) -> Path:
    return write_video(path, indexed_frames(n, width, height), fps=fps, **kw)


def write_hevc_indexed(path, x265_params: str, n: int = 40) -> Path:
    """``write_indexed`` as HEVC (libx265, CRF 10, these x265 parameters); the test skips, saying
    why, when this PyAV build cannot write HEVC."""
    import av
    import pytest

    try:
        return write_indexed(path, n, codec="libx265", options={"crf": "10", "x265-params": x265_params})
    except (av.FFmpegError, ValueError) as exc:
        pytest.skip(f"this PyAV build cannot write HEVC: {exc}")


def write_noise(path, n: int = 20, width: int = 64, height: int = 48, fps: int = 10, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    return write_video(path, rng.integers(0, 256, (n, height, width, 3), dtype=np.uint8), fps=fps)


def copy_in_batches(videos_dir: Path, dest: Path, *counts: int) -> list[Path]:
    """Copies of ``videos_dir``'s videos (sorted) in new folders ``dest/batch0``, ``dest/batch1``, ...:
    ``counts[i]`` in folder i, in order, so that a test indexes one batch and then adds the next."""
    videos = sorted(videos_dir.iterdir())
    if sum(counts) > len(videos):
        raise ValueError(f"{videos_dir} holds {len(videos)} videos, not {sum(counts)}")
    folders, start = [], 0
    for i, n in enumerate(counts):
        folder = dest / f"batch{i}"
        folder.mkdir(parents=True)
        for v in videos[start : start + n]:
            shutil.copy(v, folder / v.name)
        folders.append(folder)
        start += n
    return folders
