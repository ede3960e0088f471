"""Stores as an older vsearch wrote them: a database migrated only up to an old revision, for
the tests that check what opening it with this version does."""

from __future__ import annotations

from pathlib import Path


def engine_at(root: Path, revision: str):
    """A new store folder ``root`` whose database stands at schema ``revision`` (Alembic's own
    upgrade, stopped there); returns its SQLAlchemy engine for the test to fill in rows."""
    from alembic import command

    from vsearch.store import db as dbmod

    root.mkdir()
    engine = dbmod.make_engine(root / "vsearch.db")
    cfg = dbmod.alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    return engine
