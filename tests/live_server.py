"""`vsearch serve` in a subprocess of its own, for the server and page tests.

The server runs torch on its worker threads; inside the pytest process that once left two
OpenMP runtimes spinning and hung CI for 30 minutes. A subprocess in its own process group is
killed whole on teardown, and its start has a deadline.
"""

from __future__ import annotations

import http.client
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.procs import kill_group

#: Seconds the server may take to import, load the store and its model, and listen.
START_DEADLINE = 120
_LISTENING = re.compile(r"on (http://\S+?)/ \(Ctrl-C")


class LiveServer:
    """``with LiveServer(store, "--token", "t") as srv: srv.url``; stderr is kept for messages."""

    def __init__(self, store: Path, *args: str, env: dict | None = None):
        self.args = [sys.executable, "-m", "vsearch", "serve", "--store", str(store), "--port", "0", *args]
        self.env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "COLUMNS": "400", **(env or {})}
        self.lines: list[str] = []
        self.url = ""
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> LiveServer:
        self.proc = subprocess.Popen(
            self.args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            env=self.env, start_new_session=True, text=True,
        )  # fmt: skip
        lines: queue.Queue[str | None] = queue.Queue()

        def drain():
            for line in self.proc.stderr:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=drain, daemon=True).start()
        deadline = time.monotonic() + START_DEADLINE
        while not self.url:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                self.stop()
                raise RuntimeError(f"vsearch serve did not start in {START_DEADLINE} s: {''.join(self.lines)}") from None
            if line is None:
                self.stop()
                raise RuntimeError(f"vsearch serve exited before listening: {''.join(self.lines)}")
            self.lines.append(line)
            m = _LISTENING.search(line)
            if m:
                self.url = m.group(1)
        threading.Thread(target=lambda: [self.lines.append(x) for x in iter(lines.get, None)], daemon=True).start()
        return self

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def stop(self) -> None:
        """End the whole process group: SIGTERM, then SIGKILL after 10 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            kill_group(self.proc)
        except ProcessLookupError:
            pass

    def __exit__(self, *exc) -> None:
        self.stop()


def request(url: str, method: str = "GET", headers: dict | None = None, data: bytes | None = None, timeout: float = 60):
    """``(status, headers with lower-case names, body)``; HTTP errors are answers, not exceptions."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a, **kw):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    req = urllib.request.Request(url, method=method, headers=headers or {}, data=data)
    try:
        with opener.open(req, timeout=timeout) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def get_json(url: str, **kw) -> tuple[int, dict]:
    code, headers, body = request(url, **kw)
    assert headers.get("content-type", "").startswith("application/json"), (code, headers, body[:200])
    return code, json.loads(body)


def raw(port: int, head: bytes, body: bytes = b"", timeout: float = 60) -> tuple[int, dict, bytes]:
    """Send bytes as they are (headers urllib would fix or refuse); ``(status, headers, body)``."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    conn.connect()
    conn.sock.sendall(head + body)
    resp = http.client.HTTPResponse(conn.sock, method=head.split(b" ", 1)[0].decode())
    resp.begin()
    out = resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    conn.close()
    return out
