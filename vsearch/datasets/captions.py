"""Captioned-video files: CSV or JSONL rows of a video and its captions, and pretraining rows.

Rows come from a CSV or JSONL with ``path`` (or ``video_id`` + a video root) and one or more
captions per video (a ``caption`` column repeated over rows, or a ``captions`` list in JSONL).
Training draws one caption per video per step; evaluation uses every caption as a query.
``swap_direction`` gives the caption of a clip played backwards (time-reversal training and
the direction measures both need it).
"""

from __future__ import annotations

import csv
import json
import os
import re
from pathlib import Path

from ..errors import DatasetError
from .items import CaptionedVideo, PretrainRow
from .msrvtt import load_split


def read_captions(path: str | os.PathLike[str], video_root: str | os.PathLike[str] | None = None) -> list[CaptionedVideo]:
    """Videos with their captions, in first-seen order. Relative paths resolve against the
    file's folder (or ``video_root``, which also turns ``video_id`` into ``ROOT/ID.mp4``).

    ``msrvtt:ROOT@SPLIT`` (e.g. ``msrvtt:~/data/msrvtt@train-9k``) reads an MSR-VTT split.
    """
    if os.fspath(path).startswith("msrvtt:"):
        root, _, split = os.fspath(path)[len("msrvtt:") :].rpartition("@")
        if not root:
            raise DatasetError(f"{path}: write msrvtt:ROOT@SPLIT, e.g. msrvtt:/data/msrvtt@train-9k")
        return load_split(os.path.expanduser(root), split)
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


def read_pretrain(
    path: str | os.PathLike[str], video_root: str | os.PathLike[str] | None = None
) -> tuple[list[PretrainRow], list[str]]:
    """Rows for ``vsearch pretrain`` and the text columns present (``subtitle``, ``caption``)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such data file")
    base = Path(video_root) if video_root else path.parent
    if path.suffix.lower() in (".jsonl", ".json"):
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    else:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    if not rows:
        raise DatasetError(f"{path}: no rows")
    columns = [c for c in ("subtitle", "caption") if c in rows[0]]
    if not columns:
        raise DatasetError(f"{path}: needs a `subtitle` and/or a `caption` column beside `path`")
    out = []
    for n, r in enumerate(rows, 1):
        if not r.get("path"):
            raise DatasetError(f"{path}: row {n} has no path")
        texts = {c: (r.get(c) or "").strip() for c in columns}
        missing = [c for c in columns if not texts[c]]
        if missing:
            raise DatasetError(f"{path}: row {n} has an empty {missing[0]} (drop the column to train without it)")
        out.append(PretrainRow(os.path.normpath(os.path.join(base, r["path"])), texts.get("subtitle"), texts.get("caption")))
    return out, columns


#: Word pairs whose meaning flips when time runs backwards (whole words, case kept).
SWAPS = {
    "left": "right", "right": "left", "up": "down", "down": "up",
    "before": "after", "after": "before", "leftward": "rightward", "rightward": "leftward",
    "upward": "downward", "downward": "upward", "clockwise": "counterclockwise", "counterclockwise": "clockwise",
}  # fmt: skip
_WORDS = re.compile(r"\b(" + "|".join(sorted(SWAPS, key=len, reverse=True)) + r")\b", re.IGNORECASE)


def swap_direction(caption: str) -> str | None:
    """The caption of the time-reversed clip, or None when nothing in it names a direction."""
    if not _WORDS.search(caption):
        return None

    def repl(m: re.Match) -> str:
        word = m.group(0)
        out = SWAPS[word.lower()]
        return out.capitalize() if word[0].isupper() else out

    return _WORDS.sub(repl, caption)
