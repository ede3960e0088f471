"""The OpenAPI document, made to say what the server really does.

FastAPI documents every route as 200 or 422; this server never sends 422 (a bad parameter is a
400 with ``{"error": ...}``) and does send 400, 401, 404, 409, 413 and 416, and ``/media`` and
``/thumb`` answer with files, not JSON. Routes declare their statuses with ``errors(...)``;
``document`` then removes what FastAPI adds on its own. ``tests/test_web_schemathesis.py`` checks
the document against the live app.
"""

from __future__ import annotations

from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

#: What each error status means here (the description in the document).
WHY = {
    400: "Bad request: a parameter out of range, an unreadable image, or a host name this server does not answer to",
    401: "A token is required (the server was started with --token)",
    404: "No such video, segment, thumbnail or file",
    409: "The store cannot answer (empty, or the file is no longer what was indexed)",
    413: "The upload is too large",
    416: "The range lies outside the file",
    500: "The store or its model failed",
    503: "The store's database is damaged (`vsearch check --repair` salvages it)",
}
#: Statuses any route can answer: the host check and the token come before every route.
EVERYWHERE = (400, 401, 500, 503)


class ErrorBody(BaseModel):
    """Every error, on every route: one line saying what went wrong."""

    error: str


def errors(*codes: int) -> dict:
    """``responses=`` for a route that can answer ``codes`` besides the statuses of every route."""
    return {c: {"model": ErrorBody, "description": WHY[c]} for c in sorted({*codes, *EVERYWHERE})}


def binary(*media_types: str, partial: bool = False) -> dict:
    """``responses=`` entries for a route that answers with a file of one of ``media_types``."""
    content = {t: {"schema": {"type": "string", "format": "binary"}} for t in media_types}
    out = {200: {"description": "The file", "content": content}}
    if partial:
        out[206] = {"description": "The requested byte range (Range: bytes=FIRST-LAST)", "content": content}
    return out


def document(app) -> dict:
    """The app's OpenAPI document without FastAPI's 422 and its validation schemas, with the
    file routes' 200 as binary only (FastAPI adds ``application/json`` to every 200)."""
    if app.openapi_schema is None:
        doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        for item in doc.get("paths", {}).values():
            for op in item.values():
                op.get("responses", {}).pop("422", None)
                ok = op.get("responses", {}).get("200", {})
                media = ok.get("content", {})
                if any(t != "application/json" for t in media):
                    media.pop("application/json", None)
        for name in ("HTTPValidationError", "ValidationError"):
            doc.get("components", {}).get("schemas", {}).pop(name, None)
        app.openapi_schema = doc
    return app.openapi_schema
