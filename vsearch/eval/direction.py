"""Does an encoder know which way time runs? Measures on clips and their exact time reversals.

Every clip v comes with ṽ (its frames in reverse order, made in memory, so the two hold exactly
the same frames) and every caption c with c̃ (direction words swapped: ``train.reversal``). The
set is therefore closed under reversal, and a frame-averaging encoder must score exactly 50%:
its v and ṽ embed alike. That is the leak check: mean pooling above 50% means the measure
leaks something other than order.

- ``text_side``: a clip scores its caption above the swapped caption (Test of Time's measure),
  over v with c and ṽ with c̃.
- ``video_side``: a caption scores its clip above the reversed clip (Paxion / RTime binary).
- ``four_way``: a clip's caption wins among the four motions of its colour and shape (chance 25).
- ``R@1`` / ``R@5``: each caption against the clips of its group (v and ṽ of every scene): needs
  colour, shape and direction. ``colour_shape_top1``: the best clip has the caption's colour and
  shape.

Ties (scores within ``TIE`` of each other: float32 sums in another order) count ½ (1/k among k
tied) and their rate is reported: 100% ties on ``video_side`` is what order-blindness looks like.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch

from ..datasets.captions import swap_direction
from ..datasets.clips import VideoTextDataset
from ..datasets.items import CaptionedVideo
from ..errors import DatasetError
from ..synth.scenes import MOTIONS, Scene, render_scene
from ..video.transforms import to_pixels
from .motion import _read

#: Scores closer than this are a tie (cosines; float32 rounding of sums taken in another order).
TIE = 1e-5


def _pairwise(better: np.ndarray, worse: np.ndarray) -> tuple[float, float]:
    tie = np.abs(better - worse) <= TIE
    score = np.where(tie, 0.5, (better > worse).astype(float))
    return float(100 * score.mean()), float(100 * tie.mean())


@torch.no_grad()
def embed_frames(encoder, frames: np.ndarray, batch: int = 32) -> np.ndarray:
    """Unit video vectors of ``(N, T, H, W, 3)`` uint8 clips through the encoder's own pipeline."""
    dev = next(encoder.parameters()).device
    out = []
    for i in range(0, len(frames), batch):
        px = to_pixels(np.ascontiguousarray(frames[i : i + batch]), encoder.spec.pixels, device=dev)
        with encoder.autocast():
            out.append(encoder.embed_videos(px).float().cpu())
    return torch.cat(out).numpy()


def direction_report(encoder, frames: np.ndarray, captions: Sequence[str], groups: Sequence[int] | None = None) -> dict:
    """All measures on ``frames`` (N clips, captions from the synthetic grammar)."""
    n = len(captions)
    scenes = [Scene.parse(c) for c in captions]
    swapped = [swap_direction(c) for c in captions]
    if any(s is None for s in swapped):
        raise ValueError("every caption needs a direction word to swap")
    v = embed_frames(encoder, frames)
    vr = embed_frames(encoder, frames[:, ::-1].copy())  # a copy: numpy keeps a size-1 axis reversed in place
    vocab = sorted({Scene(s.shape, s.colour, m).caption for s in scenes for m in MOTIONS})
    index = {c: i for i, c in enumerate(vocab)}
    t = encoder.encode_texts(vocab).float().numpy()
    c_id = np.array([index[c] for c in captions])
    s_id = np.array([index[s] for s in swapped])
    sv, svr = v @ t.T, vr @ t.T  # (N, vocab)
    rows = np.arange(n)
    text_side, text_ties = _pairwise(
        np.concatenate([sv[rows, c_id], svr[rows, s_id]]), np.concatenate([sv[rows, s_id], svr[rows, c_id]])
    )
    video_side, video_ties = _pairwise(
        np.concatenate([sv[rows, c_id], svr[rows, s_id]]), np.concatenate([svr[rows, c_id], sv[rows, s_id]])
    )
    # 4-way among the motions of the clip's colour and shape.
    four, four_ties = [], []
    for sims, own in ((sv, c_id), (svr, s_id)):
        for i in range(n):
            sc = scenes[i]
            opts = np.array([sims[i, index[Scene(sc.shape, sc.colour, m).caption]] for m in MOTIONS])
            best = opts.max()
            tied = np.abs(opts - best) <= TIE
            mine = sims[i, own[i]]
            four.append(1.0 / tied.sum() if abs(mine - best) <= TIE else 0.0)
            four_ties.append(tied.sum() > 1)
    # Retrieval inside each group: gallery = its clips and their reversals.
    g = np.zeros(n, int) if groups is None else np.asarray(groups)
    gallery = np.concatenate([v, vr])
    gal_cap = np.concatenate([c_id, s_id])
    gal_group = np.concatenate([g, g])
    ranks, top1 = [], []
    for grp in np.unique(g):
        members = np.flatnonzero(gal_group == grp)
        for q in np.unique(gal_cap[members]):
            sims = gallery[members] @ t[q]
            pos = gal_cap[members] == q
            ranks.append(int((sims[~pos] > sims[pos].max()).sum()))
            best = Scene.parse(vocab[gal_cap[members][int(sims.argmax())]])
            want = Scene.parse(vocab[q])
            top1.append(best.colour == want.colour and best.shape == want.shape)
    ranks_a = np.array(ranks)
    return {
        "clips": n,
        "text_side": text_side,
        "text_side_ties": text_ties,
        "video_side": video_side,
        "video_side_ties": video_ties,
        "four_way": float(100 * np.mean(four)),
        "four_way_ties": float(100 * np.mean(four_ties)),
        "R@1": float(100 * np.mean(ranks_a < 1)),
        "R@5": float(100 * np.mean(ranks_a < 5)),
        "colour_shape_top1": float(100 * np.mean(top1)),
        "reversal_sensitivity": float(np.mean(1 - (v * vr).sum(1))),
    }


def load_direction_set(encoder, csv_path: str | os.PathLike[str], workers: int = 0) -> tuple[np.ndarray, list[str], list[int]]:
    """Decode a ``write_direction_set`` file (``path,caption,group``) at the encoder's frames and size."""
    rows = _read(csv_path)
    items = [CaptionedVideo(r["path"], (r["caption"],)) for r in rows]
    ds = VideoTextDataset(items, encoder.spec.frames, encoder.spec.pixels, train=False)
    clips = []
    for i in range(len(ds)):
        sample = ds[i]
        if sample is None:
            raise DatasetError(f"{items[i].path}: could not be decoded")
        clips.append(sample["frames"])
    return np.stack(clips), [r["caption"] for r in rows], [r["group"] for r in rows]


def evaluate_direction(encoder, csv_path: str | os.PathLike[str], frames_per_clip: int | None = None) -> dict:
    """``frames_per_clip`` overrides the model's frame count (an image model has 1: order needs more)."""
    if frames_per_clip:
        encoder.spec = encoder.spec.with_frames(frames_per_clip)
    elif encoder.spec.frames < 2:
        raise ValueError(
            f"{encoder.name} takes {encoder.spec.frames} frame per clip; pass frames_per_clip (--frames) to measure order"
        )
    frames, captions, groups = load_direction_set(encoder, csv_path)
    return direction_report(encoder, frames, captions, groups)


def render_direction_clips(
    scenes: Sequence[Scene], per_scene: int, frames: int, size: int, seed: int
) -> tuple[np.ndarray, list[str], list[int]]:
    """Fresh clips straight from the renderer (no files), for tests with a seed never trained on."""
    clips, caps, groups = [], [], []
    for g in range(per_scene):
        for i, sc in enumerate(scenes):
            clips.append(render_scene(sc, frames, size, size, np.random.default_rng([seed, g, i])))
            caps.append(sc.caption)
            groups.append(g)
    return np.stack(clips), caps, groups
