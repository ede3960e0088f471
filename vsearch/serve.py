"""``vsearch serve``: the search page and JSON API from a process that keeps the model loaded.

A command-line search pays for Python imports and model loading every time; a server pays once.
The app is ``vsearch.web.app`` (FastAPI); this module holds what the CLI needs around it: the
loopback check, who holds a busy port, and ``start`` for running it in the background. The
server follows the store: new videos appear as they are committed (SQLite WAL readers), and
after a ``vsearch reembed`` it loads the store's new encoder on the next query.
"""

from __future__ import annotations

import ipaddress

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def start(store_dir, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *, model=None, device=None, token=None):
    """Bind, load the store and its model, and serve in a background thread; returns the
    ``Server`` (``.url``, ``.stop()``). The CLI uses the same pieces in the foreground."""
    from .web.app import SearchService, create_app
    from .web.server import Server, bind

    sock = bind(host, port)
    try:
        service = SearchService(store_dir, model=model, device=device)
    except BaseException:
        sock.close()
        raise
    server = Server(create_app(service, token=token), sock).start()
    server.service = service
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
