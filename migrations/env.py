"""Alembic environment for vsearch stores.

Two ways in:
- vsearch itself passes an open connection (``config.attributes["connection"]``) when a store
  opens, so migrations run inside the store's own engine settings;
- the command line: ``alembic -x store=PATH upgrade head`` (from the repository root), where
  PATH is a store folder; without ``-x store`` it uses ``$VSEARCH_HOME`` or the default store.
"""

from __future__ import annotations

from pathlib import Path

from alembic import context
from sqlalchemy import create_engine

from vsearch.store.schema import Base

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    store = context.get_x_argument(as_dictionary=True).get("store")
    if store:
        return f"sqlite:///{Path(store).expanduser().resolve() / 'vsearch.db'}"
    url = config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from vsearch.config import default_store_dir

    return f"sqlite:///{default_store_dir() / 'vsearch.db'}"


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = _url()
    db_path = Path(url.removeprefix("sqlite:///"))
    if not db_path.exists():
        raise SystemExit(f"no store database at {db_path}")
    engine = create_engine(url)
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
