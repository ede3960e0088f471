"""The SQLite engine: WAL, busy timeout, foreign keys, and Alembic upgrade on open.

WAL lets searches read while an index run writes; the busy timeout makes a second writer wait
instead of failing. Every connection runs with ``foreign_keys=ON`` so deleting a video deletes
its segments and their embeddings in the same statement.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from ..errors import StoreError

#: The newest Alembic revision this code knows; a test checks it against ``migrations/``.
SCHEMA_HEAD = "0006"
BUSY_TIMEOUT_MS = 30_000


def make_engine(db_path: Path, readonly: bool = False) -> Engine:
    """An engine on the store database; ``readonly`` for stores this process cannot write.

    A reader opens ``mode=ro``, so it sees every committed transaction, including those still in
    the WAL (``immutable=1`` would read the main file alone: a store someone else is writing
    showed 24 videos where 34 were committed). Only when the WAL's shared-memory file can be
    neither found nor made (read-only media) and no WAL is there is ``immutable`` used: then the
    main file holds everything committed, and nobody can write to it.
    """
    if readonly:
        url = f"sqlite:///file:{db_path}?mode=ro&uri=true"
        if not _wal_readable(db_path):
            url += "&immutable=1"
    else:
        url = f"sqlite:///{db_path}"
    engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's implicit transactions
        # are the wrong shape for WAL readers and explicit write locks).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys = ON")
        if not readonly:
            _set_wal(cur)
            cur.execute("PRAGMA synchronous = NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:
        # ``immediate``: take the write lock up front (waiting up to the busy timeout). A deferred
        # transaction that reads and then writes fails at once with "database is locked" when
        # another process wrote in between (SQLite cannot upgrade a stale read snapshot).
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("immediate") else "BEGIN")

    return engine


def _wal_readable(db_path: Path) -> bool:
    """Whether a ``mode=ro`` reader can use the WAL: its shared-memory file exists or can be made,
    or there is a WAL with frames in it (then a failure to open is the honest answer)."""
    wal, shm = Path(f"{db_path}-wal"), Path(f"{db_path}-shm")
    if shm.exists() or os.access(db_path.parent, os.W_OK):
        return True
    return wal.exists() and wal.stat().st_size > 0


def _set_wal(cur) -> None:
    """Switch to WAL, retrying while another process holds the lock: changing the journal mode
    needs an exclusive lock and SQLite does not apply the busy timeout to it, so several processes
    opening a brand-new store at once would otherwise fail with "database is locked"."""
    import sqlite3
    import time

    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cur.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def alembic_config(engine: Engine | None = None):
    """An Alembic config pointing at the packaged ``migrations`` (``vsearch_migrations``)."""
    from alembic.config import Config

    script_dir = resources.files("vsearch_migrations")
    cfg = Config()
    cfg.set_main_option("script_location", os.fspath(script_dir))
    if engine is not None:
        cfg.set_main_option("sqlalchemy.url", str(engine.url))
    return cfg


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        try:
            row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
        except OperationalError:
            return None
    return row[0] if row else None


def upgrade(engine: Engine) -> None:
    """Apply pending migrations (no-op at head). Cheap check first: Alembic imports cost ~100 ms."""
    rev = current_revision(engine)
    if rev == SCHEMA_HEAD:
        return
    from alembic import command
    from alembic.script import ScriptDirectory

    cfg = alembic_config(engine)
    known = {s.revision for s in ScriptDirectory.from_config(cfg).walk_revisions()}
    if rev is not None and rev not in known:
        raise StoreError(
            f"the store's schema is at revision {rev}, which this vsearch does not know "
            "(written by a newer version?). Upgrade vsearch to open it."
        )
    # Two processes may open a new store at once (an indexer creating it, a reader polling it):
    # migrate under the write lock, and only if nobody did meanwhile.
    with engine.connect().execution_options(immediate=True) as conn, conn.begin():
        try:
            now = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        except OperationalError:
            now = None
        if now == SCHEMA_HEAD:
            return
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def sessions(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)
