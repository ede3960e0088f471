"""The search page and its JSON API (FastAPI on uvicorn), served by ``vsearch serve``.

Routes (every error is JSON ``{"error": "..."}``; ``/openapi.json`` lists each route's statuses):

- ``/`` the page (``?q=...&k=...&segments=1&like=SEGMENT``: a search is a URL); ``/v/{video}``
  a video's page (``?t=SECONDS&seg=SEGMENT``); ``/status-page``; ``/static/{file}``.
- ``GET /api/search?q=&k=&offset=&segments=``, ``GET /api/like/{segment}``, ``POST /api/image``
  (multipart ``file``, optional ``q``), ``GET /api/video/{video}``, ``GET /api/status``. The three
  searches take the filters ``in`` (repeatable), ``min_duration``, ``max_duration``, ``after``,
  ``before``, and ``refine`` (default true: each hit's ``moment_start`` / ``moment_end``); text
  and image searches take ``not`` (repeatable), as the command line does.
- ``GET /media/{video}``: the file, by store id only, with Range support; ``GET /thumb/{segment}``.
- The earlier API stays: ``GET /search``, ``/status``, ``/health``. OpenAPI: ``/openapi.json``
  (the interactive ``/docs`` page is off: it loads scripts from a CDN, and this page works offline).
- Every GET route answers HEAD too.

Limits: ``k`` is a page of the API (at most ``MAX_PAGE`` cards, each with a thumbnail to fetch);
``offset + k`` reaches as deep into the ranking as the command line's ``-k`` (``MAX_K``), and a
page past that is empty. The earlier ``/search`` takes ``k`` up to ``MAX_K``, as the CLI does.

The store is opened read-only in spirit: the server never writes to it (lazily made thumbnails
go to a cache outside the store). Host names, the token, upload size and security headers are
checked around the app (``guard``).
"""

from __future__ import annotations

import os
from importlib import resources

from fastapi import Depends, FastAPI, File, Path, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import EmptyStore, QueryError, VsearchError
from ..filters import SearchFilter
from ..image_query import MAX_IMAGE_BYTES
from ..search import MAX_K
from ..store.damage import damage_message
from .guard import LOOPBACK_NAMES, Guard
from .media import MediaRefused, open_indexed, stream
from .openapi import binary, document, errors
from .ranges import Unsatisfiable, mime_type, parse_range
from .service import SearchService

#: The only files /static serves (no path from the client ever reaches the file system).
STATIC = {"app.js": "text/javascript", "style.css": "text/css", "video.js": "text/javascript", "status.js": "text/javascript"}
PAGES = {"index": "index.html", "video": "video.html", "status": "status.html"}
#: Cards per page of the API (see the module docstring for why it is not ``MAX_K``).
MAX_PAGE = 200
#: Store ids are SQLite integer keys: 1 .. 2**63 - 1. Anything else names no video.
MAX_ID = 2**63 - 1
#: A multipart upload may carry this much around the image itself (boundaries, part headers).
MULTIPART_ENVELOPE = 64 * 1024
VIDEO_TYPES = ("video/mp4", "video/webm", "video/quicktime", "video/x-matroska", "application/octet-stream")
#: Path parameters, and what a value out of range or not a number means: nothing by that id.
MISSING = {"video_id": "video {} is not in the store", "segment_id": "segment {} is not in the store"}


def _asset(name: str) -> bytes:
    return resources.files("vsearch.web").joinpath("static", name).read_bytes()


def error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _bounds(request: Request, name: str) -> tuple[object, object]:
    """The ``ge`` / ``le`` a route declares for the query parameter ``name`` (for the message)."""
    route = request.scope.get("route")
    for param in getattr(getattr(route, "dependant", None), "query_params", ()):
        if param.name == name:
            lo = next((m.ge for m in param.field_info.metadata if hasattr(m, "ge")), None)
            hi = next((m.le for m in param.field_info.metadata if hasattr(m, "le")), None)
            return lo, hi
    return None, None


def _validation_message(request: Request, exc: RequestValidationError) -> tuple[int, str]:
    first = exc.errors()[0] if exc.errors() else {}
    loc = first.get("loc", ())
    where = ".".join(str(x) for x in loc[1:]) or "request"
    value, kind = first.get("input"), first.get("type", "")
    if loc[:1] == ("path",):
        return 404, MISSING.get(where, "no such item: {}").format(value)
    if where == "q":
        return 400, "the query is empty; describe what to find, e.g. ?q=a+dog+catches+a+frisbee"
    if kind in ("greater_than_equal", "less_than_equal"):
        lo, hi = _bounds(request, where)
        return 400, f"{where} must be between {lo} and {hi}, got {value}"
    if kind.startswith("int"):
        return 400, f"{where} must be a whole number, not {value!r}"
    if kind == "missing":
        return 400, f"{where} is required"
    return 400, f"{where}: {first.get('msg', 'invalid')}"


def create_app(service: SearchService, token: str | None = None, hosts: frozenset[str] = frozenset(LOOPBACK_NAMES)):
    """The application for ``service``: FastAPI's routes inside ``Guard`` (``hosts``: the Host
    names answered, ``guard.allowed_hosts``; ``token``: required on every request when set)."""
    app = FastAPI(title="vsearch", docs_url=None, redoc_url=None, description="Search folders of video by text.")
    app.router.redirect_slashes = False  # a redirect would be built from the Host header
    app.openapi = lambda: document(app)

    def get(path: str, **kw):
        """A GET route that answers HEAD too (the HEAD twin stays out of the document)."""

        def register(fn):
            app.add_api_route(path, fn, methods=["GET"], **kw)
            app.add_api_route(path, fn, methods=["HEAD"], include_in_schema=False)
            return fn

        return register

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        if exc.status_code == 404:
            return error(404, f"no such page or endpoint: {request.url.path}")
        if exc.status_code == 405:
            return error(405, f"{request.method} is not allowed on {request.url.path}", dict(exc.headers or {}))
        return error(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _bad_request(request: Request, exc: RequestValidationError):
        return error(*_validation_message(request, exc))

    @app.exception_handler(QueryError)
    async def _query_error(request: Request, exc: QueryError):
        return error(400, str(exc))

    @app.exception_handler(EmptyStore)
    async def _empty(request: Request, exc: EmptyStore):
        return error(409, str(exc))

    @app.exception_handler(VsearchError)
    async def _vsearch(request: Request, exc: VsearchError):
        return error(500, str(exc))

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception):
        damage = damage_message(exc)
        if damage is not None:
            return error(503, damage)
        return error(500, f"internal error ({type(exc).__name__}); the server's log has the details")

    def html(name: str) -> Response:
        return Response(_asset(PAGES[name]), media_type="text/html; charset=utf-8", headers={"Cache-Control": "no-cache"})

    @get("/", include_in_schema=False)
    def index_page():
        return html("index")

    @get("/v/{video_id}", include_in_schema=False)
    def video_page(video_id: int):
        return html("video")

    @get("/status-page", include_in_schema=False)
    def status_page():
        return html("status")

    @get("/static/{name}", include_in_schema=False)
    def static(name: str):
        if name not in STATIC:
            return error(404, f"no such file: {name}")
        return Response(_asset(name), media_type=STATIC[name], headers={"Cache-Control": "no-cache"})

    Text = Query(min_length=1, pattern=r"[^\s\x1c-\x1f]", description="What to find, in words")
    Page = Query(24, ge=1, le=MAX_PAGE, description="Results per page")
    Offset = Query(0, ge=0, le=MAX_K, description="Results to skip (offset + k reaches at most MAX_K deep)")
    VideoId = Path(ge=1, le=MAX_ID, description="A video's store id")
    SegmentId = Path(ge=1, le=MAX_ID, description="A segment's store id")

    def filters(
        in_: list[str] = Query([], alias="in", description="Only videos in this folder or file (repeatable)"),
        min_duration: float | None = Query(None, ge=0, description="Only videos at least this long (seconds)"),
        max_duration: float | None = Query(None, ge=0, description="Only videos at most this long (seconds)"),
        after: str | None = Query(None, description="Recorded on or after (YYYY, YYYY-MM, YYYY-MM-DD, ISO; UTC)"),
        before: str | None = Query(None, description="Recorded before (same forms)"),
    ) -> SearchFilter:
        return SearchFilter.parse(in_, min_duration, max_duration, after, before)  # QueryError -> 400

    Not = Query([], alias="not", description="Move results away from this description (repeatable)")
    Refine = Query(
        True, description="Give each hit its moment (moment_start, moment_end): its segment widened to the neighbours that match as well"
    )

    @get("/api/search", summary="Search by text", responses=errors(409))
    def api_search(
        q: str = Text,
        k: int = Page,
        offset: int = Offset,
        segments: bool = False,
        flt: SearchFilter = Depends(filters),
        not_: list[str] = Not,
        refine: bool = Refine,
    ):
        return service.search(q, k, segments, offset, flt, not_, refine)

    @get("/api/like/{segment_id}", summary="More like this: a stored segment's vector is the query", responses=errors(404, 409))
    def api_like(
        segment_id: int = SegmentId,
        k: int = Page,
        offset: int = Offset,
        segments: bool = False,
        flt: SearchFilter = Depends(filters),
        refine: bool = Refine,
    ):
        page = service.like(segment_id, k, segments, offset, flt, refine)
        return page if page is not None else error(404, MISSING["segment_id"].format(segment_id))

    @app.post(
        "/api/image", summary="Search by image (multipart field `file`), optionally with text and --not", responses=errors(409, 413)
    )
    async def api_image(
        file: UploadFile = File(...),
        k: int = Page,
        offset: int = Offset,
        segments: bool = False,
        flt: SearchFilter = Depends(filters),
        q: str = Query("", description="Words searched together with the image (one query)"),
        not_: list[str] = Not,
        refine: bool = Refine,
    ):
        data = await file.read(MAX_IMAGE_BYTES + 1)
        if len(data) > MAX_IMAGE_BYTES:
            return error(413, f"the image is larger than {MAX_IMAGE_BYTES // (1024 * 1024)} MB")
        # decoding + torch: off the event loop
        return await run_in_threadpool(service.image, data, k, segments, offset, flt, q.strip(), not_, refine)

    @get("/api/video/{video_id}", summary="A video's facts and segments", responses=errors(404))
    def api_video(video_id: int = VideoId):
        v = service.video(video_id)
        return v if v is not None else error(404, MISSING["video_id"].format(video_id))

    @get("/api/status", summary="What the store holds", responses=errors())
    def api_status():
        return service.status()

    @get(
        "/media/{video_id}", summary="The video file, by store id, with Range support", response_class=Response,
        responses={**binary(*VIDEO_TYPES, partial=True), **errors(404, 409, 416)},
    )  # fmt: skip
    def media(request: Request, video_id: int = VideoId):
        indexed = service.indexed_file(video_id)
        if indexed is None:
            return error(404, MISSING["video_id"].format(video_id))
        try:
            fd, size = open_indexed(indexed)
        except MediaRefused as exc:
            return error(exc.status, f"video {video_id}: {exc}")
        headers = {"Accept-Ranges": "bytes", "Cache-Control": "no-cache"}
        try:
            rng = parse_range(request.headers.get("range"), size)
        except Unsatisfiable:
            os.close(fd)
            return error(416, f"range outside the file ({size} bytes)", {"Content-Range": f"bytes */{size}"})
        first, last, status = (0, size - 1, 200) if rng is None else (*rng, 206)
        if status == 206:
            headers["Content-Range"] = f"bytes {first}-{last}/{size}"
        headers["Content-Length"] = str(last - first + 1)
        if request.method == "HEAD":
            os.close(fd)
            return Response(status_code=status, media_type=mime_type(indexed.path), headers=headers)
        return StreamingResponse(stream(fd, first, last), status_code=status, media_type=mime_type(indexed.path), headers=headers)

    @get("/thumb/{segment_id}", summary="A segment's thumbnail (JPEG)", response_class=Response,
         responses={**binary("image/jpeg"), **errors(404)})  # fmt: skip
    def thumb(segment_id: int = SegmentId):
        jpeg = service.thumbnail(segment_id)
        if jpeg is None:
            return error(404, f"no thumbnail for segment {segment_id}")
        return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})

    # The earlier JSON API, unchanged but for k, which goes as deep as the CLI's -k.
    @get("/search", summary="Search by text (earlier API)", responses=errors(409))
    def old_search(q: str = Text, k: int = Query(10, ge=1, le=MAX_K), segments: bool = False):
        resp = service.search(q, k, segments)
        return {key: resp[key] for key in ("query", "hits", "searched", "took_ms", "warnings")}

    @get("/status", summary="What the store holds (earlier API)", responses=errors())
    def old_status():
        return service.status()

    @get("/health", summary="Is the store usable? 503 with the reason when its database is damaged", responses=errors(503))
    def health():
        problem = service.health()
        return {"ok": True} if problem is None else error(503, problem)

    return Guard(app, hosts=hosts, token=token, caps={"/api/image": MAX_IMAGE_BYTES + MULTIPART_ENVELOPE})
