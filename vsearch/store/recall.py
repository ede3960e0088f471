"""How good an approximate index is: held-out queries, the exact re-rank, recall@k against
exact search, and the nprobe that reaches the target. No SQL here; ``index_sync`` feeds it the
stored vectors and their videos.
"""

from __future__ import annotations

import numpy as np

from .vectors import TARGET_RECALL, VectorIndex, as_f32, import_faiss, rerank_depth

#: Held-out queries come from videos of at most this many segments (their siblings are
#: dropped from both answers, so the search depth grows by the largest such video).
HELD_OUT_MAX_GROUP = 64


def held_out_sample(n: int, queries: int = 500, seed: int = 0, groups: np.ndarray | None = None) -> np.ndarray:
    """Positions of the stored vectors used as held-out queries (sorted, without repeats).

    Each is searched for as a query while its whole video is held out of the answer: the
    segments of its own video (``groups``: a video id per vector) count on neither the exact
    nor the approximate side, so the measure is how well the index finds *other videos* near
    a piece of footage, as for a new video of the same kind. Leaving out only the vector
    itself would be far too easy on video collections, where a segment's nearest neighbours
    are its own video's other segments (a tuning on that picked nprobe 1 and then found 77%
    of other videos' segments). Without ``groups`` each vector is its own group. Real text
    queries do not exist when an index is built; ``bench/search.py --query-vectors``
    measures with real ones.
    """
    rng = np.random.default_rng(seed)
    if groups is None:
        pool = np.arange(n)
    else:
        _uniq, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
        small = counts[inverse] <= HELD_OUT_MAX_GROUP
        pool = np.nonzero(small)[0] if small.any() else np.arange(n)
    return np.sort(rng.choice(pool, size=min(queries, len(pool)), replace=False))


def _drop_group(ids: np.ndarray, group_of, own: np.ndarray, k: int) -> np.ndarray:
    """Each row of ``ids`` without the ids of its query's group (``own[row]``), cut to ``k``."""
    out = np.full((len(ids), k), -1, np.int64)
    for r, (row, me) in enumerate(zip(ids, own)):
        row = row[row >= 0]
        kept = row[group_of(row) != me][:k]
        out[r, : len(kept)] = kept
    return out


def exact_rerank(ids: np.ndarray, queries: np.ndarray, vectors_of, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Re-score candidate ``ids`` (nq, c; -1 padded) exactly and keep the best ``k`` per query.

    ``vectors_of(flat_ids) -> (len, dim)`` returns the stored vectors (the truth). Returns
    (scores, ids) of shape (nq, k), sorted, -inf / -1 padded.
    """
    nq = len(queries)
    out_s = np.full((nq, k), -np.inf, np.float32)
    out_i = np.full((nq, k), -1, np.int64)
    valid = ids >= 0
    flat = ids[valid]
    if len(flat) == 0:
        return out_s, out_i
    uniq, inverse = np.unique(flat, return_inverse=True)
    vecs = np.asarray(vectors_of(uniq), np.float32)
    rows = np.nonzero(valid)[0]
    scores = np.einsum("ij,ij->i", vecs[inverse], queries[rows])
    for qi in range(nq):
        mine = rows == qi
        got_i, got_s = flat[mine], scores[mine]
        order = np.argsort(-got_s, kind="stable")[:k]
        out_s[qi, : len(order)] = got_s[order]
        out_i[qi, : len(order)] = got_i[order]
    return out_s, out_i


def recall_meter(
    index: VectorIndex,
    ids: np.ndarray,
    vectors: np.ndarray,
    groups: np.ndarray | None = None,
    queries: int = 500,
    k: int = 10,
    seed: int = 0,
):
    """A function ``nprobe -> recall@k`` of ``index`` (re-ranked when its codes are lossy)
    against exact search over what it holds, on held-out queries (``held_out_sample``: a
    stored segment asks for the nearest segments of other videos)."""
    faiss = import_faiss()
    x = as_f32(vectors, index.dim)
    ids = np.asarray(ids, np.int64)
    groups = ids if groups is None else np.asarray(groups, np.int64)
    pos = held_out_sample(len(x), queries, seed, groups)
    q, own = x[pos], groups[pos]
    _uniq, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    extra = int(counts[inverse[pos]].max()) if len(pos) else 0
    order = np.argsort(ids)
    sorted_ids = ids[order]

    def rows_of(wanted: np.ndarray) -> np.ndarray:
        return order[np.searchsorted(sorted_ids, wanted)]

    def group_of(wanted: np.ndarray) -> np.ndarray:
        return groups[rows_of(wanted)]

    def vectors_of(wanted: np.ndarray) -> np.ndarray:
        return x[rows_of(wanted)]

    exact = faiss.IndexFlatIP(index.dim)
    exact.add(x)
    truth = _drop_group(ids[exact.search(q, k + extra)[1]], group_of, own, k)

    def recall_at(nprobe: int) -> float:
        index.nprobe = nprobe
        if index.reranked:
            got = exact_rerank(index.search(q, rerank_depth(k) + extra).ids, q, vectors_of, k + extra)[1]
        else:
            got = index.search(q, k + extra).ids
        got = _drop_group(got, group_of, own, k)
        return float(np.mean([len(set(a.tolist()) & set(b.tolist())) / k for a, b in zip(got, truth)]))

    return recall_at


def tune_nprobe(
    index: VectorIndex, ids: np.ndarray, vectors: np.ndarray, groups: np.ndarray | None = None, target: float = TARGET_RECALL
) -> tuple[int, float]:
    """Smallest nprobe (powers of two, then the midpoint below the first that passes) whose
    recall@10 against exact search reaches ``target``. Every kind reaches it by nprobe = nlist:
    lossy codes are re-ranked exactly, so none caps recall. Returns (nprobe, recall@10)."""
    ivf = import_faiss().try_extract_index_ivf(index.index)
    if ivf is None:
        return 0, 1.0
    recall_at = recall_meter(index, ids, vectors, groups)
    probe, last = 1, (0, -1.0)
    while True:
        recall = recall_at(probe)
        if recall >= target or probe >= ivf.nlist:
            if last[0] and probe - last[0] >= 4:  # try halfway between the last miss and this pass
                mid = (probe + last[0]) // 2
                mid_recall = recall_at(mid)
                if mid_recall >= target:
                    return mid, mid_recall
                index.nprobe = probe
            return probe, recall
        last = (probe, recall)
        probe *= 2
