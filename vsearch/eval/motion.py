"""Metrics on the synthetic shapes data, where captions are true by construction.

- ``attribute_accuracy``: does the top-1 video for a caption have the caption's colour and
  shape (and motion axis, and exact direction)? Many clips share a caption, so this says more
  than exact-clip R@1 about what a model understood.
- ``direction_accuracy``: does a clip's caption outscore the same caption with the opposite
  direction? A frame-averaging encoder sees the same frames either way and sits near 50%. Any
  ``path,caption`` file: a training set, or the axis each pair kept whole in training
  (``synth.scenes.write_seen_axis_set``), where both captions were seen equally.

The grouped measures on clips and their exact reversals are ``eval.direction``.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence

import numpy as np

from ..datasets.items import CaptionedVideo
from ..errors import DatasetError
from ..synth.scenes import OPPOSITE, Scene
from .retrieval import encode_videos

AXIS = {"left": "horizontal", "right": "horizontal", "up": "vertical", "down": "vertical"}


def attribute_accuracy(encoder, items: Sequence[CaptionedVideo], *, workers: int = 2) -> dict[str, float]:
    """Top-1 attribute agreement between each clip's caption and the clip it retrieves."""
    videos, failed = encode_videos(encoder, items, workers=workers)
    scenes = [Scene.parse(it.captions[0]) for it in items]
    sim = encoder.encode_texts([s.caption for s in scenes]).numpy() @ videos.T
    if failed:
        sim[:, failed] = -np.inf
    hits = {"colour+shape": [], "colour+shape+axis": [], "exact caption": []}
    for i, j in enumerate(sim.argmax(axis=1)):
        q, v = scenes[i], scenes[j]
        same = q.colour == v.colour and q.shape == v.shape
        hits["colour+shape"].append(same)
        hits["colour+shape+axis"].append(same and AXIS[q.motion] == AXIS[v.motion])
        hits["exact caption"].append(q == v)
    return {k: float(100 * np.mean(v)) for k, v in hits.items()}


def direction_accuracy(encoder, csv_path: str | os.PathLike[str], *, workers: int = 2, limit: int | None = None) -> float:
    """% of clips whose caption outscores the same caption with the opposite direction.

    Takes any ``path,caption`` file, a training set included (``limit`` clips from its top):
    direction on clips the model was trained on tells fitting apart from generalising.
    """
    rows = _read(csv_path, grouped=False)[:limit]
    items = [CaptionedVideo(r["path"], (r["caption"],)) for r in rows]
    videos, failed = encode_videos(encoder, items, workers=workers)
    scenes = [Scene.parse(r["caption"]) for r in rows]
    t = encoder.encode_texts([s.caption for s in scenes]).numpy()
    f = encoder.encode_texts([Scene(s.shape, s.colour, OPPOSITE[s.motion]).caption for s in scenes]).numpy()
    ok = np.ones(len(rows), bool)
    ok[failed] = False
    return float(100 * np.mean(((t * videos).sum(1) > (f * videos).sum(1)) & ok))


def _read(path: str | os.PathLike[str], *, grouped: bool = True) -> list[dict]:
    base = os.path.dirname(os.fspath(path))
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            raw = list(csv.DictReader(fh))
    except FileNotFoundError:
        raise DatasetError(f"{path}: no such file (a direction set comes from `vsearch synth OUT --direction-set`)") from None
    need = {"path", "caption", "group", "heldout"} if grouped else {"path", "caption"}
    if not raw or not need <= set(raw[0]):
        raise DatasetError(f"{path}: expected columns {','.join(sorted(need))}")
    return [
        {
            "path": os.path.normpath(os.path.join(base, r["path"])),
            "caption": r["caption"],
            "group": int(r.get("group") or 0),
            "heldout": r.get("heldout") == "1",
        }
        for r in raw
    ]
