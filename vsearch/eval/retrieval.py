"""Text-video retrieval evaluation: encode everything, build the full matrix, report metrics.

The full similarity matrix (not FAISS top-k) is needed for MdR and MnR. A video that cannot be
decoded stays in the candidate set with a similarity of -inf, so its captions count as misses:
dropping it would inflate recall.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..train.data import CaptionedVideo, VideoTextDataset, collate
from ..video.transforms import to_pixels
from .metrics import retrieval_report


def encode_videos(
    encoder, items: Sequence[CaptionedVideo], *, batch_size: int = 16, workers: int = 2
) -> tuple[np.ndarray, list[int]]:
    """(N, D) video embeddings (uniform sampling) and the indices that failed to decode."""
    spec = encoder.spec
    ds = VideoTextDataset(items, spec.frames, spec.pixels, train=False)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, num_workers=workers, collate_fn=collate)
    out = np.zeros((len(items), spec.dim), np.float32)
    ok = np.zeros(len(items), bool)
    for frames, _caps, idx, _failed in loader:
        if frames is None:
            continue
        out[idx] = encoder.encode_videos(to_pixels(frames, spec.pixels, device=encoder.device)).numpy()
        ok[idx] = True
    return out, [int(i) for i in np.flatnonzero(~ok)]


def similarity(
    encoder, items: Sequence[CaptionedVideo], *, workers: int = 2
) -> tuple[np.ndarray, list[int], list[str], list[int]]:
    """(texts x videos) cosine matrix, text→video map, the texts, and videos that failed."""
    videos, failed = encode_videos(encoder, items, workers=workers)
    texts = [c for it in items for c in it.captions]
    text_video = [i for i, it in enumerate(items) for _ in it.captions]
    sim = encoder.encode_texts(texts).numpy() @ videos.T
    if failed:
        sim[:, failed] = -np.inf
    return sim, text_video, texts, failed


def evaluate_retrieval(encoder, items: Sequence[CaptionedVideo], *, workers: int = 2, dsl: bool = True) -> dict:
    sim, text_video, texts, failed = similarity(encoder, items, workers=workers)
    report = retrieval_report(sim, text_video, dsl=dsl)
    report["videos"] = len(items)
    report["texts"] = len(texts)
    report["failed_videos"] = len(failed)
    return report
