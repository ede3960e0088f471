"""Text-video retrieval evaluation: encode everything, build the full matrix, report metrics.

The full similarity matrix (not FAISS top-k) is needed for MdR and MnR. A video that cannot be
decoded stays in the candidate set with a similarity of -inf, so its captions count as misses:
dropping it would inflate recall.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..datasets.clips import VideoTextDataset, collate
from ..datasets.items import CaptionedVideo
from ..video.transforms import to_pixels
from .cache import EmbeddingCache
from .metrics import retrieval_report


def encode_videos(
    encoder, items: Sequence[CaptionedVideo], *, batch_size: int = 16, workers: int = 2, cache: EmbeddingCache | None = None
) -> tuple[np.ndarray, list[int]]:
    """(N, D) video embeddings (uniform sampling) and the indices that failed to decode.

    With ``cache``, videos embedded before (same model, file and sampling) are not decoded again.
    """
    spec = encoder.spec
    out = np.zeros((len(items), spec.dim), np.float32)
    ok = np.zeros(len(items), bool)
    sampling = {"frames": spec.frames, "sampler": "uniform", "pixels": spec.pixels.as_dict()}
    keys = [EmbeddingCache.key(it.path, sampling) for it in items] if cache else [None] * len(items)
    if cache:
        hits = cache.get_many(keys)
        for i, k in enumerate(keys):
            if k in hits:
                out[i], ok[i] = hits[k], True
    todo = [i for i in range(len(items)) if not ok[i]]
    if todo:
        ds = VideoTextDataset([items[i] for i in todo], spec.frames, spec.pixels, train=False)
        loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, num_workers=workers, collate_fn=collate)
        for batch in loader:
            if not batch["size"]:
                continue
            rows = [todo[i] for i in batch["index"].tolist()]
            out[rows] = encoder.encode_videos(to_pixels(batch["frames"], spec.pixels, device=encoder.device)).numpy()
            ok[rows] = True
            if cache:
                cache.put_many((keys[r], out[r]) for r in rows)
    return out, [int(i) for i in np.flatnonzero(~ok)]


def similarity(
    encoder, items: Sequence[CaptionedVideo], *, workers: int = 2, cache: EmbeddingCache | None = None
) -> tuple[np.ndarray, list[int], list[str], list[int]]:
    """(texts x videos) cosine matrix, text→video map, the texts, and videos that failed."""
    videos, failed = encode_videos(encoder, items, workers=workers, cache=cache)
    texts = [c for it in items for c in it.captions]
    text_video = [i for i, it in enumerate(items) for _ in it.captions]
    sim = encoder.encode_texts(texts).numpy() @ videos.T
    if failed:
        sim[:, failed] = -np.inf
    return sim, text_video, texts, failed


def evaluate_retrieval(
    encoder, items: Sequence[CaptionedVideo], *, workers: int = 2, dsl: bool = True, cache: EmbeddingCache | None = None
) -> dict:
    sim, text_video, texts, failed = similarity(encoder, items, workers=workers, cache=cache)
    report = retrieval_report(sim, text_video, dsl=dsl)
    report["videos"] = len(items)
    report["texts"] = len(texts)
    report["failed_videos"] = len(failed)
    return report
