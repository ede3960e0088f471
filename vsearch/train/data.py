"""Captioned-video datasets for training and evaluation.

Rows come from a CSV or JSONL with ``path`` (or ``video_id`` + a video root) and one or more
captions per video (a ``caption`` column repeated over rows, or a ``captions`` list in JSONL).
Training draws one caption per video per step; evaluation uses every caption as a query.

Decoding happens in ``__getitem__`` (so in DataLoader workers, each opening its own reader). A
file that fails to decode yields ``None``; the collate function drops it and counts it, and
the run goes on.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import DatasetError, DecodeError
from ..video.decode import VideoReader, center_crop
from ..video.sampling import jittered_indices, uniform_indices
from ..video.transforms import PixelSpec


@dataclass(frozen=True)
class CaptionedVideo:
    path: str
    captions: tuple[str, ...]


def read_captions(path: str | os.PathLike[str], video_root: str | os.PathLike[str] | None = None) -> list[CaptionedVideo]:
    """Videos with their captions, in first-seen order. Relative paths resolve against the
    file's folder (or ``video_root``, which also turns ``video_id`` into ``ROOT/ID.mp4``)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such captions file")
    base = Path(video_root) if video_root else path.parent
    rows: list[dict] = []
    if path.suffix.lower() in (".jsonl", ".json"):
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as exc:
                        raise DatasetError(f"{path}:{n}: not JSON ({exc.msg})") from None
    else:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    grouped: dict[str, list[str]] = {}
    for n, row in enumerate(rows, 1):
        video = row.get("path") or row.get("video") or row.get("video_path")
        if not video and row.get("video_id"):
            video = f"{row['video_id']}.mp4"
        if not video:
            raise DatasetError(f"{path}: row {n} has no `path` (or `video_id`) column")
        caps = row.get("captions") or row.get("caption") or row.get("text") or row.get("sentence")
        if isinstance(caps, str):
            caps = [caps]
        if not caps:
            raise DatasetError(f"{path}: row {n} has no caption")
        full = os.path.normpath(os.path.join(base, video))
        grouped.setdefault(full, []).extend(c.strip() for c in caps if c and c.strip())
    return [CaptionedVideo(p, tuple(c)) for p, c in grouped.items()]


class VideoTextDataset(torch.utils.data.Dataset):
    """Items are ``(frames uint8 (T, S, S, 3), caption, index)`` or ``None`` on decode failure.

    Randomness (frame jitter, caption choice) is a function of (seed, epoch, index), so a run
    resumed mid-epoch sees exactly the batches an uninterrupted run would have seen.
    """

    def __init__(
        self,
        items: Sequence[CaptionedVideo],
        frames: int,
        pixels: PixelSpec,
        *,
        train: bool = True,
        seed: int = 0,
        cache: bool = False,
    ):
        self.items = list(items)
        self.frames = frames
        self.pixels = pixels
        self.train = train
        self.seed = seed
        self.epoch = 0
        #: With ``cache``, every frame of every clip is decoded once and kept (small datasets only).
        self._cache: dict[int, np.ndarray | None] | None = {} if cache else None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.items)

    def _rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, index])

    def __getitem__(self, index: int):
        item = self.items[index]
        rng = self._rng(index)
        caption = item.captions[int(rng.integers(len(item.captions)))] if self.train else item.captions[0]
        try:
            frames = self._frames(index, rng)
        except DecodeError:
            return None
        return frames, caption, index

    def _frames(self, index: int, rng: np.random.Generator) -> np.ndarray:
        size = self.pixels.image_size
        if self._cache is not None:
            if index not in self._cache:
                try:
                    with VideoReader(self.items[index].path, size, self.pixels.resize) as r:
                        self._cache[index] = center_crop(r.get(list(range(r.info.num_frames))), size)
                except DecodeError:
                    self._cache[index] = None
            allf = self._cache[index]
            if allf is None:
                raise DecodeError(self.items[index].path, "could not be decoded")
            return allf[self._indices(len(allf), rng)]
        with VideoReader(self.items[index].path, size, self.pixels.resize) as r:
            return center_crop(r.get(self._indices(r.info.num_frames, rng)), size)

    def _indices(self, n: int, rng: np.random.Generator) -> list[int]:
        if self.train:
            return jittered_indices(0, n, self.frames, rng)
        return uniform_indices(0, n, self.frames)


def collate(batch):
    """Stack the good items; report how many failed to decode."""
    good = [b for b in batch if b is not None]
    failed = len(batch) - len(good)
    if not good:
        return None, [], [], failed
    frames = torch.from_numpy(np.stack([g[0] for g in good]))
    return frames, [g[1] for g in good], [g[2] for g in good], failed


class EpochBatchSampler(torch.utils.data.Sampler):
    """Shuffled batches per epoch from (seed, epoch), starting ``skip`` batches in (for resume)."""

    def __init__(self, n: int, batch_size: int, seed: int, drop_last: bool = True):
        self.n, self.batch_size, self.seed, self.drop_last = n, batch_size, seed, drop_last
        self.epoch = 0
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = epoch, skip

    def batches(self) -> list[list[int]]:
        order = np.random.default_rng([self.seed, self.epoch, 7]).permutation(self.n).tolist()
        out = [order[i : i + self.batch_size] for i in range(0, self.n, self.batch_size)]
        if self.drop_last and out and len(out[-1]) < self.batch_size:
            out.pop()
        return out

    def __iter__(self):
        yield from self.batches()[self.skip :]

    def __len__(self) -> int:
        return max(0, len(self.batches()) - self.skip)
