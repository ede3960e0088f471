"""MSR-VTT in the layout everyone uses (CLIP4Clip's ``msrvtt_data.zip`` + the videos).

A root holds the videos as ``videos/all/videoNNNN.mp4`` (or ``videos/videoNNNN.mp4``) and the
split files anywhere up to two folders down:

- ``MSRVTT_JSFUSION_test.csv`` (``key,vid_key,video_id,sentence``): the 1k-A test set, one
  query per video; query i belongs to video i.
- ``MSRVTT_train.9k.csv`` / ``MSRVTT_train.7k.csv`` (``video_id``): training ids.
- ``MSRVTT_data.json``: all 200k captions (``sentences[].video_id/caption``); needed for training only.

The 1k-A evaluation needs only the test CSV and its 1,000 videos. Missing pieces are reported by
name, with where to get them.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import DatasetError
from .items import CaptionedVideo

TEST_CSV = "MSRVTT_JSFUSION_test.csv"
TRAIN_CSV = {"train-9k": "MSRVTT_train.9k.csv", "train-7k": "MSRVTT_train.7k.csv"}
DATA_JSON = "MSRVTT_data.json"
SPLITS = ("1k-A", "train-9k", "train-7k")
WHERE = (
    "the split files come in CLIP4Clip's msrvtt_data.zip "
    "(github.com/ArrowLuo/CLIP4Clip/releases/download/v0.0/msrvtt_data.zip); the videos in MSRVTT.zip "
    "(see CLIP4Clip's README)"
)


@dataclass
class MsrvttRoot:
    root: Path

    def find(self, name: str) -> Path | None:
        for depth in ("", "*/", "*/*/"):
            hits = sorted(self.root.glob(depth + name))
            if hits:
                return hits[0]
        return None

    def video(self, video_id: str) -> Path:
        for sub in ("videos/all", "videos", "all", "."):
            p = self.root / sub / f"{video_id}.mp4"
            if p.is_file():
                return p
        return self.root / "videos" / "all" / f"{video_id}.mp4"


def load_split(root: str | os.PathLike[str], split: str = "1k-A", *, allow_missing_videos: bool = False) -> list[CaptionedVideo]:
    """Videos with their captions for ``split`` (1k-A: one caption each; train: all 20)."""
    if split not in SPLITS:
        raise DatasetError(f"unknown MSR-VTT split {split!r} (choose from {', '.join(SPLITS)})")
    r = MsrvttRoot(Path(root))
    if not r.root.is_dir():
        raise DatasetError(f"{root}: no such folder")
    if split == "1k-A":
        items = _test_items(r)
    else:
        items = _train_items(r, split)
    missing = [it.path for it in items if not os.path.isfile(it.path)]
    if missing and not allow_missing_videos:
        names = ", ".join(os.path.basename(m) for m in missing[:5])
        raise DatasetError(
            f"{len(missing)} of {len(items)} {split} videos are missing under {root} (e.g. {names}); "
            f"expected videos/all/videoNNNN.mp4 or videos/videoNNNN.mp4. {WHERE}"
        )
    return [it for it in items if os.path.isfile(it.path)] if missing else items


def _test_items(r: MsrvttRoot) -> list[CaptionedVideo]:
    path = r.find(TEST_CSV)
    if path is None:
        raise DatasetError(f"{TEST_CSV} not found under {r.root}; {WHERE}")
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows or not {"video_id", "sentence"} <= set(rows[0]):
        raise DatasetError(f"{path}: expected columns key,vid_key,video_id,sentence")
    return [CaptionedVideo(str(r.video(row["video_id"])), (row["sentence"].strip(),)) for row in rows]


def _train_items(r: MsrvttRoot, split: str) -> list[CaptionedVideo]:
    ids_path = r.find(TRAIN_CSV[split])
    data_path = r.find(DATA_JSON)
    missing = [name for name, p in ((TRAIN_CSV[split], ids_path), (DATA_JSON, data_path)) if p is None]
    if missing:
        raise DatasetError(f"{' and '.join(missing)} not found under {r.root} (training needs the captions); {WHERE}")
    with open(ids_path, newline="", encoding="utf-8") as f:
        ids = [row["video_id"] for row in csv.DictReader(f)]
    with open(data_path, encoding="utf-8") as f:
        data = json.load(f)
    captions: dict[str, list[str]] = {}
    for s in data.get("sentences", []):
        captions.setdefault(s["video_id"], []).append(s["caption"].strip())
    lacking = [i for i in ids if i not in captions]
    if lacking:
        raise DatasetError(f"{data_path}: no captions for {len(lacking)} {split} videos (e.g. {lacking[0]})")
    return [CaptionedVideo(str(r.video(i)), tuple(captions[i])) for i in ids]
