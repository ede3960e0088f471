"""What a running server keeps: one store handle and its encoder, loaded once, and the calls the
routes make on them. Every call here is blocking (SQLite, FAISS, torch): the routes run them in
worker threads, never on the event loop, and ``_lock`` lets one of them at a time at the store."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Sequence

from ..atomic import atomic_write_bytes
from ..errors import VsearchError
from ..filters import SearchFilter
from ..search import MAX_K, load_store_encoder, search, search_image, search_like
from ..store.damage import damage_message, integrity_problem
from ..store.rows import DB_NAME
from ..store.store import Store
from ..thumbnails import cache_dir
from ..video.pictures import decode_thumbnail
from .media import IndexedFile
from .ranges import mime_type


class SearchService:
    """One store handle and its encoder, loaded once (the first query does not pay for it)."""

    def __init__(self, store_dir, model: str | None = None, device: str | None = None):
        self.store = Store.open(store_dir, create=False)
        self.model, self.device = model, device
        self._lock = threading.Lock()  # torch inference and the store handle: one query at a time
        self._full = None
        self._damage: str | None = None
        threading.Thread(target=self._quick_check, name="vsearch-quick-check", daemon=True).start()
        if self.store.encoder() is not None:
            load_store_encoder(self.store, model, device)  # load now, not on the first query

    def encoder(self):
        """The store's full encoder (the query fast path has no image tower)."""
        rec = self.store.encoder()
        if self._full is None or rec is None or self._full.fingerprint != rec.fingerprint:
            self._full = load_store_encoder(self.store, self.model, self.device)
        return self._full

    @staticmethod
    def depth(k: int, offset: int) -> int:
        """How many hits to ask for: the page plus one (is there more?), never past ``MAX_K``,
        the ranking depth the command line has too. A page past it is empty, not an error."""
        return max(1, min(offset + k + 1, MAX_K))

    def _page(self, resp, k: int, offset: int) -> dict:
        hits = resp.hits[offset : offset + k]
        return {
            "query": resp.query,
            "hits": [self.card(h) for h in hits],
            "offset": offset,
            "more": len(resp.hits) > offset + k,
            "searched": resp.searched,
            "took_ms": round(resp.took_ms, 3),
            "warnings": resp.warnings,
        }

    def card(self, hit) -> dict:
        """A hit as the page shows it; ``page`` opens the video at the moment (``t`` to ``end``)
        with its best segment (``seg``) marked, or at the segment when the hit has no moment."""
        d = hit.as_dict()
        t, end = (hit.start, hit.end) if hit.moment_start is None else (hit.moment_start, hit.moment_end)
        d.update(
            name=os.path.basename(hit.path), folder=os.path.dirname(d["path"]), thumb=f"/thumb/{hit.segment_id}",
            page=f"/v/{hit.video_id}?t={t:.3f}&end={end:.3f}&seg={hit.segment_id}", media=f"/media/{hit.video_id}",
        )  # fmt: skip
        return d

    def search(
        self,
        q: str,
        k: int,
        segments: bool,
        offset: int = 0,
        filters: SearchFilter | None = None,
        negatives: Sequence[str] = (),
        refine: bool = True,
    ) -> dict:
        with self._lock:
            encoder = self.encoder() if self.model else None
            resp = search(
                self.store, q, self.depth(k, offset), encoder=encoder, segments=segments, filters=filters, negatives=negatives,
                refine=refine,
            )  # fmt: skip
        return self._page(resp, k, offset)

    def like(
        self, segment_id: int, k: int, segments: bool, offset: int = 0, filters: SearchFilter | None = None, refine: bool = True
    ) -> dict | None:
        """None when the segment is not in the store (a 404, as for a missing video)."""
        with self._lock:
            if self.store.segment_vector(segment_id) is None:
                return None
            resp = search_like(self.store, segment_id, self.depth(k, offset), segments=segments, filters=filters, refine=refine)
        return self._page(resp, k, offset)

    def image(
        self,
        data: bytes,
        k: int,
        segments: bool,
        offset: int = 0,
        filters: SearchFilter | None = None,
        q: str = "",
        negatives: Sequence[str] = (),
        refine: bool = True,
    ) -> dict:
        """Search by an uploaded image; with ``q`` and ``negatives`` the three form one query."""
        from ..image_query import load_image  # PIL: only when someone searches by image

        pixels = load_image(data)  # bounded and refused before the lock: a bad image waits on nobody
        with self._lock:
            depth = self.depth(k, offset)
            if q or negatives:
                resp = search(
                    self.store, q, depth, encoder=self.encoder(), segments=segments, filters=filters, negatives=negatives, image=pixels,
                    refine=refine,
                )  # fmt: skip
            else:
                resp = search_image(
                    self.store, pixels, depth, encoder=self.encoder(), segments=segments, filters=filters, refine=refine
                )
        return self._page(resp, k, offset)

    def health(self) -> str | None:
        """None while the store answers; else the one-line reason (damage found by SQLite's
        quick_check, run once in the background at start, or by this cheap probe)."""
        if self._damage is not None:
            return self._damage
        try:
            with self._lock:
                self.store.generation()
                self.store.count_videos()
        except Exception as exc:  # noqa: BLE001 - reported as the health answer, not raised
            return damage_message(exc) or f"the store cannot be read: {exc}"
        return None

    def _quick_check(self) -> None:
        problem = integrity_problem(self.store.root / DB_NAME, quick=True)
        if problem:
            self._damage = f"the store database is damaged: {problem}. Run `vsearch check --repair`"

    def status(self) -> dict:
        with self._lock:
            info = self.store.status()
            info["failure_list"] = self.store.failures()[:50]
        return info

    def video(self, video_id: int) -> dict | None:
        with self._lock:
            v = self.store.video(video_id)
        if v is None:
            return None
        v["name"] = os.path.basename(v["path"])
        v["mime"] = mime_type(v["path"])
        v["exists"] = os.path.exists(v["path"])
        for s in v["segments"]:
            s["thumb"] = f"/thumb/{s['segment_id']}"
        return v

    def indexed_file(self, video_id: int) -> IndexedFile | None:
        """What the store recorded about a video's file at index time (the server serves only that)."""
        with self._lock:
            v = self.store.video(video_id)
        return IndexedFile(v["path"], v["size"], v["mtime_ns"]) if v else None

    def thumbnail(self, segment_id: int) -> bytes | None:
        with self._lock:
            jpeg = self.store.thumbnail(segment_id)
        if jpeg is not None:
            return jpeg
        return self._lazy_thumbnail(segment_id)

    def _lazy_thumbnail(self, segment_id: int) -> bytes | None:
        """A store indexed before thumbnails existed: decode one frame, cache it outside the store."""
        with self._lock:
            source = self.store.thumbnail_source(segment_id)
        if source is None:
            return None
        path, frame = source
        try:
            st = os.stat(path)
        except OSError:
            return None
        store_id = hashlib.blake2b(str(self.store.root).encode(), digest_size=8).hexdigest()  # stable across runs
        key = f"{store_id}-{segment_id}-{st.st_size}-{st.st_mtime_ns}.jpg"
        cached = cache_dir() / key
        if cached.is_file():
            return cached.read_bytes()
        try:
            jpeg, _w, _h = decode_thumbnail(path, frame)
        except VsearchError:
            return None
        atomic_write_bytes(cached, jpeg)
        return jpeg

    def close(self) -> None:
        self.store.close()
