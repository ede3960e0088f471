"""Metrics on the synthetic shapes data, where captions are true by construction.

- ``attribute_accuracy``: does the top-1 video for a caption have the caption's colour and
  shape (and motion axis, and exact direction)? Many clips share a caption, so this says more
  than exact-clip R@1 about what a model understood.
- ``motion_benchmark``: the compositional test of ``data.synthetic.generate_motion_benchmark``.
  Inside each group (24 clips: every held-out combination and its direction-flipped twin) each
  held-out caption is a query; R@K needs colour, shape and direction (chance R@1 = 1/24).
  **Direction accuracy**: does a clip's caption outscore the same caption with the opposite
  direction? A frame-averaging encoder sees the same frames either way and sits near 50%. Measured
  on held-out clips (biased: their flipped captions were seen in training) and, unbiased, on the
  axis each pair kept whole in training (``direction_accuracy_seen_axis``).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence

import numpy as np

from ..datasets.items import CaptionedVideo
from ..errors import DatasetError
from ..synth.scenes import OPPOSITE, Scene
from .metrics import summarize
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


def motion_benchmark(
    encoder,
    test_csv: str | os.PathLike[str],
    *,
    workers: int = 2,
    seen_csv: str | os.PathLike[str] | None = None,
    train_csv: str | os.PathLike[str] | None = None,
    train_limit: int = 240,
) -> dict:
    """Grouped retrieval and direction accuracy on the compositional test set.

    ``direction_accuracy`` (held-out clips) is biased against models that learned their
    captions: the flipped caption of a held-out combination was seen in training. With
    ``seen_csv`` (``write_seen_axis_set``) the unbiased figure is added:
    ``direction_accuracy_seen_axis``, where both captions were seen equally. With ``train_csv``,
    ``direction_accuracy_train`` on ``train_limit`` training clips: has the model fitted direction
    at all on the clips it trained on?
    """
    rows = _read(test_csv)
    items = [CaptionedVideo(r["path"], (r["caption"],)) for r in rows]
    videos, failed = encode_videos(encoder, items, workers=workers)
    scenes = [Scene.parse(r["caption"]) for r in rows]
    t = encoder.encode_texts([s.caption for s in scenes]).numpy()
    f = encoder.encode_texts([Scene(s.shape, s.colour, OPPOSITE[s.motion]).caption for s in scenes]).numpy()
    own = (t * videos).sum(1)
    flipped = (f * videos).sum(1)
    held = np.array([r["heldout"] for r in rows])
    if failed:
        own[failed] = -np.inf
    ranks, colour_shape = [], []
    groups = np.array([r["group"] for r in rows])
    for g in np.unique(groups):
        members = np.flatnonzero(groups == g)
        sim = t[members] @ videos[members].T  # (24, 24) within the group
        if failed:
            sim[:, np.isin(members, failed)] = -np.inf
        for qi, row in enumerate(members):
            if not held[row]:
                continue
            ranks.append(int((sim[qi] > sim[qi, qi]).sum()))
            best = members[int(sim[qi].argmax())]
            colour_shape.append(scenes[best].colour == scenes[row].colour and scenes[best].shape == scenes[row].shape)
    metrics = summarize(np.array(ranks))
    return {
        "R@1": metrics["R@1"],
        "R@5": metrics["R@5"],
        "MdR": metrics["MdR"],
        "queries": metrics["queries"],
        "group_size": int(np.bincount(groups).max()),
        "direction_accuracy": float(100 * np.mean(own[held] > flipped[held])),
        "direction_accuracy_all_clips": float(100 * np.mean(own > flipped)),
        "top1_colour_shape": float(100 * np.mean(colour_shape)),
        "failed_videos": len(failed),
        **({"direction_accuracy_seen_axis": direction_accuracy(encoder, seen_csv, workers=workers)} if seen_csv else {}),
        **(
            {"direction_accuracy_train": direction_accuracy(encoder, train_csv, workers=workers, limit=train_limit)}
            if train_csv
            else {}
        ),
    }


def _read(path: str | os.PathLike[str], *, grouped: bool = True) -> list[dict]:
    base = os.path.dirname(os.fspath(path))
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            raw = list(csv.DictReader(fh))
    except FileNotFoundError:
        raise DatasetError(f"{path}: no such benchmark file (make one with generate_motion_benchmark)") from None
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
