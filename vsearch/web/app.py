"""The search page and its JSON API (FastAPI on uvicorn), served by ``vsearch serve``.

Routes (all JSON errors: ``{"error": "..."}`` with 400, 401, 404, 405, 409, 413 or 500):

- ``/`` the page (``?q=...&k=...&segments=1&like=SEGMENT``: a search is a URL); ``/v/{video}``
  a video's page (``?t=SECONDS&seg=SEGMENT``); ``/status-page``; ``/static/{file}``.
- ``GET /api/search?q=&k=&offset=&segments=``, ``GET /api/like/{segment}``, ``POST /api/image``
  (multipart ``file``), ``GET /api/video/{video}``, ``GET /api/status``.
- ``GET /media/{video}``: the file, by store id only, with Range support; ``GET /thumb/{segment}``.
- The earlier API stays: ``GET /search``, ``/status``, ``/health``. OpenAPI: ``/openapi.json``
  (the interactive ``/docs`` page is off: it loads scripts from a CDN, and this page works offline).

The store is opened read-only in spirit: the server never writes to it (lazily made thumbnails
go to a cache outside the store). With a token (``--token`` / ``VSEARCH_TOKEN``) every request
needs it: header ``Authorization: Bearer T`` or ``X-Vsearch-Token``, or the cookie that
``/?token=T`` sets.
"""

from __future__ import annotations

import hmac
import os
import threading
from importlib import resources

from fastapi import FastAPI, File, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import EmptyStore, QueryError, VsearchError
from ..image_query import MAX_IMAGE_BYTES
from ..search import search, search_image, search_like
from .ranges import Unsatisfiable, mime_type, parse_range, read_range

#: The only files /static serves (no path from the client ever reaches the file system).
STATIC = {"app.js": "text/javascript", "style.css": "text/css", "video.js": "text/javascript"}
PAGES = {"index": "index.html", "video": "video.html", "status": "status.html"}
MAX_PAGE = 200


def _asset(name: str) -> bytes:
    return resources.files("vsearch.web").joinpath("static", name).read_bytes()


class SearchService:
    """What a running server keeps: one store handle and its encoder, loaded once."""

    def __init__(self, store_dir, model: str | None = None, device: str | None = None):
        from ..search import load_store_encoder
        from ..store.store import Store

        self.store = Store.open(store_dir, create=False)
        self.model, self.device = model, device
        self._lock = threading.Lock()  # torch inference and the store handle: one query at a time
        self._full = None
        if self.store.encoder() is not None:
            load_store_encoder(self.store, model, device)  # load now, not on the first query

    def encoder(self):
        """The store's full encoder (the query fast path has no image tower)."""
        from ..search import load_store_encoder

        rec = self.store.encoder()
        if self._full is None or rec is None or self._full.fingerprint != rec.fingerprint:
            self._full = load_store_encoder(self.store, self.model, self.device)
        return self._full

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
        d = hit.as_dict()
        d.update(
            name=os.path.basename(hit.path), folder=os.path.dirname(d["path"]), thumb=f"/thumb/{hit.segment_id}",
            page=f"/v/{hit.video_id}?t={hit.start:.3f}&seg={hit.segment_id}", media=f"/media/{hit.video_id}",
        )  # fmt: skip
        return d

    def search(self, q: str, k: int, segments: bool, offset: int = 0) -> dict:
        with self._lock:
            encoder = self.encoder() if self.model else None
            resp = search(self.store, q, k + offset + 1, encoder=encoder, segments=segments)  # +1: is there more?
        return self._page(resp, k, offset)

    def like(self, segment_id: int, k: int, segments: bool, offset: int = 0) -> dict:
        with self._lock:
            resp = search_like(self.store, segment_id, k + offset + 1, segments=segments)
        return self._page(resp, k, offset)

    def image(self, data: bytes, k: int, segments: bool, offset: int = 0) -> dict:
        with self._lock:
            resp = search_image(self.store, data, k + offset + 1, encoder=self.encoder(), segments=segments)
        return self._page(resp, k, offset)

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

    def thumbnail(self, segment_id: int) -> bytes | None:
        with self._lock:
            jpeg = self.store.thumbnail(segment_id)
        if jpeg is not None:
            return jpeg
        return self._lazy_thumbnail(segment_id)

    def _lazy_thumbnail(self, segment_id: int) -> bytes | None:
        """A store indexed before thumbnails existed: decode one frame, cache it outside the store."""
        from ..thumbnails import cache_dir, decode_thumbnail

        with self._lock:
            source = self.store.thumbnail_source(segment_id)
        if source is None:
            return None
        path, frame = source
        try:
            st = os.stat(path)
        except OSError:
            return None
        import hashlib

        store_id = hashlib.blake2b(str(self.store.root).encode(), digest_size=8).hexdigest()  # stable across runs
        key = f"{store_id}-{segment_id}-{st.st_size}-{st.st_mtime_ns}.jpg"
        cached = cache_dir() / key
        if cached.is_file():
            return cached.read_bytes()
        try:
            jpeg, _w, _h = decode_thumbnail(path, frame)
        except VsearchError:
            return None
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(jpeg)
        os.replace(tmp, cached)
        return jpeg

    def media_path(self, video_id: int) -> str | None:
        with self._lock:
            v = self.store.video(video_id)
        return v["path"] if v else None

    def close(self) -> None:
        self.store.close()


def create_app(service: SearchService, token: str | None = None):
    """The FastAPI application for ``service`` (``token``: required on every request when set)."""
    app = FastAPI(title="vsearch", docs_url=None, redoc_url=None, description="Search folders of video by text.")

    def error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        if exc.status_code == 404:
            return error(404, f"no such page or endpoint: {request.url.path}")
        if exc.status_code == 405:
            return error(405, f"{request.method} is not allowed on {request.url.path}", dict(exc.headers or {}))
        return error(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _bad_request(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ())[1:]) or "request"
        value = first.get("input")
        if first.get("type", "").startswith("int"):
            return error(400, f"{where} must be a whole number, not {value!r}")
        return error(400, f"{where}: {first.get('msg', 'invalid')}")

    @app.exception_handler(QueryError)
    async def _query_error(request: Request, exc: QueryError):
        return error(413 if "larger than" in str(exc) else 400, str(exc))

    @app.exception_handler(EmptyStore)
    async def _empty(request: Request, exc: EmptyStore):
        return error(409, str(exc))

    @app.exception_handler(VsearchError)
    async def _vsearch(request: Request, exc: VsearchError):
        return error(500, str(exc))

    if token:

        @app.middleware("http")
        async def _require_token(request: Request, call_next):
            given = (
                request.headers.get("x-vsearch-token")
                or request.headers.get("authorization", "").removeprefix("Bearer ").strip()
                or request.cookies.get("vsearch_token")
                or request.query_params.get("token")
            )
            if not given or not hmac.compare_digest(given, token):
                return error(401, "this server needs a token: Authorization: Bearer TOKEN, or open /?token=TOKEN once")
            response = await call_next(request)
            if request.query_params.get("token"):
                response.set_cookie("vsearch_token", token, httponly=True, samesite="strict")
            return response

    def html(name: str) -> Response:
        return Response(_asset(PAGES[name]), media_type="text/html; charset=utf-8", headers={"Cache-Control": "no-cache"})

    @app.get("/", include_in_schema=False)
    def index_page():
        return html("index")

    @app.get("/v/{video_id}", include_in_schema=False)
    def video_page(video_id: int):
        return html("video")

    @app.get("/status-page", include_in_schema=False)
    def status_page():
        return html("status")

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str):
        if name not in STATIC:
            return error(404, f"no such file: {name}")
        return Response(_asset(name), media_type=STATIC[name], headers={"Cache-Control": "no-cache"})

    def page_args(k: int, offset: int) -> None:
        if not 1 <= k <= MAX_PAGE:
            raise QueryError(f"k must be between 1 and {MAX_PAGE}, got {k}")
        if offset < 0 or offset > 10_000:
            raise QueryError(f"offset must be between 0 and 10000, got {offset}")

    @app.get("/api/search", summary="Search by text")
    def api_search(q: str = "", k: int = Query(24), offset: int = Query(0), segments: bool = False):
        page_args(k, offset)
        return service.search(q, k, segments, offset)

    @app.get("/api/like/{segment_id}", summary="More like this: a stored segment's vector is the query")
    def api_like(segment_id: int, k: int = Query(24), offset: int = Query(0), segments: bool = False):
        page_args(k, offset)
        return service.like(segment_id, k, segments, offset)

    @app.post("/api/image", summary="Search by image (multipart field `file`)")
    async def api_image(file: UploadFile = File(...), k: int = Query(24), offset: int = Query(0), segments: bool = False):
        page_args(k, offset)
        data = await file.read(MAX_IMAGE_BYTES + 1)
        if len(data) > MAX_IMAGE_BYTES:
            return error(413, f"the image is larger than {MAX_IMAGE_BYTES // (1024 * 1024)} MB")
        return service.image(data, k, segments, offset)

    @app.get("/api/video/{video_id}", summary="A video's facts and segments")
    def api_video(video_id: int):
        v = service.video(video_id)
        return v if v is not None else error(404, f"video {video_id} is not in the store")

    @app.get("/api/status", summary="What the store holds")
    def api_status():
        return service.status()

    @app.get("/media/{video_id}", summary="The video file, by store id, with Range support")
    def media(video_id: int, request: Request):
        path = service.media_path(video_id)
        if path is None:
            return error(404, f"video {video_id} is not in the store")
        try:
            size = os.stat(path).st_size
        except OSError:
            return error(404, f"video {video_id}: the file is no longer on disk")
        headers = {"Accept-Ranges": "bytes", "Cache-Control": "no-cache"}
        try:
            rng = parse_range(request.headers.get("range"), size)
        except Unsatisfiable:
            return error(416, f"range outside the file ({size} bytes)", {"Content-Range": f"bytes */{size}"})
        if rng is None:
            headers["Content-Length"] = str(size)
            return StreamingResponse(read_range(path, 0, size - 1), media_type=mime_type(path), headers=headers)
        first, last = rng
        headers.update({"Content-Range": f"bytes {first}-{last}/{size}", "Content-Length": str(last - first + 1)})
        return StreamingResponse(read_range(path, first, last), status_code=206, media_type=mime_type(path), headers=headers)

    @app.get("/thumb/{segment_id}", summary="A segment's thumbnail (JPEG)")
    def thumb(segment_id: int):
        jpeg = service.thumbnail(segment_id)
        if jpeg is None:
            return error(404, f"no thumbnail for segment {segment_id}")
        return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})

    # The earlier JSON API, unchanged.
    @app.get("/search", summary="Search by text (earlier API)")
    def old_search(q: str = "", k: int = Query(10), segments: bool = False):
        from ..search import check_k

        check_k(k)
        resp = service.search(q, k, segments)
        return {key: resp[key] for key in ("query", "hits", "searched", "took_ms", "warnings")}

    @app.get("/status", summary="What the store holds (earlier API)")
    def old_status():
        return service.status()

    @app.get("/health")
    def health():
        return {"ok": True}

    return app
