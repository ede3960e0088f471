"""Evaluation runs as library calls (``vsearch eval`` is a thin wrapper around these)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..atomic import atomic_write, atomic_write_text
from ..datasets.captions import read_captions
from ..datasets.msrvtt import load_split
from ..embedding import save_npy
from ..errors import ConfigError
from .cache import EmbeddingCache
from .metrics import retrieval_report
from .retrieval import similarity

PROTOCOL = (
    "tie-safe ranks (rank = candidates scoring strictly higher); R@K in %, MdR/MnR 1-based; "
    "t2v: every caption is a query; v2t: a video's rank is that of its best caption; "
    "DSL (dual softmax over the query axis, temperature 100) reported apart"
)


def evaluate(
    encoder,
    *,
    dataset: str = "captions",
    data: str | os.PathLike[str] | None = None,
    root: str | os.PathLike[str] | None = None,
    split: str = "1k-A",
    video_root: str | os.PathLike[str] | None = None,
    workers: int = 2,
    use_cache: bool = False,
    save_similarity: str | os.PathLike[str] | None = None,
    allow_missing_videos: bool = False,
    out: str | os.PathLike[str] | None = None,
) -> dict:
    """Text↔video retrieval metrics on a captions file or MSR-VTT; with ``out``, also written there
    as JSON. Nothing is written into the model folder: it may be a checkout or read-only.
    ``use_cache``: keep the video embeddings in the user's cache (``eval.cache``) and reuse them on
    the next run; off unless asked, as a library call writes no user cache of its own accord."""
    if dataset == "msrvtt":
        if root is None:
            raise ConfigError("dataset msrvtt needs root (the folder with the MSR-VTT videos and split files)")
        items = load_split(root, split, allow_missing_videos=allow_missing_videos)
        name = f"msrvtt-{split}"
    elif dataset == "captions":
        if data is None:
            raise ConfigError("dataset captions needs data (a captions CSV or JSONL), or use dataset msrvtt with root")
        items = read_captions(data, video_root)
        name = Path(data).stem
    else:
        raise ConfigError(f"unknown dataset {dataset!r} (captions or msrvtt)")
    cache = EmbeddingCache(encoder.fingerprint) if use_cache else None
    try:
        sim, text_video, texts, failed = similarity(encoder, items, workers=workers, cache=cache)
    finally:
        if cache:
            cache.close()
    report = {
        "model": encoder.name,
        "fingerprint": encoder.fingerprint,
        "dataset": name,
        "videos": len(items),
        "texts": len(texts),
        "failed_videos": len(failed),
        "frames": encoder.spec.frames,
        "protocol": PROTOCOL,
        **retrieval_report(sim, text_video),
    }
    if save_similarity:
        sim_path = Path(save_similarity)
        npy = sim_path if sim_path.suffix == ".npy" else sim_path.with_name(sim_path.name + ".npy")  # np.save's naming
        atomic_write(npy, lambda tmp: save_npy(tmp, sim.astype(np.float32)))
        side = {
            "shape": list(sim.shape),
            "rows": [{"text": t, "video": int(v)} for t, v in zip(texts, text_video)],
            "columns": [it.path for it in items],
            "model": encoder.name,
            "fingerprint": encoder.fingerprint,
        }
        atomic_write_text(sim_path.with_suffix(".json"), json.dumps(side, ensure_ascii=False) + "\n")
        report["similarity"] = str(sim_path)
    if out is not None:
        report["written_to"] = str(write_report(report, out))
    return report


def write_report(report: dict, out: str | os.PathLike[str]) -> Path:
    """Write ``report`` as JSON to ``out`` (a file, or a folder that gets REPORT-NAME.json)."""
    target = Path(out)
    if target.suffix.lower() != ".json":
        target = target / f"{report.get('dataset', 'eval')}.json"
    return atomic_write_text(target, json.dumps(report, indent=2) + "\n")
