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

from .errors import EmptyStore, QueryError, ServeError, VsearchError
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

        def _not_allowed(self) -> None:
            url = urlparse(self.path)
            known = url.path in ("/search", "/status", "/health")
            status = HTTPStatus.METHOD_NOT_ALLOWED if known else HTTPStatus.NOT_FOUND
            msg = f"{self.command} is not allowed on {url.path}; use GET" if known else f"no such endpoint {url.path}"
            body = json.dumps({"error": msg}).encode()
            self.send_response(status)
            if known:
                self.send_header("Allow", "GET")
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_POST = do_PUT = do_DELETE = do_PATCH = _not_allowed  # noqa: N815

        def send_error(self, code, message=None, explain=None) -> None:
            """http.server's own errors (unsupported method, malformed request) as JSON, not HTML."""
            try:
                self._send(HTTPStatus(code), {"error": message or HTTPStatus(code).phrase})
            except OSError:  # the connection is already broken
                pass

        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            url = urlparse(self.path)
            args = parse_qs(url.query)
            try:
                if url.path == "/search":
                    raw_k = args.get("k", ["10"])[0]
                    try:
                        k = int(raw_k)
                    except ValueError:
                        raise QueryError(f"k must be a whole number, not {raw_k!r}") from None
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

    try:
        server = ThreadingHTTPServer((host, port), Handler)
    except OSError as exc:
        import errno

        if exc.errno == errno.EADDRINUSE:
            who = port_holder(port)
            raise ServeError(
                f"port {port} on {host} is already in use{f' by {who}' if who else ''}; pick another with --port (0: any free port)"
            ) from None
        if exc.errno == errno.EADDRNOTAVAIL or isinstance(exc, OSError) and exc.errno in (errno.EACCES,):
            raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
        raise
    server.daemon_threads = True
    return server


def port_holder(port: int) -> str | None:
    """``"pid 1234 (python3)"`` for the process listening on ``port``, when Linux's /proc says (best effort)."""
    import os

    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if int(parts[1].rsplit(":", 1)[1], 16) == port and parts[3] == "0A":  # 0A: LISTEN
                        inodes.add(parts[9])
        except (OSError, StopIteration, IndexError, ValueError):
            continue
    if not inodes:
        return None
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    with open(f"/proc/{pid}/comm") as c:
                        return f"pid {pid} ({c.read().strip()})"
        except OSError:
            continue
    return None
