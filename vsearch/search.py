"""Text query → the store's encoder → FAISS → segment rows → best segment per video.

Returns data (``Hit`` dataclasses), never prints. The query is embedded with the encoder that
built the store, or refused with a clear message when another one is passed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import numpy as np

from .errors import DecodeError, EmptyStore, EncoderLoadError, EncoderMismatch, QueryError
from .filters import SearchFilter
from .store import Store
from .video.discover import display_path
from .video.sampling import format_range

MAX_K = 10_000
#: A filter keeping fewer than this share of the store is searched only among its members
#: (every list probed, distances for members only); a broader one filters the results of an
#: unfiltered search that over-fetches by 1/share. At 20% the over-fetch is 5x, which costs
#: less than testing every stored id against the member set.
RESTRICT_BELOW_SHARE = 0.2
#: Composed queries: the text's share when a query has both text and an image.
TEXT_WEIGHT = 0.5
#: Composed queries: how far each ``--not`` description pushes the query away.
NOT_WEIGHT = 0.5


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
    #: When the footage was recorded (POSIX seconds UTC; container time, else file mtime).
    recorded_at: float | None = None
    #: The moment: the segment widened to the neighbours that match the query as well
    #: (``vsearch.moments``); None when the search was not refined.
    moment_start: float | None = None
    moment_end: float | None = None

    @property
    def time_range(self) -> str:
        return format_range(self.start, self.end)

    @property
    def moment_range(self) -> str | None:
        """The moment as ``mm:ss–mm:ss`` (as ``time_range``), None when not refined."""
        return None if self.moment_start is None or self.moment_end is None else format_range(self.moment_start, self.moment_end)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["path"] = display_path(self.path)
        d["score"] = round(float(self.score), 6)
        d["start"] = round(self.start, 3)
        d["end"] = round(self.end, 3)
        d["range"] = self.time_range
        d["moment_start"] = None if self.moment_start is None else round(self.moment_start, 3)
        d["moment_end"] = None if self.moment_end is None else round(self.moment_end, 3)
        d["moment_range"] = self.moment_range
        d["recorded_at"] = (
            None if self.recorded_at is None else datetime.fromtimestamp(self.recorded_at, UTC).isoformat().replace("+00:00", "Z")
        )
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
    if model is not None:
        want = os.path.expanduser(resolve_alias(model))
        hub_id = want.count("/") == 1 and not want.startswith(("/", ".", "~"))
        if ("/" in want or want.startswith(".")) and not hub_id and not os.path.exists(want):
            raise EncoderLoadError(f"--model {model}: no such model folder")
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


def compose(
    text: np.ndarray | None = None, image: np.ndarray | None = None, negatives: Sequence[np.ndarray] = ()
) -> np.ndarray:
    """One query vector from unit text, image and negative vectors (all from one encoder).

    ``q = normalize(w·t + (1 − w)·i)`` with ``w = TEXT_WEIGHT`` (0.5) when both are given, else
    whichever is; then ``q ← normalize(q − NOT_WEIGHT · Σ n_j)`` over the ``--not``
    descriptions (0.5 each). The sum of two unit vectors points between them (a picture "at
    night"); subtracting a description lowers every segment's score by half its cosine to
    that description, so segments like it fall and the others keep their order.
    """
    if text is None and image is None:
        raise QueryError("a query needs text or an image")
    if text is not None and image is not None:
        q = TEXT_WEIGHT * np.asarray(text, np.float32) + (1 - TEXT_WEIGHT) * np.asarray(image, np.float32)
    else:
        q = np.asarray(text if text is not None else image, np.float32).copy()
    q = q / max(float(np.linalg.norm(q)), 1e-12)
    for n in negatives:
        q = q - NOT_WEIGHT * np.asarray(n, np.float32)
    norm = float(np.linalg.norm(q))
    if norm < 1e-6:
        raise QueryError("--not cancels the whole query: the description to avoid is the one searched for")
    return (q / norm).astype(np.float32)


def search(
    store: Store,
    query: str,
    k: int = 10,
    *,
    encoder=None,
    segments: bool = False,
    rerank: int = 0,
    filters: SearchFilter | None = None,
    negatives: Sequence[str] = (),
    image=None,
    refine: bool = True,
) -> SearchResponse:
    """Top ``k`` videos (best segment each), or the top ``k`` segments with ``segments=True``.

    ``k`` larger than what the store holds returns everything. Scores are cosine similarities;
    with ``rerank=N`` (encoders that have a re-ranker, i.e. X-CLIP) the best N segments are
    re-scored by the model's trained, video-conditioned score, recomputed from their frames.
    ``filters`` restricts the videos; ``negatives`` (descriptions to move away from) and
    ``image`` (bytes, a path or an ``(h, w, 3)`` array, searched together with the text) compose
    the query (``compose``). ``refine`` sets each returned hit's moment (``vsearch.moments``:
    the segment widened to its neighbours that match as well; one SQL read of the segments near
    the returned hits).
    """
    t0 = time.perf_counter()
    q = "" if image is not None and not (query or "").strip() else clean_query(query)  # an image alone is a query too
    check_k(k)
    negs = [clean_query(n) for n in negatives]
    own = encoder is None
    for attempt in range(2):
        try:
            enc = load_store_encoder(store) if own else encoder
            return _search(store, q, k, enc, segments, t0, rerank, filters, negs, image, refine)
        except EncoderMismatch:
            # The store switched encoders (a re-embedding finished) between loading ours and
            # reading the index: with the store's own encoder, load the new one and retry.
            if not own or attempt:
                raise
    raise AssertionError("unreachable")


def _search(
    store: Store,
    q: str,
    k: int,
    encoder,
    segments: bool,
    t0: float,
    rerank: int = 0,
    filters: SearchFilter | None = None,
    negatives: Sequence[str] = (),
    image=None,
    refine: bool = True,
) -> SearchResponse:
    store.check_encoder(encoder)
    warnings = []
    limit = encoder.spec.max_text_len
    if any(encoder.token_count(t) > limit for t in (q, *negatives) if t):
        warnings.append(f"a description is longer than the model's {limit} tokens; only its beginning was used")
    index = store.vector_index(encoder.fingerprint)
    total = index.ntotal
    if total == 0:
        raise EmptyStore(f"the store at {store.root} has no segments yet: index some videos first")
    empty = _empty_paths(store, filters)
    if empty:
        return SearchResponse(q, [], total, (time.perf_counter() - t0) * 1000, [f"0 results: no indexed video under {p}" for p in empty])
    tv = encoder.encode_query(q).numpy() if q else None
    iv = None
    if image is not None:
        from .image_query import image_vector, load_image

        iv = image_vector(encoder, image if isinstance(image, np.ndarray) else load_image(image))
    qv = compose(tv, iv, [encoder.encode_query(n).numpy() for n in negatives])[None, :]
    if rerank:
        if not hasattr(encoder, "rerank_scores"):
            raise QueryError(f"{encoder.family} encoders have no re-ranker (X-CLIP has one)")
        if filters is not None and not filters.empty or negatives or image is not None:
            raise QueryError("re-ranking works on a plain text query: drop --rerank, or the filters / --not / --image")
        hits = _reranked(store, index, encoder, q, qv, max(rerank, k), total)
        if not segments:
            hits = _first_per_video(hits)
        hits = _refined(store, hits[:k], qv, encoder.fingerprint) if refine else hits[:k]
        return SearchResponse(q, hits, total, (time.perf_counter() - t0) * 1000, warnings, reranked=True)
    hits = flag_missing(rank_segments(store, index, qv, k, segments, filters))
    if refine:
        hits = _refined(store, hits, qv, encoder.fingerprint)
    gone = sum(h.missing for h in hits)
    if gone:
        warnings.append(f"{gone} of these files are no longer on disk (flagged missing); `vsearch list --missing` lists them")
    label = " ".join([q or "image", *(["+ image"] if q and image is not None else []), *(f"not {n}" for n in negatives)])
    return SearchResponse(label, hits, total, (time.perf_counter() - t0) * 1000, warnings)


def _refined(store: Store, hits: list[Hit], qv: np.ndarray, fingerprint: str | None) -> list[Hit]:
    """The returned hits with their moments (cosines with ``qv`` even where the scores are a
    re-ranker's: the stored vectors are what every segment has)."""
    from .moments import refine_hits

    return refine_hits(store, hits, qv, fingerprint=fingerprint)


def _empty_paths(store: Store, filters: SearchFilter | None) -> list[str]:
    """The ``--in`` paths with nothing indexed under them, when none of them has anything."""
    if filters is None or not filters.under:
        return []
    counts = [store.count_videos_under(p) for p in filters.under]
    if any(counts):
        return []
    return list(filters.given_paths or filters.under)


def flag_missing(hits: list[Hit]) -> list[Hit]:
    """Mark hits whose file no longer exists (one stat per shown hit)."""
    import os

    for h in hits:
        h.missing = not os.path.exists(h.path)
    return hits


def rank_segments(
    store: Store, index, qv: np.ndarray, k: int, segments: bool = False, filters: SearchFilter | None = None
) -> list[Hit]:
    """The search path after the query vector: FAISS (re-ranked exactly where its codes are
    lossy), SQLite rows, the filters, then the best segment per video.

    Best segment per video over-fetches until ``k`` distinct videos are found or the index is
    exhausted, so one video owning thousands of the top segments cannot crowd the others out.
    A filter is applied by how much of the store it keeps (``RESTRICT_BELOW_SHARE``); either
    way every returned row is checked against it.
    """
    total = index.ntotal
    allowed, share = None, 1.0
    if filters is not None and not filters.empty:
        kept = store.count_segments(filters)
        if kept == 0:
            return []
        share = kept / max(store.count_segments(), 1)
        if share < RESTRICT_BELOW_SHARE:
            allowed = store.filtered_segment_ids(filters)
            total = min(total, len(allowed))
    fetch = k if segments else max(4 * k, 32)
    while True:
        n = min(total, fetch if allowed is not None else math.ceil(fetch / share))
        res = store.nearest(index, qv, n, allowed)
        ids = [int(i) for i in res.ids[0] if i >= 0]
        rows = store.segment_rows(ids)
        hits: list[Hit] = []
        seen: set[int] = set()
        for score, sid in zip(res.scores[0], ids):
            row = rows.get(sid)
            if row is None or (filters is not None and not filters.matches(row.path, row.duration, row.recorded_at)):
                continue
            if not segments:
                if row.video_id in seen:
                    continue  # results are sorted: the first segment seen per video is its best
                seen.add(row.video_id)
            hits.append(_hit(row, score))
        if len(hits) >= k or n >= total:
            return hits[:k]
        fetch *= 4


def _reranked(store: Store, index, encoder, q: str, qv: np.ndarray, n: int, total: int) -> list[Hit]:
    """The top ``n`` segments by cosine, re-scored from their frames (decoded again: nothing
    per segment is stored for re-ranking, so it costs a decode and a forward pass per candidate)."""
    from .video.decode import VideoReader, center_crop
    from .video.transforms import to_pixels

    res = store.nearest(index, qv, min(n, total))
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
    # A cosine: vectors stored as float16 are unit length only to ~1e-4, so a segment against
    # itself scored 1.000017; a cosine above 1 is a rounding artefact, never a result.
    cos = min(1.0, max(-1.0, float(score)))
    return Hit(row.path, cos, row.start_s, row.end_s, row.idx, row.segment_id, row.video_id, recorded_at=row.recorded_at)


def search_by_vector(
    store: Store,
    qv: np.ndarray,
    k: int = 10,
    *,
    segments: bool = False,
    label: str = "",
    fingerprint: str | None = None,
    filters: SearchFilter | None = None,
    refine: bool = True,
) -> SearchResponse:
    """Search with a ready query vector (an image's, or a stored segment's): no text encoder."""
    t0 = time.perf_counter()
    check_k(k)
    index = store.vector_index(fingerprint)
    if index.ntotal == 0:
        raise EmptyStore(f"the store at {store.root} has no segments yet: index some videos first")
    qv = np.asarray(qv, np.float32)[None, :]
    hits = flag_missing(rank_segments(store, index, qv, k, segments, filters))
    if refine:
        hits = _refined(store, hits, qv, fingerprint)
    return SearchResponse(label, hits, index.ntotal, (time.perf_counter() - t0) * 1000)


def search_like(
    store: Store,
    segment_id: int,
    k: int = 10,
    *,
    segments: bool = False,
    filters: SearchFilter | None = None,
    refine: bool = True,
) -> SearchResponse:
    """More like this: the stored vector of ``segment_id`` is the query (nothing is decoded)."""
    qv = store.segment_vector(segment_id)
    if qv is None:
        raise QueryError(f"segment {segment_id} is not in the store")
    return search_by_vector(
        store, qv, k, segments=segments, label=f"like segment {segment_id}", filters=filters, refine=refine
    )


def search_image(
    store: Store,
    image,
    k: int = 10,
    *,
    encoder=None,
    segments: bool = False,
    filters: SearchFilter | None = None,
    refine: bool = True,
) -> SearchResponse:
    """Search by an image (bytes, a path, or an ``(h, w, 3)`` array), embedded by the store's
    encoder as a one-frame video (``image_query``)."""
    from .image_query import image_vector, load_image

    pixels = image if isinstance(image, np.ndarray) else load_image(image)
    enc = encoder or load_store_encoder(store)
    store.check_encoder(enc)
    return search_by_vector(
        store,
        image_vector(enc, pixels),
        k,
        segments=segments,
        label="image",
        fingerprint=enc.fingerprint,
        filters=filters,
        refine=refine,
    )
