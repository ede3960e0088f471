"""A read-only store (the server on a store it cannot write) sees every committed transaction,
including those still in the WAL."""

from __future__ import annotations

import sqlite3

from vsearch.ingest import index
from vsearch.store import Store
from vsearch.store import db as dbmod

from .videos import copy_in_batches


def test_a_read_only_reader_sees_what_sits_in_the_wal(tmp_path, synth_dir, tiny_encoder):
    first, later = copy_in_batches(synth_dir / "videos", tmp_path / "videos", 4, 2)
    with Store.open(tmp_path / "s") as st:
        index(st, [first], tiny_encoder, workers=0)
    db_path = tmp_path / "s" / "vsearch.db"
    holder = sqlite3.connect(db_path)  # another reader keeps the WAL from being folded in on close
    try:
        holder.execute("SELECT count(*) FROM videos").fetchone()
        with Store.open(tmp_path / "s") as st:
            index(st, [later], tiny_encoder, workers=0)
        assert (tmp_path / "s" / "vsearch.db-wal").stat().st_size > 0, "the test needs commits still in the WAL"
        reader = Store(tmp_path / "s", dbmod.make_engine(db_path, readonly=True), readonly=True)
        try:
            assert reader.status()["videos"] == 6
        finally:
            reader.close()
    finally:
        holder.close()
