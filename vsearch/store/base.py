"""What every part of ``Store`` shares: the engine and sessions, the meta table, the generation
counter, and the translation of storage failures into one-line errors.

``Store`` is composed of mixins, one per responsibility (catalog reads, video commits, encoder
lifecycle, run log, index sync, health); each subclasses ``StoreBase`` so that it can use
these helpers, and none imports another.
"""

from __future__ import annotations

import errno
import functools
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Integer, Text, func, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from ..errors import StoreError
from . import db as dbmod
from .schema import Meta

if TYPE_CHECKING:
    from .lock import ReentrantLock
    from .vectors import VectorIndex

INDEX_DIR = "index"
LOCK_NAME = "write.lock"


def storage_errors(fn):
    """Turn a full disk or a read-only medium into a ``StoreError`` that says so.

    Whatever was being written is rolled back (SQLite) or never renamed into place (FAISS
    files), so the store opens as it was before the failed write.
    """

    @functools.wraps(fn)
    def wrapper(self, *args, **kwargs):
        try:
            return fn(self, *args, **kwargs)
        except (OperationalError, OSError, RuntimeError) as exc:
            text = str(getattr(exc, "orig", exc)).lower()
            code = getattr(exc, "errno", None)
            if "disk is full" in text or "no space left" in text or code == errno.ENOSPC:
                raise StoreError(
                    f"the disk holding the store at {self.root} is full. Nothing already committed was lost; "
                    "free some space and run the command again (finished files are skipped)."
                ) from None
            if "readonly" in text or "read-only" in text or code in (errno.EROFS, errno.EACCES):
                raise StoreError(
                    f"the store at {self.root} cannot be written (read-only or no permission): {text[:120]}"
                ) from None
            raise

    return wrapper


class StoreBase:
    """State and helpers shared by the store's mixins (see the module docstring)."""

    def __init__(self, root: Path, engine, readonly: bool = False):
        self.root = root
        self.readonly = readonly
        self.engine = engine
        self.Session = dbmod.sessions(engine)
        self.index_dir = root / INDEX_DIR
        self._index: VectorIndex | None = None
        self._index_gen = -1
        self._index_encoder: int | None = None
        self._index_lock = threading.RLock()
        self._lock: ReentrantLock | None = None

    @staticmethod
    def _meta(s: Session, key: str, default: str | None = None) -> str | None:
        row = s.get(Meta, key)
        return row.value if row is not None else default

    @staticmethod
    def _set_meta(s: Session, key: str, value: str) -> None:
        s.merge(Meta(key=key, value=value))

    def get_setting(self, key: str, default: str | None = None) -> str | None:
        with self.Session() as s:
            return self._meta(s, key, default)

    def set_setting(self, key: str, value: str) -> None:
        with self.Session.begin() as s:
            self._set_meta(s, key, value)

    def generation(self) -> int:
        with self.Session() as s:
            return int(self._meta(s, "generation", "0"))

    def _bump_generation(self, s: Session) -> int:
        # First statement of every write transaction: it takes SQLite's write lock at once, so two
        # writers queue on the busy timeout instead of deadlocking on a read-to-write upgrade.
        s.execute(update(Meta).where(Meta.key == "generation").values(value=func.cast(func.cast(Meta.value, Integer) + 1, Text)))
        return int(self._meta(s, "generation"))
