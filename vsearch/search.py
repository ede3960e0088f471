"""Text query → the store's encoder → FAISS → segment rows → best segment per video.

Returns data (``Hit`` dataclasses), never prints. The query is embedded with the encoder that
built the store, or refused with a clear message when another one is passed.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np

from .errors import DecodeError, EmptyStore, EncoderLoadError, EncoderMismatch, QueryError
from .store.store import Store
from .video.discover import display_path
from .video.sampling import format_range

MAX_K = 10_000


def check_k(k: int) -> None:
    """How many results may be asked for: 1 to MAX_K (one check for every search entry point)."""
    if not 1 <= int(k) <= MAX_K:
        raise QueryError(f"k must be between 1 and {MAX_K}, got {k}")


@dataclass
class Hit:
    path: str
    score: float
    start: float
    end: float
    segment: int  # index of the segment within its video
    segment_id: int
    video_id: int
    #: The file is gone from disk since it was indexed (moved, deleted, drive unmounted): the
    #: hit is still shown, flagged, so the user knows the store is stale there.
    missing: bool = False

    @property
    def time_range(self) -> str:
        return format_range(self.start, self.end)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["path"] = display_path(self.path)
        d["score"] = round(float(self.score), 6)
        d["start"] = round(self.start, 3)
        d["end"] = round(self.end, 3)
        d["range"] = self.time_range
        return d


@dataclass
class SearchResponse:
    query: str
    hits: list[Hit]
    #: Segments searched (the index size) and how long the search took, end to end.
    searched: int = 0
    took_ms: float = 0.0
    warnings: list[str] = field(default_factory=list)
    #: True when scores are the encoder's re-ranking scores (X-CLIP's prompted logits), not cosines.
    reranked: bool = False


def load_store_encoder(
    store: Store, model: str | None = None, device: str | None = None, base: str | None = None, *, query_only: bool = False
):
    """The encoder that built ``store`` (or ``model``, checked to be the same one).

    ``query_only``: a text-only encoder is enough (no re-ranking); when a cache entry vouches
    for the store's model file, the query path skips importing transformers' model code.
    """
    from .models.registry import load_encoder

    rec = store.encoder()
    if rec is None:
        raise EmptyStore(f"the store at {store.root} is empty: index some videos first (`vsearch index DIR`)")
    if query_only and model is None and rec.source:
        from .models import query_path

        fast = query_path.load(rec.source, rec.fingerprint)
        if fast is not None:
            return fast
    if model is not None:
        enc = load_encoder(model, device=device, base=base)
        store.check_encoder(enc, rec)
        return enc
    if not rec.source:
        raise EncoderLoadError(f"the store does not record where its model ({rec.name}) came from; pass --model")
    try:
        enc = load_encoder(rec.source, family=rec.spec.get("family"), device=device)
    except EncoderLoadError as exc:
        raise EncoderLoadError(f"the store's model could not be loaded: {exc} Pass --model with its new location.") from None
    store.check_encoder(enc, rec)
    return enc


#: Families whose encoder has a re-ranker (``rerank_scores``).
RERANK_FAMILIES = ("xclip",)


def precheck(store: Store, query: str, k: int, *, model: str | None = None, rerank: int = 0) -> None:
    """Everything that can be refused without loading a model: the query, k, the re-ranker, and
    a ``--model`` that names something other than what built the store."""
    import os

    from .models.registry import resolve_alias

    clean_query(query)
    check_k(k)
    rec = store.encoder()
    if rec is None:
        raise EmptyStore(f"the store at {store.root} is empty: index some videos first (`vsearch index DIR`)")
    family = rec.spec.get("family")
    if rerank and family not in RERANK_FAMILIES:
        raise QueryError(f"--rerank: {family} encoders have no re-ranker (X-CLIP has one); the store was built with {rec.name}")
    if model is not None and rec.source:
        want = resolve_alias(model)
        want = os.path.realpath(want) if os.path.exists(want) else want
        have = os.path.realpath(rec.source) if os.path.exists(rec.source) else rec.source
        if want != have and not (os.path.exists(want) and os.path.exists(have)):
            raise EncoderMismatch(
                f"the store was built with {rec.source}, not {model}: vectors of two models are not comparable "
                f"(omit --model, or build another store / `vsearch reembed --model {model}`)"
            )


def clean_query(query: str) -> str:
    q = " ".join(query.split())
    if not q:
        raise QueryError('the query is empty; describe what to find, e.g. `vsearch search "a dog catches a frisbee"`')
    return q


def search(store: Store, query: str, k: int = 10, *, encoder=None, segments: bool = False, rerank: int = 0) -> SearchResponse:
    """Top ``k`` videos (best segment each), or the top ``k`` segments with ``segments=True``.

    ``k`` larger than what the store holds returns everything. Scores are cosine similarities;
    with ``rerank=N`` (encoders that have a re-ranker, i.e. X-CLIP) the best N segments are
    re-scored by the model's trained, video-conditioned score, recomputed from their frames.
    """
    t0 = time.perf_counter()
    q = clean_query(query)
    check_k(k)
    own = encoder is None
    for attempt in range(2):
        try:
            return _search(store, q, k, load_store_encoder(store) if own else encoder, segments, t0, rerank)
        except EncoderMismatch:
            # The store switched encoders (a re-embedding finished) between loading ours and
            # reading the index: with the store's own encoder, load the new one and retry.
            if not own or attempt:
                raise
    raise AssertionError("unreachable")


def _search(store: Store, q: str, k: int, encoder, segments: bool, t0: float, rerank: int = 0) -> SearchResponse:
    store.check_encoder(encoder)
    warnings = []
    limit = encoder.spec.max_text_len
    if encoder.token_count(q) > limit:
        warnings.append(f"the query is longer than the model's {limit} tokens; only its beginning was used")
    index = store.vector_index(encoder.fingerprint)
    total = index.ntotal
    if total == 0:
        raise EmptyStore(f"the store at {store.root} has no segments yet: index some videos first")
    qv = encoder.encode_query(q).numpy()[None, :]
    if rerank:
        if not hasattr(encoder, "rerank_scores"):
            raise QueryError(f"{encoder.family} encoders have no re-ranker (X-CLIP has one)")
        hits = _reranked(store, index, encoder, q, qv, max(rerank, k), total)
        if not segments:
            hits = _first_per_video(hits)
        return SearchResponse(q, hits[:k], total, (time.perf_counter() - t0) * 1000, warnings, reranked=True)
    hits = flag_missing(search_vector(store, index, qv, k, segments))
    gone = sum(h.missing for h in hits)
    if gone:
        warnings.append(f"{gone} of these files are no longer on disk (flagged missing); `vsearch list --missing` lists them")
    return SearchResponse(q, hits, total, (time.perf_counter() - t0) * 1000, warnings)


def flag_missing(hits: list[Hit]) -> list[Hit]:
    """Mark hits whose file no longer exists (one stat per shown hit)."""
    import os

    for h in hits:
        h.missing = not os.path.exists(h.path)
    return hits


def search_vector(store: Store, index, qv: np.ndarray, k: int, segments: bool = False) -> list[Hit]:
    """The search path after text encoding: FAISS, then SQLite rows, then best segment per video."""
    total = index.ntotal
    if segments:
        res = index.search(qv, min(k, total))
        rows = store.segment_rows([i for i in res.ids[0] if i >= 0])
        return [_hit(rows[i], s) for s, i in zip(res.scores[0], res.ids[0]) if i in rows]
    return _best_per_video(store, index, qv, k, total)


def _best_per_video(store: Store, index, qv: np.ndarray, k: int, total: int) -> list[Hit]:
    """Over-fetch segments until ``k`` distinct videos are found (or the index is exhausted)."""
    fetch = min(total, max(4 * k, 32))
    while True:
        res = index.search(qv, fetch)
        ids = [int(i) for i in res.ids[0] if i >= 0]
        rows = store.segment_rows(ids)
        best: dict[int, Hit] = {}
        for score, sid in zip(res.scores[0], res.ids[0]):
            row = rows.get(int(sid))
            if row is None or row.video_id in best:
                continue  # results are sorted: the first segment seen per video is its best
            best[row.video_id] = _hit(row, score)
        if len(best) >= k or fetch >= total:
            return list(best.values())[:k]
        fetch = min(total, fetch * 4)


def _reranked(store: Store, index, encoder, q: str, qv: np.ndarray, n: int, total: int) -> list[Hit]:
    """The top ``n`` segments by cosine, re-scored from their frames (decoded again: nothing
    per segment is stored for re-ranking, so it costs a decode and a forward pass per candidate)."""
    from .video.decode import VideoReader, center_crop
    from .video.transforms import to_pixels

    res = index.search(qv, min(n, total))
    ids = [int(i) for i in res.ids[0] if i >= 0]
    rows = store.segment_rows(ids)
    frames_of = store.frame_indices(ids)
    spec = encoder.spec
    hits, clips = [], []
    for sid in ids:
        row = rows.get(sid)
        if row is None or sid not in frames_of:
            continue
        try:
            with VideoReader(row.path, spec.pixels.image_size, spec.pixels.resize) as reader:
                clips.append(reader.get(frames_of[sid]))
        except DecodeError:
            continue  # the file changed or vanished since indexing: drop the candidate
        hits.append(_hit(row, 0.0))
    if not hits:
        return []
    stack = np.stack([center_crop(c, spec.pixels.image_size) for c in clips])
    scores = encoder.rerank_scores(q, to_pixels(stack, spec.pixels, device=encoder.device)).numpy()
    for h, sc in zip(hits, scores):
        h.score = float(sc)
    return sorted(hits, key=lambda h: -h.score)


def _first_per_video(hits: list[Hit]) -> list[Hit]:
    seen: set[int] = set()
    return [h for h in hits if not (h.video_id in seen or seen.add(h.video_id))]


def _hit(row, score) -> Hit:
    return Hit(row.path, float(score), row.start_s, row.end_s, row.idx, row.segment_id, row.video_id)


def search_by_vector(
    store: Store, qv: np.ndarray, k: int = 10, *, segments: bool = False, label: str = "", fingerprint: str | None = None
) -> SearchResponse:
    """Search with a ready query vector (an image's, or a stored segment's): no text encoder."""
    t0 = time.perf_counter()
    check_k(k)
    index = store.vector_index(fingerprint)
    if index.ntotal == 0:
        raise EmptyStore(f"the store at {store.root} has no segments yet: index some videos first")
    hits = flag_missing(search_vector(store, index, np.asarray(qv, np.float32)[None, :], k, segments))
    return SearchResponse(label, hits, index.ntotal, (time.perf_counter() - t0) * 1000)


def search_like(store: Store, segment_id: int, k: int = 10, *, segments: bool = False) -> SearchResponse:
    """More like this: the stored vector of ``segment_id`` is the query (nothing is decoded)."""
    qv = store.segment_vector(segment_id)
    if qv is None:
        raise QueryError(f"segment {segment_id} is not in the store")
    return search_by_vector(store, qv, k, segments=segments, label=f"like segment {segment_id}")


def search_image(store: Store, image, k: int = 10, *, encoder=None, segments: bool = False) -> SearchResponse:
    """Search by an image (bytes, a path, or an ``(h, w, 3)`` array), embedded by the store's
    encoder as a one-frame video (``image_query``)."""
    from .image_query import image_vector, load_image

    pixels = image if isinstance(image, np.ndarray) else load_image(image)
    enc = encoder or load_store_encoder(store)
    store.check_encoder(enc)
    return search_by_vector(store, image_vector(enc, pixels), k, segments=segments, label="image", fingerprint=enc.fingerprint)
