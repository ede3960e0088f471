"""The store's run log: one row per ``index``/``reembed`` run (crashed runs are marked when the
next writer starts) and the files that failed, with their reasons. Mixed into ``Store``."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

from sqlalchemy import delete, select, update

from .base import StoreBase, storage_errors
from .rows import chunks as _chunks
from .rows import prefix_range as _prefix_range
from .rows import storable_text
from .schema import Failure, Run, utcnow


class RunLog(StoreBase):
    @storage_errors
    def record_failure(self, path: str, reason: str, size: int | None, mtime_ns: int | None, run_id: int | None) -> None:
        with self.Session.begin() as s:
            s.execute(delete(Failure).where(Failure.path == path))
            # Decoder messages can quote a non-UTF-8 file name; SQLite text must be valid UTF-8.
            s.add(Failure(path=path, reason=storable_text(reason)[:2000], size=size, mtime_ns=mtime_ns, run_id=run_id))

    def clear_failures(self, paths: Iterable[str]) -> None:
        with self.Session.begin() as s:
            for chunk in _chunks(list(paths), 500):
                s.execute(delete(Failure).where(Failure.path.in_(chunk)))

    def prune_failures(self, roots: Sequence[str], existing: set[str]) -> None:
        """Forget recorded failures of files under ``roots`` that are no longer there."""
        with self.Session.begin() as s:
            for root in roots:
                lo, hi = _prefix_range(root)
                rows = s.execute(
                    select(Failure.id, Failure.path).where((Failure.path == root) | ((Failure.path >= lo) & (Failure.path < hi)))
                )
                gone = [fid for fid, path in rows if path not in existing]
                for chunk in _chunks(gone, 500):
                    s.execute(delete(Failure).where(Failure.id.in_(chunk)))

    def failures(self) -> list[dict]:
        with self.Session() as s:
            rows = s.scalars(select(Failure).order_by(Failure.path)).all()
            return [{"path": r.path, "reason": r.reason, "failed_at": r.failed_at.isoformat(), "run_id": r.run_id} for r in rows]

    @storage_errors
    def start_run(self, kind: str, roots: Sequence[str] | None = None, encoder_id: int | None = None) -> int:
        with self.Session.begin() as s:
            # We hold the write lock, so any run still marked running died without saying so.
            s.execute(update(Run).where(Run.status == "running").values(status="crashed"))
            run = Run(kind=kind, status="running", roots=list(roots or []), encoder_id=encoder_id, pid=os.getpid())
            s.add(run)
            s.flush()
            return run.id

    @storage_errors
    def finish_run(self, run_id: int, status: str, counts: dict, timings: dict | None = None) -> None:
        with self.Session.begin() as s:
            s.execute(
                update(Run)
                .where(Run.id == run_id)
                .values(status=status, finished_at=utcnow(), counts=counts, timings=timings or {})
            )

