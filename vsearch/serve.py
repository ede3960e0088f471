"""``vsearch serve``: search over HTTP from a process that has the model loaded already.

A command-line search pays for Python imports and model loading every time; a server pays
once. JSON API, bound to 127.0.0.1 unless told otherwise:

- ``GET /search?q=TEXT&k=10&segments=0`` → ``{"query", "hits": [...], "took_ms", "searched"}``
- ``GET /status`` → what ``vsearch status --json`` prints
- ``GET /health`` → ``{"ok": true}``

Errors are JSON too: ``{"error": "..."}`` with status 400 (bad query), 404, 409 (empty store) or
500. The server follows the store: new videos appear as they are committed, and after a
``vsearch reembed`` it loads the store's new encoder on the next query.
"""

from __future__ import annotations

import ipaddress
import json
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from .errors import EmptyStore, QueryError, VsearchError
from .search import load_store_encoder, search
from .store.store import Store

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class SearchService:
    """The state a server keeps: one store handle and the encoder (loaded once, text cache warm)."""

    def __init__(self, store_dir, model: str | None = None, device: str | None = None):
        self.store = Store.open(store_dir, create=False)
        self.model, self.device = model, device
        self._lock = threading.Lock()  # torch inference and the store handle: one query at a time
        if self.store.encoder() is not None:
            load_store_encoder(self.store, model, device)  # load now, not on the first query

    def search(self, q: str, k: int, segments: bool) -> dict:
        with self._lock:
            encoder = load_store_encoder(self.store, self.model, self.device) if self.model else None
            resp = search(self.store, q, k, encoder=encoder, segments=segments)
        return {
            "query": resp.query,
            "hits": [h.as_dict() for h in resp.hits],
            "searched": resp.searched,
            "took_ms": round(resp.took_ms, 3),
            "warnings": resp.warnings,
        }

    def status(self) -> dict:
        with self._lock:
            return self.store.status()

    def close(self) -> None:
        self.store.close()


def make_server(service: SearchService, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        server_version = "vsearch"

        def log_message(self, fmt, *args) -> None:  # quiet: the CLI prints one line at start
            pass

        def _send(self, status: HTTPStatus, payload) -> None:
            body = json.dumps(payload, ensure_ascii=False).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            url = urlparse(self.path)
            args = parse_qs(url.query)
            try:
                if url.path == "/search":
                    k = int(args.get("k", ["10"])[0])
                    segments = args.get("segments", ["0"])[0].lower() in ("1", "true", "yes")
                    self._send(HTTPStatus.OK, service.search(args.get("q", [""])[0], k, segments))
                elif url.path == "/status":
                    self._send(HTTPStatus.OK, service.status())
                elif url.path == "/health":
                    self._send(HTTPStatus.OK, {"ok": True})
                else:
                    self._send(HTTPStatus.NOT_FOUND, {"error": f"no such endpoint {url.path}; try /search?q=... or /status"})
            except (QueryError, ValueError) as exc:
                self._send(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
            except EmptyStore as exc:
                self._send(HTTPStatus.CONFLICT, {"error": str(exc)})
            except VsearchError as exc:
                self._send(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": str(exc)})

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server
