"""Running the app: bind first (a busy port is one line, before any model loads), then uvicorn.

A command-line search pays for Python imports and model loading every time; a server pays once.
This module holds what the CLI needs around the app: the loopback check, who holds a busy port,
and ``start`` for running it in a background thread.
The server follows the store: new videos appear as they are committed (SQLite WAL readers), and
after a ``vsearch reembed`` it loads the store's new encoder on the next query.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import threading
import time

import uvicorn

from ..errors import ServeError
from .app import create_app
from .guard import allowed_hosts
from .service import SearchService

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (0: any free port), or a one-line ``ServeError``."""
    if not 0 <= port <= 65535:
        raise ServeError(f"--port must be between 0 and 65535 (0: any free port), got {port}")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            who = port_holder(port)
            raise ServeError(
                f"port {port} on {host} is already in use{f' by {who}' if who else ''}; pick another with --port (0: any free port)"
            ) from None
        raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def port_holder(port: int) -> str | None:
    """``"pid 1234 (python3)"`` for the process listening on ``port``, when Linux's /proc says (best effort)."""
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


class Server:
    """uvicorn serving ``app`` on an already bound socket; ``serve_forever`` (the CLI) or
    ``start`` / ``stop`` in a background thread (notebooks; tests run the CLI in a subprocess)."""

    def __init__(self, app, sock: socket.socket):
        self.sock = sock
        self.host, self.port = sock.getsockname()[:2]
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=2)
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None
        self.service = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def serve_forever(self) -> None:
        self._server.run(sockets=[self.sock])

    def start(self) -> Server:
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.sock.close()
        if self.service is not None:
            self.service.close()


def start(
    store_dir, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *, model=None, device=None, token=None, allow_hosts=()
) -> Server:
    """Bind, load the store and its model, and serve in a background thread; returns the
    ``Server`` (``.url``, ``.stop()``). The CLI uses the same pieces in the foreground."""
    sock = bind(host, port)
    try:
        service = SearchService(store_dir, model=model, device=device)
    except BaseException:
        sock.close()
        raise
    server = Server(create_app(service, token=token, hosts=allowed_hosts(host, allow_hosts)), sock).start()
    server.service = service
    return server
