"""Search filters: where a video lives, how long it is, when it was recorded.

A ``SearchFilter`` is data: parsed and checked once (dates, ranges), then handed to ``search``,
which picks how to apply it by how much of the store it keeps (``search.py``). The same object
serves the CLI (``--in``, ``--min-duration``, ``--after`` ...), the JSON API and the page.

Dates are calendar dates or times in UTC: ``YYYY``, ``YYYY-MM``, ``YYYY-MM-DD`` or an ISO 8601
time (``2024-06-01T18:30``, with or without an offset). ``after`` is inclusive and ``before``
exclusive, each at the *start* of the period named: ``--after 2023 --before 2024`` is the
year 2023, ``--before 2024-06`` ends at midnight on 1 June.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .errors import QueryError

__all__ = ["SearchFilter", "parse_date"]

_YEAR = re.compile(r"^\d{4}$")
_MONTH = re.compile(r"^(\d{4})-(\d{1,2})$")


def parse_date(text: str, what: str = "date") -> float:
    """POSIX seconds of the start of the period ``text`` names (UTC); QueryError if unreadable."""
    t = text.strip()
    try:
        if _YEAR.match(t):
            dt = datetime(int(t), 1, 1, tzinfo=UTC)
        elif m := _MONTH.match(t):
            dt = datetime(int(m.group(1)), int(m.group(2)), 1, tzinfo=UTC)
        else:
            dt = datetime.fromisoformat(t.replace("Z", "+00:00") if t.endswith("Z") else t)
            if dt.tzinfo is None:
                dt = dt.replace(tzinfo=UTC)
    except ValueError:
        raise QueryError(
            f"{what}: cannot read {text!r} as a date; use YYYY, YYYY-MM, YYYY-MM-DD or an ISO time like 2024-06-01T18:30"
        ) from None
    return dt.timestamp()


def _format_time(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class SearchFilter:
    """Which videos a search may return. Empty fields do not filter."""

    #: Absolute folders (everything under them) or files.
    under: tuple[str, ...] = ()
    #: The video's duration, seconds, inclusive bounds.
    min_duration: float | None = None
    max_duration: float | None = None
    #: Recording time, POSIX seconds UTC: ``after <= t < before``.
    after: float | None = None
    before: float | None = None
    #: Kept for messages: the paths as the user gave them.
    given_paths: tuple[str, ...] = field(default=(), compare=False)

    @classmethod
    def parse(
        cls,
        under: list[str] | tuple[str, ...] = (),
        min_duration: float | None = None,
        max_duration: float | None = None,
        after: str | None = None,
        before: str | None = None,
    ) -> SearchFilter:
        """Check and normalise user input; every refusal is one ``QueryError`` line."""
        for name, value in (("min duration", min_duration), ("max duration", max_duration)):
            if value is not None and (not math.isfinite(value) or value < 0):
                raise QueryError(f"{name} must be a number of seconds >= 0, got {value:g}")
        if min_duration is not None and max_duration is not None and min_duration > max_duration:
            raise QueryError(f"the duration range is inverted: min {min_duration:g} s is above max {max_duration:g} s")
        lo = parse_date(after, "after") if after else None
        hi = parse_date(before, "before") if before else None
        if lo is not None and hi is not None and lo >= hi:
            raise QueryError(f"the date range is empty: after {after} is not before {before}")
        paths = tuple(str(p) for p in under if str(p).strip())
        return cls(
            under=tuple(os.path.abspath(os.path.expanduser(p)) for p in paths),
            min_duration=min_duration,
            max_duration=max_duration,
            after=lo,
            before=hi,
            given_paths=paths,
        )

    @property
    def empty(self) -> bool:
        return not self.under and self.min_duration is None and self.max_duration is None and self.after is None and self.before is None

    def matches(self, path: str, duration: float, recorded_at: float | None) -> bool:
        """The same test as the SQL in ``Catalog.filtered_segment_ids``, on one row."""
        if self.under and not any(path == p or path.startswith(p.rstrip(os.sep) + os.sep) for p in self.under):
            return False
        if self.min_duration is not None and duration < self.min_duration:
            return False
        if self.max_duration is not None and duration > self.max_duration:
            return False
        if self.after is not None and (recorded_at is None or recorded_at < self.after):
            return False
        if self.before is not None and (recorded_at is None or recorded_at >= self.before):
            return False
        return True

    def as_dict(self) -> dict:
        out: dict = {}
        if self.under:
            out["in"] = list(self.under)
        if self.min_duration is not None:
            out["min_duration"] = self.min_duration
        if self.max_duration is not None:
            out["max_duration"] = self.max_duration
        if self.after is not None:
            out["after"] = _format_time(self.after)
        if self.before is not None:
            out["before"] = _format_time(self.before)
        return out
