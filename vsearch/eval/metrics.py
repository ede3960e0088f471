"""Retrieval metrics as pure functions of a similarity matrix.

Ranks are **tie-safe**: a query's rank is the number of candidates scoring strictly higher
than its correct one (0-based). CLIP4Clip's ``np.where(sorted == gt)`` counts a row once per
tied entry and silently changes the metrics; here ties are resolved in the query's favour,
once, and documented as such.

- R@K = % of queries with rank < K; MdR = median(rank) + 1; MnR = mean(rank) + 1.
- text→video: every caption is a query.
- video→text with several captions per video: the similarity of video v to video w's texts is
  the best (max) over w's captions, and v is ranked among videos by that (CLIP4Clip's
  ``tensor_video_to_text_sim``): a video's rank is the rank of its best caption.
- DSL (dual softmax at inference, CAMoE / CLIP-ViP): ``sim * softmax(100 * sim, axis=queries)``.
  It uses the whole query set, so it is reported apart, never as the main figure.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

KS = (1, 5, 10)


def tie_safe_ranks(sim: np.ndarray, gt: Sequence[int] | np.ndarray) -> np.ndarray:
    """0-based rank of candidate ``gt[i]`` in row ``i``: how many candidates score strictly higher."""
    sim = np.asarray(sim, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.int64)
    if sim.ndim != 2 or len(gt) != sim.shape[0]:
        raise ValueError(f"sim must be (queries, candidates) with one target per query; got {sim.shape} and {len(gt)}")
    target = sim[np.arange(len(gt)), gt][:, None]
    return (sim > target).sum(axis=1)


def summarize(ranks: np.ndarray, ks: Sequence[int] = KS) -> dict[str, float]:
    ranks = np.asarray(ranks)
    if ranks.size == 0:
        raise ValueError("no queries")
    out = {f"R@{k}": float(100.0 * np.mean(ranks < k)) for k in ks}
    out["MdR"] = float(np.median(ranks) + 1)
    out["MnR"] = float(np.mean(ranks) + 1)
    out["queries"] = int(ranks.size)
    return out


def text_to_video(sim: np.ndarray, text_video: Sequence[int]) -> dict[str, float]:
    """``sim`` is (texts, videos); ``text_video[i]`` is the video of caption ``i``."""
    return summarize(tie_safe_ranks(sim, text_video))


def video_to_text(sim: np.ndarray, text_video: Sequence[int]) -> dict[str, float]:
    """Each video against every video's best-matching caption (max over that video's captions)."""
    sim = np.asarray(sim, dtype=np.float64)
    tv = np.asarray(text_video, dtype=np.int64)
    n_videos = sim.shape[1]
    grouped = np.full((n_videos, n_videos), -np.inf)  # [video, caption-group] = best caption score
    for w in range(n_videos):
        rows = sim[tv == w]
        if len(rows):
            grouped[:, w] = rows.max(axis=0)
    has_caption = np.isin(np.arange(n_videos), tv)
    return summarize(tie_safe_ranks(grouped[has_caption], np.flatnonzero(has_caption)))


def dual_softmax(sim: np.ndarray, temperature: float = 100.0) -> np.ndarray:
    """DSL re-weighting: each entry times the softmax over the query (text) axis of its column."""
    sim = np.asarray(sim, dtype=np.float64)
    z = temperature * sim
    z = z - z.max(axis=0, keepdims=True)
    prior = np.exp(z)
    prior /= prior.sum(axis=0, keepdims=True)
    return sim * prior


def retrieval_report(sim: np.ndarray, text_video: Sequence[int], dsl: bool = True) -> dict:
    """Everything ``vsearch eval retrieval`` reports; DSL figures live under their own key."""
    report = {"t2v": text_to_video(sim, text_video), "v2t": video_to_text(sim, text_video)}
    if dsl:
        d = dual_softmax(sim)
        report["dsl"] = {"t2v": text_to_video(d, text_video), "v2t": video_to_text(d, text_video)}
    return report
