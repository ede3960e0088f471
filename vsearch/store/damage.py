"""A damaged store database: telling, in one line, and salvaging what SQLite can still read.

Damage comes from outside vsearch (a disk that lies about fsync, a copy cut short, a file
overwritten by mistake): SQLite then answers "database disk image is malformed" from whatever
query first touches a bad page. Nothing here ever deletes or overwrites the damaged file: a
repair writes a new database beside it, and the damaged one is kept under another name.

- ``file_problem``: what the first bytes say (empty, not SQLite), without opening it.
- ``integrity_problem``: SQLite's own ``integrity_check``, first finding only.
- ``salvage``: copy every row that can still be read into a fresh database with the current
  schema, table by table and in rowid ranges that shrink around unreadable pages (the approach
  of SQLite's ``.recover``, at row rather than page level), then drop what no longer hangs
  together (segments of lost videos, vectors of the wrong length or not finite).
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SQLITE_MAGIC = b"SQLite format 3\x00"
#: Tables copied by a salvage, parents before children (foreign keys are checked at the end).
TABLES = ("meta", "encoders", "videos", "segments", "embeddings", "thumbnails", "failures", "runs", "vector_indexes")
#: A salvage reads rows in ranges of this many rowids; a range that fails is halved down to one row.
CHUNK = 4096


def damage_message(exc: BaseException) -> str | None:
    """One line for SQLite's "malformed" / "not a database" raised by a query after the store
    opened (the damaged page was not on the path ``Store.open`` reads), else None. The CLI and
    the server use it so that damage is reported, never shown as a traceback or a bare 500."""
    orig = getattr(exc, "orig", exc)
    if isinstance(orig, sqlite3.DatabaseError) and not isinstance(orig, sqlite3.OperationalError):
        return f"the store database is damaged: {orig}. Nothing was changed; run `vsearch check --repair`"
    return None


def file_problem(db_path: Path) -> str | None:
    """Why ``db_path`` cannot be a store database at all, from its size and header; else None."""
    try:
        size = db_path.stat().st_size
        with open(db_path, "rb") as f:
            head = f.read(len(SQLITE_MAGIC))
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if size == 0:
        return "it is empty (0 bytes)"
    if head != SQLITE_MAGIC:
        return "it is not a SQLite database (its first bytes are not SQLite's header)"
    return None


def integrity_problem(db_path: Path, quick: bool = False) -> str | None:
    """SQLite's ``integrity_check`` (``quick_check`` with ``quick``): its first finding, or None."""
    problem = file_problem(db_path)
    if problem:
        return problem
    try:
        con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
        try:
            rows = con.execute("PRAGMA quick_check" if quick else "PRAGMA integrity_check").fetchall()
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        return str(exc)
    findings = [r[0] for r in rows if r and r[0] != "ok"]
    if not findings:
        return None
    more = f" (and {len(findings) - 1} more findings)" if len(findings) > 1 else ""
    return " ".join(findings[0].split()) + more


@dataclass
class SalvageReport:
    #: Rows copied per table.
    copied: dict[str, int] = field(default_factory=dict)
    #: Rowid ranges that could not be read, per table (a count of rows at most).
    unreadable: dict[str, int] = field(default_factory=dict)
    #: Rows dropped afterwards because what they belong to was lost or they are invalid.
    dropped: dict[str, int] = field(default_factory=dict)
    #: Where the damaged file was moved.
    kept_at: str = ""

    def as_dict(self) -> dict:
        return {"copied": self.copied, "unreadable": self.unreadable, "dropped": self.dropped, "kept_at": self.kept_at}


def _readable_rows(src: sqlite3.Connection, table: str, columns: list[str]):
    """Every row of ``table`` that can be read, in rowid order; unreadable ranges are skipped."""
    cols = ", ".join(f'"{c}"' for c in columns)
    try:
        hi = src.execute(f'SELECT max(rowid) FROM "{table}"').fetchone()[0]
    except sqlite3.DatabaseError:
        hi = None
    if hi is None:
        try:
            hi = src.execute(f'SELECT rowid FROM "{table}" ORDER BY rowid DESC LIMIT 1').fetchone()
            hi = hi[0] if hi else 0
        except sqlite3.DatabaseError:
            hi = 1 << 22  # the table's b-tree root is unreadable: probe a bounded range
    skipped = 0
    stack = [(lo, min(lo + CHUNK, hi + 1)) for lo in range(0, hi + 1, CHUNK)][::-1]
    out = []
    while stack:
        lo, end = stack.pop()
        try:
            out.extend(src.execute(f'SELECT {cols} FROM "{table}" WHERE rowid >= ? AND rowid < ?', (lo, end)).fetchall())
        except sqlite3.DatabaseError:
            if end - lo <= 1:
                skipped += 1
                continue
            mid = (lo + end) // 2
            stack += [(mid, end), (lo, mid)]
    return out, skipped


def salvage(damaged: Path, fresh: Path) -> SalvageReport:
    """Copy what can be read from ``damaged`` into ``fresh`` (a new database with the current
    schema, made by the caller), then drop rows that lost their parents or are invalid."""
    report = SalvageReport()
    src = sqlite3.connect(f"file:{damaged}?mode=ro", uri=True)
    dst = sqlite3.connect(fresh)
    try:
        dst.execute("PRAGMA foreign_keys = OFF")
        for table in TABLES:
            try:
                have = {r[1] for r in src.execute(f'PRAGMA table_info("{table}")')}
            except sqlite3.DatabaseError:
                have = set()
            want = [r[1] for r in dst.execute(f'PRAGMA table_info("{table}")')]
            columns = [c for c in want if c in have]
            if not columns:
                report.unreadable[table] = -1  # the table itself is gone
                continue
            rows, skipped = _readable_rows(src, table, columns)
            if table == "meta":
                dst.execute("DELETE FROM meta")
            marks = ", ".join("?" for _ in columns)
            names = ", ".join(f'"{c}"' for c in columns)
            dst.executemany(f'INSERT OR IGNORE INTO "{table}" ({names}) VALUES ({marks})', rows)
            report.copied[table] = len(rows)
            if skipped:
                report.unreadable[table] = skipped
        report.dropped = _drop_what_lost_its_parents(dst)
        dst.commit()
        dst.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # everything in the main file before it is renamed
    finally:
        src.close()
        dst.close()
    return report


def _drop_what_lost_its_parents(dst: sqlite3.Connection) -> dict[str, int]:
    dropped: dict[str, int] = {}

    def run(name: str, sql: str) -> None:
        n = dst.execute(sql).rowcount
        if n:
            dropped[name] = dropped.get(name, 0) + n

    run("segments", "DELETE FROM segments WHERE video_id NOT IN (SELECT id FROM videos)")
    run("embeddings", "DELETE FROM embeddings WHERE segment_id NOT IN (SELECT id FROM segments)")
    run("embeddings", "DELETE FROM embeddings WHERE encoder_id NOT IN (SELECT id FROM encoders)")
    run("thumbnails", "DELETE FROM thumbnails WHERE segment_id NOT IN (SELECT id FROM segments)")
    run("vector_indexes", "DELETE FROM vector_indexes WHERE encoder_id NOT IN (SELECT id FROM encoders)")
    # Vectors are re-validated: the length the encoder's dimension asks for, every value finite.
    import json

    dims = {}
    for eid, spec in dst.execute("SELECT id, spec FROM encoders"):
        try:
            dims[eid] = int(json.loads(spec)["dim"])
        except (ValueError, KeyError, TypeError):
            dims[eid] = None
    bad = []
    for sid, eid, blob in dst.execute("SELECT segment_id, encoder_id, vector FROM embeddings"):
        dim = dims.get(eid)
        if dim is None or blob is None or len(blob) != 2 * dim or not np.isfinite(np.frombuffer(blob, np.float16)).all():
            bad.append((sid, eid))
    if bad:
        dst.executemany("DELETE FROM embeddings WHERE segment_id = ? AND encoder_id = ?", bad)
        dropped["embeddings"] = dropped.get("embeddings", 0) + len(bad)
    # Settings a lost meta row would leave unset: the defaults a new store gets, and the encoder
    # that owns the surviving vectors.
    from ..config import DEFAULT_MIN_TAIL_SECONDS, DEFAULT_SEGMENT_SECONDS

    dst.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('segment_seconds', ?)", (repr(DEFAULT_SEGMENT_SECONDS),))
    dst.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('min_tail_seconds', ?)", (repr(DEFAULT_MIN_TAIL_SECONDS),))
    # The segmenter: "shots" when a surviving video's segments were planned from cuts.
    dst.execute(
        "INSERT OR IGNORE INTO meta (key, value) SELECT 'segmenter', "
        "CASE WHEN EXISTS (SELECT 1 FROM videos WHERE cuts IS NOT NULL) THEN 'shots' ELSE 'fixed' END"
    )
    dst.execute(
        "INSERT OR IGNORE INTO meta (key, value) SELECT 'encoder_id', CAST(min(encoder_id) AS TEXT) FROM embeddings "
        "HAVING count(*) > 0"
    )
    # The generation must not go back: FAISS files name the generation they reflect.
    dst.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES ('generation', "
        "CAST(max(COALESCE((SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'generation'), 0),"
        " COALESCE((SELECT max(gen) FROM embeddings), 0)) + 1 AS TEXT))"
    )
    return dropped


def set_aside(db_path: Path) -> Path:
    """Move the damaged database and its WAL / shared-memory files aside; returns the new name."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    kept = db_path.with_name(f"{db_path.name}.damaged-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        src = Path(f"{db_path}{suffix}")
        if src.exists():
            os.replace(src, Path(f"{kept}{suffix}"))
    return kept


def recover(root: Path) -> SalvageReport:
    """Rebuild ``root``'s database from what its damaged one still holds (``check --repair``).

    A fresh database with the current schema is filled by ``salvage``, the damaged file is set
    aside (never deleted), the new one takes its name, and every FAISS file goes (the next
    open rebuilds the index from the recovered vectors). Raises ``StoreError`` when nothing can
    be read at all, saying what to do.
    """
    from ..errors import StoreError
    from . import db as dbmod
    from .base import INDEX_DIR
    from .rows import DB_NAME

    db_path = root / DB_NAME
    problem = file_problem(db_path)
    if problem:
        raise StoreError(
            f"{db_path}: {problem}; nothing can be recovered from it. Move it away (vsearch never deletes it) "
            f"and run `vsearch index FOLDER --store {root}` to build the store again."
        )
    if not _schema_readable(db_path):
        raise StoreError(
            f"{db_path}: {_short_note(db_path)}the table definitions themselves cannot be read, so no rows can be "
            f"salvaged. The file was left as it is; move it away and run `vsearch index FOLDER --store {root}` to build "
            "the store again (videos are re-embedded)."
        )
    fresh = root / f".{DB_NAME}.recovering-{os.getpid()}"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{fresh}{suffix}").unlink(missing_ok=True)
    engine = dbmod.make_engine(fresh)
    try:
        dbmod.upgrade(engine)
    finally:
        engine.dispose()
    try:
        report = salvage(db_path, fresh)
    except BaseException:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{fresh}{suffix}").unlink(missing_ok=True)
        raise
    kept = set_aside(db_path)
    os.replace(fresh, db_path)
    for suffix in ("-wal", "-shm"):
        Path(f"{fresh}{suffix}").unlink(missing_ok=True)
    index_dir = root / INDEX_DIR
    if index_dir.is_dir():
        for f in index_dir.glob("vectors-*.faiss"):
            f.unlink()
    report.kept_at = str(kept)
    return report


def _schema_readable(db_path: Path) -> bool:
    try:
        con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
        try:
            con.execute("SELECT name FROM sqlite_master").fetchall()
        finally:
            con.close()
    except sqlite3.DatabaseError:
        return False
    return True


def _short_note(db_path: Path) -> str:
    """"the file is cut short (N of M pages); " when its header says it should be longer."""
    try:
        with open(db_path, "rb") as f:
            head = f.read(100)
        page = int.from_bytes(head[16:18], "big") or 65536
        pages = int.from_bytes(head[28:32], "big")
        have = db_path.stat().st_size // page
    except (OSError, ValueError):
        return ""
    return f"the file is cut short ({have} of {pages} pages); " if pages and have < pages else ""


def database_problem(root: Path | None) -> tuple[Path, str | None]:
    """(the store folder, SQLite's first finding about its database or None); for ``check``.

    ``StoreNotFound`` when there is no database at all: nothing to check.
    """
    from ..config import store_dir
    from ..errors import StoreNotFound
    from .rows import DB_NAME

    folder = store_dir(root)
    db_path = folder / DB_NAME
    if not db_path.exists():
        raise StoreNotFound(f"no vsearch store at {folder} (index something first, or pass --store)")
    return folder, integrity_problem(db_path)


def recover_locked(root: Path) -> SalvageReport:
    """``recover`` under the store's write lock (waiting for a running writer to finish)."""
    from .base import LOCK_NAME
    from .lock import WriteLock

    lock = WriteLock(root / LOCK_NAME, "check --repair")
    lock.acquire(wait=True)
    try:
        return recover(root)
    finally:
        lock.release()
