"""One writer per store: an advisory file lock that names its holder.

``flock`` is released by the kernel when the holder dies (even by SIGKILL), so a crashed run
never leaves a stale lock behind. Readers (search, status) never take it: SQLite WAL and
generation-named index files keep them consistent.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path

from ..errors import StoreBusy


class WriteLock:
    def __init__(self, path: Path, purpose: str):
        self.path = path
        self.purpose = purpose
        self._fd: int | None = None

    def acquire(self, wait: bool = False, timeout: float | None = None) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not wait or (deadline is not None and time.monotonic() > deadline):
                    holder = self._read_holder(fd)
                    os.close(fd)
                    raise StoreBusy(
                        f"the store is being written by {holder}. Wait for it to finish (or pass --wait), or stop that process."
                    ) from None
                time.sleep(0.2)
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "purpose": self.purpose,
            "command": " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))[:300],
            "since": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        self._fd = fd

    @staticmethod
    def _read_holder(fd: int) -> str:
        try:
            info = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
        except (OSError, ValueError):
            info = {}
        if not info:
            return "another process"
        return f"pid {info.get('pid')} on {info.get('host')} ({info.get('purpose')}: `{info.get('command')}`, since {info.get('since')})"

    def release(self) -> None:
        if self._fd is not None:
            try:
                os.ftruncate(self._fd, 0)
            except OSError:
                pass
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> WriteLock:
        if self._fd is None:
            self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


class ReentrantLock:
    """What ``Store.lock`` returns: re-entrant per ``Store`` object; release() undoes one lock() call."""

    def __init__(self, owner, inner: WriteLock):
        self.owner, self.inner, self.depth = owner, inner, 1

    def release(self) -> None:
        self.depth -= 1
        if self.depth == 0:
            self.inner.release()
            self.owner._lock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.release()
