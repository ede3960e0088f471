"""Torch datasets that decode captioned or labelled videos for training and evaluation.

Decoding happens in ``__getitem__`` (so in DataLoader workers, each opening its own reader). A
file that fails to decode yields ``None``; the collate function drops it and counts it, and
the run goes on.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..errors import DecodeError
from ..video.decode import VideoReader, center_crop
from ..video.sampling import jittered_indices, uniform_indices
from ..video.transforms import PixelSpec
from .items import CaptionedVideo, PretrainRow


class ClipDataset(torch.utils.data.Dataset):
    """Decodes T frames of item ``i``; subclasses add the text or label.

    Randomness (frame jitter, caption choice) is a function of (seed, epoch, index), so a run
    resumed mid-epoch sees exactly the batches an uninterrupted run would have seen. With
    ``clips`` > 1 or ``crops`` > 1 (evaluation views), frames are ``(views, T, S, S, 3)``.
    """

    def __init__(
        self,
        paths: Sequence[str],
        frames: int,
        pixels: PixelSpec,
        *,
        train: bool = True,
        seed: int = 0,
        cache: bool = False,
        clips: int = 1,
        crops: int = 1,
    ):
        self.paths = list(paths)
        self.frames = frames
        self.pixels = pixels
        self.train = train
        self.seed = seed
        self.epoch = 0
        self.clips, self.crops = clips, crops
        #: With ``cache``, every frame of every clip is decoded once and kept (small datasets only).
        self._cache: dict[int, np.ndarray | None] | None = {} if cache else None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.paths)

    def _rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, index])

    def __getitem__(self, index: int):
        rng = self._rng(index)
        try:
            sample = {"frames": self._frames(index, rng), "index": index}
            sample.update(self.extra(index, rng))
        except DecodeError:
            return None
        return sample

    def extra(self, index: int, rng: np.random.Generator) -> dict:
        return {}

    def _decode(self, index: int, indices_for) -> np.ndarray:
        size = self.pixels.image_size
        views = self.clips * self.crops
        resize = "crop" if self.crops > 1 else self.pixels.resize
        if self._cache is not None and views == 1:
            if index not in self._cache:
                try:
                    with VideoReader(self.paths[index], size, resize) as r:
                        self._cache[index] = center_crop(r.get(list(range(r.info.num_frames))), size)
                except DecodeError:
                    self._cache[index] = None
            allf = self._cache[index]
            if allf is None:
                raise DecodeError(self.paths[index], "could not be decoded")
            return allf[indices_for(len(allf))[0]]
        with VideoReader(self.paths[index], size, resize) as r:
            chunks = indices_for(r.info.num_frames)
            decoded = [r.get(idx) for idx in chunks]
        if views == 1:
            return center_crop(decoded[0], size)
        return np.stack([crop for clip in decoded for crop in _three_crops(clip, size, self.crops)])

    def _frames(self, index: int, rng: np.random.Generator) -> np.ndarray:
        def indices_for(n: int) -> list[list[int]]:
            if self.clips == 1:
                return [jittered_indices(0, n, self.frames, rng) if self.train else uniform_indices(0, n, self.frames)]
            bounds = np.linspace(0, n, self.clips + 1).astype(int)
            return [uniform_indices(int(a), max(int(b), int(a) + 1), self.frames) for a, b in zip(bounds[:-1], bounds[1:])]

        return self._decode(index, indices_for)


def _three_crops(frames: np.ndarray, size: int, crops: int) -> list[np.ndarray]:
    """1 or 3 square crops along the long side (left/centre/right or top/centre/bottom)."""
    h, w = frames.shape[1:3]
    if crops == 1:
        return [center_crop(frames, size)]
    if w >= h:
        offs = [0, (w - size) // 2, w - size]
        return [np.ascontiguousarray(frames[:, :size, o : o + size]) for o in offs]
    offs = [0, (h - size) // 2, h - size]
    return [np.ascontiguousarray(frames[:, o : o + size, :size]) for o in offs]


class VideoTextDataset(ClipDataset):
    """Samples ``{"frames", "text", "index"}``: one random caption per video when training."""

    def __init__(self, items: Sequence[CaptionedVideo], frames: int, pixels: PixelSpec, **kw):
        super().__init__([it.path for it in items], frames, pixels, **kw)
        self.items = list(items)

    def extra(self, index: int, rng: np.random.Generator) -> dict:
        caps = self.items[index].captions
        return {"text": caps[int(rng.integers(len(caps)))] if self.train else caps[0]}


class PretrainDataset(ClipDataset):
    """Samples with the clip, its middle frame (a one-frame video), subtitle and caption."""

    def __init__(self, rows: Sequence[PretrainRow], frames: int, pixels: PixelSpec, **kw):
        super().__init__([r.path for r in rows], frames, pixels, **kw)
        self.rows = list(rows)

    def _frames(self, index: int, rng: np.random.Generator) -> np.ndarray:
        holder: dict = {}

        def indices_for(n: int) -> list[list[int]]:
            holder["middle"] = n // 2  # CLIP-ViP: vr[int(len(vr) / 2)]
            return [[*jittered_indices(0, n, self.frames, rng), n // 2]]

        both = self._decode(index, indices_for)  # (T + 1, S, S, 3): the clip, then its middle frame
        self._middle = both[-1:]
        return both[:-1]

    def extra(self, index: int, rng: np.random.Generator) -> dict:
        row = self.rows[index]
        return {"middle": self._middle, "subtitle": row.subtitle, "caption": row.caption}


class RecognitionDataset(ClipDataset):
    """Samples ``{"frames", "label", "index"}`` for class-labelled videos."""

    def __init__(self, items, frames: int, pixels: PixelSpec, **kw):
        super().__init__([it.path for it in items], frames, pixels, **kw)
        self.labels = [it.label for it in items]

    def extra(self, index: int, rng: np.random.Generator) -> dict:
        return {"label": self.labels[index]}


def collate(batch: list[dict | None]) -> dict:
    """Stack the samples that decoded; arrays become tensors, the rest lists. ``failed`` counts drops."""
    good = [b for b in batch if b is not None]
    out: dict = {"failed": len(batch) - len(good), "size": len(good)}
    if not good:
        return out
    for key in good[0]:
        values = [g[key] for g in good]
        if isinstance(values[0], np.ndarray):
            out[key] = torch.from_numpy(np.stack(values))
        elif isinstance(values[0], int):
            out[key] = torch.tensor(values)
        else:
            out[key] = values
    return out
