"""Opening a video file for ``/media``: only the regular file the store indexed, as it was then.

The store keeps a path, and the file at that path can change after indexing: a symlink to any
other file swapped in would be served as ``video/mp4``, and a FIFO (or a stalled mount) would
hold a worker thread forever in ``open``. So the file is opened non-blocking without following
a final symlink, checked with ``fstat`` after the open (what is checked is what is read), and
served only when it is a regular file whose size and mtime are still those recorded at index
time. The store has no inode column; size and mtime are what it records.

A video indexed through a symlink (discovery follows links and keeps the link's path) still
plays: the link is resolved once, the target is opened without following links, and the same
checks decide. A link to some other file does not match the recorded size and mtime.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass

#: Bytes per chunk when streaming a file.
CHUNK = 256 * 1024
_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


@dataclass(frozen=True)
class IndexedFile:
    """A video's file as the store recorded it when it was indexed."""

    path: str
    size: int
    mtime_ns: int


class MediaRefused(Exception):
    """The file cannot be served; ``status`` is 404 (gone) or 409 (not what was indexed)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _open_nofollow(path: str) -> int:
    try:
        return os.open(path, _FLAGS)
    except OSError as exc:
        if exc.errno != errno.ELOOP:  # ELOOP: the last part of the path is a symlink
            raise
    return os.open(os.path.realpath(path), _FLAGS)


def open_indexed(f: IndexedFile) -> tuple[int, int]:
    """``(fd, size)`` of the file the store indexed, or ``MediaRefused`` with the reason."""
    try:
        fd = _open_nofollow(f.path)
    except FileNotFoundError:
        raise MediaRefused(404, "the file is no longer on disk") from None
    except OSError as exc:
        raise MediaRefused(409, f"the file cannot be opened ({exc.strerror or exc})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise MediaRefused(409, f"the path now holds a {_kind(st.st_mode)}, not the video file that was indexed")
        if st.st_size != f.size or st.st_mtime_ns != f.mtime_ns:
            raise MediaRefused(409, "the file changed since it was indexed (size or time differs); index it again")
    except BaseException:
        os.close(fd)
        raise
    return fd, st.st_size


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "FIFO"), (stat.S_ISDIR, "folder"), (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "device"), (stat.S_ISBLK, "device")):  # fmt: skip
        if test(mode):
            return name
    return "special file"


def stream(fd: int, first: int, last: int) -> Iterator[bytes]:
    """Bytes ``first..last`` (inclusive) of the open file ``fd``, in chunks; closes ``fd`` when
    done or abandoned (a client that goes away mid-file)."""
    try:
        pos = first
        while pos <= last:
            data = os.pread(fd, min(CHUNK, last - pos + 1), pos)
            if not data:
                break
            pos += len(data)
            yield data
    finally:
        os.close(fd)
