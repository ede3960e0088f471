"""Action recognition data: class folders, ``path,label`` lists, and the standard split files.

Layouts understood by ``read_recognition``:

- a folder of class folders: ``ROOT/CLASS/clip.mp4`` (classes = the folder names, sorted);
- a CSV with ``path,label`` (label = a class name, or an index into ``--classes``);
- UCF101: ``classInd.txt`` (``1 ApplyEyeMakeup``) + ``trainlist01.txt`` / ``testlist01.txt``
  (``ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi [label]``), paths relative to the video root;
- HMDB51: ``CLASS_test_split1.txt`` files (``video.avi 1|2|0``: 1 train, 2 test, 0 unused),
  videos at ``ROOT/CLASS/video.avi``;
- Kinetics CSVs (``label,youtube_id,time_start,time_end,split``), videos named
  ``{youtube_id}_{start:06d}_{end:06d}.mp4`` anywhere under the root.

Class names become text through a prompt template (``"a video of a person {}."``): underscores
and CamelCase become spaces (``ApplyEyeMakeup`` → ``apply eye makeup``).
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..config import VIDEO_EXTENSIONS
from ..errors import DatasetError


@dataclass(frozen=True)
class LabelledVideo:
    path: str
    label: int


@dataclass
class RecognitionSet:
    items: list[LabelledVideo]
    classes: list[str]

    def prompts(self, template: str) -> list[str]:
        if "{}" not in template:
            raise DatasetError(f"the prompt template needs a {{}} for the class name: {template!r}")
        return [template.format(class_text(c)) for c in self.classes]


def class_text(name: str) -> str:
    """``ApplyEyeMakeup`` / ``apply_eye_makeup`` / ``brush hair`` → ``apply eye makeup``."""
    name = name.replace("_", " ").replace("-", " ")
    name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name)
    return " ".join(name.lower().split())


def read_recognition(
    source: str | os.PathLike[str],
    *,
    split: str | None = None,
    classes: str | os.PathLike[str] | None = None,
    video_root: str | os.PathLike[str] | None = None,
) -> RecognitionSet:
    """Labelled videos from a folder tree, a CSV, or standard split files (see module docs)."""
    src = Path(source)
    root = Path(video_root) if video_root else (src if src.is_dir() else src.parent)
    if src.is_dir():
        if list(src.glob("classInd.txt")) or list(src.glob("*/classInd.txt")):
            return _ucf101(src, root, split or "testlist01")
        if list(src.glob("*_test_split1.txt")) or list(src.glob("*/*_test_split1.txt")):
            return _hmdb51(src, root, split or "test1")
        return _folders(src)
    if not src.is_file():
        raise DatasetError(f"{src}: no such file or folder")
    with open(src, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if rows and "youtube_id" in rows[0]:
        return _kinetics(rows, root, split)
    if not rows or not {"path", "label"} <= set(rows[0]):
        raise DatasetError(f"{src}: expected columns path,label (or a Kinetics CSV)")
    names = _read_class_list(classes) if classes else sorted({r["label"] for r in rows if not r["label"].isdigit()})
    index = {n: i for i, n in enumerate(names)}
    items = []
    for n, r in enumerate(rows, 2):
        label = r["label"].strip()
        if label.isdigit() and classes:
            k = int(label)
        elif label in index:
            k = index[label]
        else:
            raise DatasetError(f"{src}:{n}: label {label!r} is not a known class")
        items.append(LabelledVideo(os.path.normpath(os.path.join(root, r["path"])), k))
    return RecognitionSet(items, names)


def _read_class_list(path) -> list[str]:
    lines = [ln.strip() for ln in Path(path).read_text(encoding="utf-8").splitlines() if ln.strip()]
    return [ln.split(maxsplit=1)[-1] if ln.split()[0].isdigit() and len(ln.split()) > 1 else ln for ln in lines]


def _folders(root: Path) -> RecognitionSet:
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    items = []
    for k, c in enumerate(classes):
        for p in sorted((root / c).rglob("*")):
            if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file():
                items.append(LabelledVideo(str(p), k))
    if not items:
        raise DatasetError(f"{root}: no videos in class folders (expected ROOT/CLASS/clip.mp4)")
    return RecognitionSet(items, classes)


def _find(src: Path, pattern: str) -> Path | None:
    hits = sorted(src.glob(pattern)) or sorted(src.glob("*/" + pattern))
    return hits[0] if hits else None


def _ucf101(src: Path, root: Path, split: str) -> RecognitionSet:
    ind = _find(src, "classInd.txt")
    lst = _find(src, f"{split}.txt")
    if lst is None:
        raise DatasetError(f"{src}: no {split}.txt (UCF101 split files: trainlist01..03, testlist01..03)")
    classes = [ln.split()[1] for ln in ind.read_text().splitlines() if ln.strip()]
    index = {c: i for i, c in enumerate(classes)}
    items = []
    for ln in lst.read_text().splitlines():
        if not ln.strip():
            continue
        rel = ln.split()[0]
        cls = rel.split("/")[0]
        if cls not in index:
            raise DatasetError(f"{lst}: class {cls!r} is not in classInd.txt")
        items.append(LabelledVideo(str(root / rel), index[cls]))
    return RecognitionSet(items, classes)


def _hmdb51(src: Path, root: Path, split: str) -> RecognitionSet:
    m = re.fullmatch(r"(train|test)([123])", split)
    if not m:
        raise DatasetError(f"HMDB51 split must be train1..3 or test1..3, not {split!r}")
    want = "1" if m.group(1) == "train" else "2"
    files = sorted(src.glob(f"*_test_split{m.group(2)}.txt")) or sorted(src.glob(f"*/*_test_split{m.group(2)}.txt"))
    classes = sorted(f.name[: -len(f"_test_split{m.group(2)}.txt")] for f in files)
    index = {c: i for i, c in enumerate(classes)}
    items = []
    for f in files:
        cls = f.name[: -len(f"_test_split{m.group(2)}.txt")]
        for ln in f.read_text().splitlines():
            parts = ln.split()
            if len(parts) == 2 and parts[1] == want:
                items.append(LabelledVideo(str(root / cls / parts[0]), index[cls]))
    return RecognitionSet(items, classes)


def _kinetics(rows: list[dict], root: Path, split: str | None) -> RecognitionSet:
    if split:
        rows = [r for r in rows if r.get("split", split) == split]
    classes = sorted({r["label"] for r in rows})
    index = {c: i for i, c in enumerate(classes)}
    by_name = {p.name: p for p in root.rglob("*") if p.suffix.lower() in VIDEO_EXTENSIONS}
    items, missing = [], 0
    for r in rows:
        name = f"{r['youtube_id']}_{int(float(r['time_start'])):06d}_{int(float(r['time_end'])):06d}.mp4"
        path = by_name.get(name)
        if path is None:
            missing += 1
            continue
        items.append(LabelledVideo(str(path), index[r["label"]]))
    if not items:
        raise DatasetError(
            f"none of the {len(rows)} Kinetics clips was found under {root} (expected {{youtube_id}}_{{start:06d}}_{{end:06d}}.mp4)"
        )
    return RecognitionSet(items, classes)
