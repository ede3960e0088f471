"""Metrics on the synthetic shapes benchmark, where captions are true by construction.

- attribute accuracy: does the top-1 video for a caption have the caption's colour and shape
  (and motion axis, and exact direction)? Many clips share a caption, so this says more than
  exact-clip R@1 about what a model understood.
- direction accuracy: for each clip, does its caption outscore the same caption with the
  opposite direction ("moving left" vs "moving right")? A frame-averaging encoder sees the same
  frames either way, so it sits near 50%; a model that learned temporal order does better.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..data.synthetic import OPPOSITE, Scene
from ..train.data import CaptionedVideo
from .metrics import retrieval_report
from .retrieval import encode_videos

AXIS = {"left": "horizontal", "right": "horizontal", "up": "vertical", "down": "vertical"}


def motion_benchmark(encoder, items: Sequence[CaptionedVideo], *, workers: int = 2) -> dict:
    """Retrieval metrics plus attribute and direction accuracy for synthetic clips."""
    videos, failed = encode_videos(encoder, items, workers=workers)
    scenes = [Scene.parse(it.captions[0]) for it in items]
    texts = [s.caption for s in scenes]
    flipped = [Scene(s.shape, s.colour, OPPOSITE[s.motion]).caption for s in scenes]
    t = encoder.encode_texts(texts).numpy()
    f = encoder.encode_texts(flipped).numpy()
    sim = t @ videos.T  # (texts, videos); text i belongs to video i
    if failed:
        sim[:, failed] = -np.inf
    report = retrieval_report(sim, list(range(len(items))), dsl=False)
    top1 = sim.argmax(axis=1)
    hit = {"colour+shape": [], "colour+shape+axis": [], "exact caption": []}
    for i, j in enumerate(top1):
        q, v = scenes[i], scenes[j]
        same_cs = q.colour == v.colour and q.shape == v.shape
        hit["colour+shape"].append(same_cs)
        hit["colour+shape+axis"].append(same_cs and AXIS[q.motion] == AXIS[v.motion])
        hit["exact caption"].append(q == v)
    right = (t * videos).sum(1)
    wrong = (f * videos).sum(1)
    report["top1_attribute_accuracy"] = {k: float(100 * np.mean(v)) for k, v in hit.items()}
    report["direction_accuracy"] = float(100 * np.mean(right > wrong))
    report["videos"] = len(items)
    report["failed_videos"] = len(failed)
    return report
