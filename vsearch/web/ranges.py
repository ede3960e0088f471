"""HTTP Range requests (RFC 9110 §14) for video files: what a browser needs to seek.

Only single byte ranges are served as 206; a multi-range request gets the whole file (200),
which every client accepts; a range outside the file is 416.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

#: Bytes per chunk when streaming a file.
CHUNK = 256 * 1024


class Unsatisfiable(Exception):
    """The range lies outside the file: answer 416 with ``Content-Range: bytes */SIZE``."""


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(first, last)`` inclusive for a single satisfiable range; None for "send it all".

    None for: no header, a unit other than bytes, a malformed header, or several ranges.
    Raises ``Unsatisfiable`` when the (single) range starts past the end.
    """
    if not header:
        return None
    unit, _, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes" or not spec:
        return None
    if "," in spec:
        return None  # multi-range: the whole file is a valid answer
    first_s, dash, last_s = spec.strip().partition("-")
    if not dash:
        return None
    try:
        if first_s == "":  # suffix: the last N bytes
            n = int(last_s)
            if n <= 0:
                raise Unsatisfiable
            return max(0, size - n), size - 1
        first = int(first_s)
        last = int(last_s) if last_s else size - 1
    except ValueError:
        return None
    if first < 0:
        return None
    if first >= size:
        raise Unsatisfiable
    if last < first:
        return None  # malformed: ignored, as RFC 9110 allows
    return first, min(last, size - 1)


def read_range(path: str, first: int, last: int) -> Iterator[bytes]:
    """Stream bytes ``first..last`` (inclusive) of ``path`` in chunks."""
    with open(path, "rb") as f:
        f.seek(first)
        left = last - first + 1
        while left > 0:
            data = f.read(min(CHUNK, left))
            if not data:
                break
            left -= len(data)
            yield data


MIME = {
    ".mp4": "video/mp4", ".m4v": "video/mp4", ".mov": "video/quicktime", ".webm": "video/webm", ".mkv": "video/x-matroska",
    ".avi": "video/x-msvideo", ".mpg": "video/mpeg", ".mpeg": "video/mpeg", ".ts": "video/mp2t", ".m2ts": "video/mp2t",
    ".wmv": "video/x-ms-wmv", ".flv": "video/x-flv", ".3gp": "video/3gpp", ".ogv": "video/ogg",
}  # fmt: skip


def mime_type(path: str) -> str:
    return MIME.get(os.path.splitext(path)[1].lower(), "application/octet-stream")
