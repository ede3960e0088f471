"""HTTP Range requests (RFC 9110 §14) for video files: what a browser needs to seek.

Only single byte ranges are served as 206; a multi-range request gets the whole file (200),
which every client accepts; a range outside the file is 416. Parsing is strict: positions are
ASCII digits only (``int`` would take ``1_0``, ``+1`` or ``١``), and anything malformed is
ignored as RFC 9110 allows, which means the whole file.
"""

from __future__ import annotations

import os
import re

_SPEC = re.compile(r"(?P<first>[0-9]*)-(?P<last>[0-9]*)")


class Unsatisfiable(Exception):
    """The range lies outside the file: answer 416 with ``Content-Range: bytes */SIZE``."""


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(first, last)`` inclusive for a single satisfiable range; None for "send it all".

    None for: no header, a unit other than bytes, a malformed header, or several ranges.
    Raises ``Unsatisfiable`` when the (single) range starts past the end.
    """
    if not header:
        return None
    unit, eq, spec = header.strip().partition("=")
    if not eq or unit.strip().lower() != "bytes" or "," in spec:
        return None  # another unit, or multi-range: the whole file is a valid answer
    m = _SPEC.fullmatch(spec.strip())
    if m is None or (m["first"] == "" and m["last"] == ""):
        return None
    if m["first"] == "":  # suffix: the last N bytes
        n = int(m["last"])
        if n == 0:
            raise Unsatisfiable
        return max(0, size - n), size - 1
    first = int(m["first"])
    if m["last"] and int(m["last"]) < first:
        return None  # malformed: ignored, as RFC 9110 allows
    if first >= size:
        raise Unsatisfiable
    return first, min(int(m["last"]) if m["last"] else size - 1, size - 1)


MIME = {
    ".mp4": "video/mp4", ".m4v": "video/mp4", ".mov": "video/quicktime", ".webm": "video/webm", ".mkv": "video/x-matroska",
    ".avi": "video/x-msvideo", ".mpg": "video/mpeg", ".mpeg": "video/mpeg", ".ts": "video/mp2t", ".m2ts": "video/mp2t",
    ".wmv": "video/x-ms-wmv", ".flv": "video/x-flv", ".3gp": "video/3gpp", ".ogv": "video/ogg",
}  # fmt: skip


def mime_type(path: str) -> str:
    """The video's media type from its extension (``application/octet-stream`` when unknown)."""
    return MIME.get(os.path.splitext(path)[1].lower(), "application/octet-stream")
