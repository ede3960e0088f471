"""The store: migrations, transactions + generations, FAISS catch-up and rebuild, check/repair."""

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import create_engine

from vsearch.errors import EmptyStore, EncoderMismatch, StoreBusy, StoreNotFound
from vsearch.store import SegmentWrite, Store, VideoWrite
from vsearch.store import db as dbmod
from vsearch.store.vectors import list_index_files

REPO = Path(__file__).resolve().parents[1]
DIM = 8


class FakeSpec:
    def __init__(self, dim=DIM):
        self.dim = dim

    def as_dict(self):
        return {"family": "test", "dim": self.dim, "frames": 4, "pixels": {"image_size": 32}}


class Enc:
    """Just the identity a store records (a collaborator, not the thing under test)."""

    def __init__(self, fingerprint="f" * 32, name="test-encoder"):
        self.fingerprint, self.name, self.source, self.spec = fingerprint, name, "test", FakeSpec()


def video(path, n_segments=2, seed=0):
    rng = np.random.default_rng(seed)
    segs = []
    for i in range(n_segments):
        v = rng.normal(size=DIM).astype(np.float32)
        segs.append(SegmentWrite(i, 10.0 * i, 10.0 * (i + 1), 100 * i, 100 * (i + 1), [100 * i], v / np.linalg.norm(v)))
    info = {
        "duration": 10.0 * n_segments,
        "fps": 10,
        "num_frames": 100 * n_segments,
        "width": 64,
        "height": 48,
        "codec": "h264",
        "backend": "decord",
    }
    return VideoWrite(path, 1000 + seed, 1, f"hash-{seed}-{len(path)}", info, segs)


def db_vector_ids(st):
    with st.Session() as s:
        return {r[0] for r in s.execute(dbmod.text("SELECT segment_id FROM embeddings"))}


@pytest.fixture
def store(tmp_path):
    st = Store.open(tmp_path / "store")
    yield st
    st.close()


def test_fresh_store_is_at_the_alembic_head(store):
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(dbmod.alembic_config()).get_current_head()
    assert head == dbmod.SCHEMA_HEAD
    assert dbmod.current_revision(store.engine) == head
    with store.engine.connect() as c:
        assert c.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert c.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_schema_from_migrations_matches_the_orm_models(store):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from vsearch.store.schema import Base

    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_alembic_command_line_upgrades_a_store(store):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-m", "alembic", "-x", f"store={store.root}", "upgrade", "head"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    cur = subprocess.run(
        [sys.executable, "-m", "alembic", "-x", f"store={store.root}", "current"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert dbmod.SCHEMA_HEAD in cur.stdout


def test_open_without_create_and_empty_store(tmp_path):
    with pytest.raises(StoreNotFound):
        Store.open(tmp_path / "nothing", create=False)
    with Store.open(tmp_path / "s") as st, pytest.raises(EmptyStore):
        st.vector_index()


def test_commit_replace_remove_keep_faiss_equal_to_sqlite(store):
    rec = store.bind_encoder(Enc())
    store.commit(rec.id, [video("/v/a.mp4", 2), video("/v/b.mp4", 3, seed=1)])
    assert set(store.vector_index().ids()) == db_vector_ids(store) and len(db_vector_ids(store)) == 5
    old_ids = db_vector_ids(store)
    store.commit(rec.id, [video("/v/a.mp4", 1, seed=2)])  # a changed file replaces its rows
    assert store.count_videos() == 2
    ids = db_vector_ids(store)
    assert len(ids) == 4 and not ({min(old_ids), min(old_ids) + 1} & ids)  # ids are never reused
    assert set(store.vector_index().ids()) == ids
    assert store.remove_paths(["/v"]) == ["/v/a.mp4", "/v/b.mp4"]
    assert store.count_videos() == 0 and store.vector_index().ntotal == 0


def test_one_commit_of_many_videos_keeps_every_segment_with_its_own_vector_range_and_thumbnail(store):
    # The write path inserts all rows of a commit at once and pairs ids back by position: a
    # shifted pairing would give segments each other's vectors, which nothing else would notice.
    rec = store.bind_encoder(Enc())
    writes = [video(f"/v/{k}.mp4", n_segments=1 + k % 4, seed=k) for k in range(9)]
    for w in writes:
        for g in w.segments:
            g.thumbnail = (f"{w.path}#{g.idx}".encode(), 16, 9)
    store.commit(rec.id, writes[:1])
    store.commit(rec.id, writes[1:])  # eight videos, 21 segments in one transaction
    index = store.vector_index()
    ids = index.ids()
    rows = store.segment_rows(list(ids))
    assert len(rows) == sum(len(w.segments) for w in writes) == index.ntotal
    by_path = {w.path: w for w in writes}
    for sid in ids:
        row = rows[int(sid)]
        want = by_path[row.path].segments[row.idx]
        assert (row.start_s, row.end_s) == (want.start_s, want.end_s)
        assert store.thumbnail(int(sid)) == f"{row.path}#{row.idx}".encode()
        hit = index.search(want.vector[None], 1)
        assert int(hit.ids[0][0]) == int(sid) and hit.scores[0][0] > 0.999


def test_second_process_view_catches_up_from_an_old_file(store):
    rec = store.bind_encoder(Enc())
    store.commit(rec.id, [video("/v/a.mp4")])
    store.save_index()
    reader = Store.open(store.root)
    assert reader.vector_index().ntotal == 2
    store.commit(rec.id, [video("/v/b.mp4", seed=1)])
    store.remove_paths(["/v/a.mp4"])
    # The reader never saw those commits; its next search replays adds and tombstones.
    assert set(reader.vector_index().ids()) == db_vector_ids(store)
    # A fresh reader loads the generation-1 file and replays the rest.
    fresh = Store.open(store.root)
    assert list_index_files(store.index_dir, rec.id)[0][0] == 1
    assert set(fresh.vector_index().ids()) == db_vector_ids(store)
    # After a save prunes tombstones, a reader that is too far behind reloads instead of replaying.
    store.commit(rec.id, [video("/v/c.mp4", seed=2)])
    store.save_index()
    store.remove_paths(["/v/b.mp4"])
    assert set(reader.vector_index().ids()) == db_vector_ids(store)
    for st in (reader, fresh):
        st.close()


def test_missing_or_damaged_index_file_is_rebuilt_from_the_database(store):
    rec = store.bind_encoder(Enc())
    store.commit(rec.id, [video("/v/a.mp4"), video("/v/b.mp4", seed=1)])
    store.save_index()
    ((_gen, path),) = list_index_files(store.index_dir, rec.id)
    path.write_bytes(b"garbage")
    st2 = Store.open(store.root)
    assert set(st2.vector_index().ids()) == db_vector_ids(store)
    path.unlink()
    st3 = Store.open(store.root)
    assert st3.vector_index().ntotal == 4
    st2.close()
    st3.close()


def test_check_finds_and_repairs_disagreement(store):
    rec = store.bind_encoder(Enc())
    store.commit(rec.id, [video("/v/a.mp4"), video("/v/b.mp4", seed=1)])
    store.save_index()
    assert store.check().ok
    # Simulate a FAISS file that lost a vector (e.g. written by a buggy version): drop one id
    # from the saved file at the current generation.
    from vsearch.store.vectors import VectorIndex

    ((gen, path),) = list_index_files(store.index_dir, rec.id)
    idx = VectorIndex.read(path, DIM)
    idx.remove(np.array([min(db_vector_ids(store))]))
    idx.write(path)
    # ... and a half-written video: a segment whose embedding row is missing.
    with store.engine.begin() as c:
        c.exec_driver_sql(f"DELETE FROM embeddings WHERE segment_id = {max(db_vector_ids(store))}")
    report = Store.open(store.root).check()
    assert not report.ok
    assert report.only_in_db and report.segments_without_vector
    fixed = Store.open(store.root).check(repair=True)
    assert fixed.repaired
    after = Store.open(store.root).check()
    assert after.ok and after.db_vectors == 2  # the half-written video is gone, to be re-indexed


def test_store_refuses_another_encoder(store):
    store.bind_encoder(Enc("a" * 32, "model-a"))
    with pytest.raises(EncoderMismatch, match="model-a.*model-b.*reembed"):
        store.bind_encoder(Enc("b" * 32, "model-b"))


def test_write_lock_names_its_holder(store):
    other = Store.open(store.root)  # a second handle, as another process would have
    lock = store.lock("index")
    try:
        with pytest.raises(StoreBusy, match=f"pid {os.getpid()}.*index"):
            other.lock("remove")
        assert store.lock("nested") is lock  # re-entrant for the holder
        lock.release()
        with pytest.raises(StoreBusy):
            other.lock("remove")  # still held: one release per lock()
    finally:
        lock.release()
    other.lock("remove").release()
    other.close()


def test_paths_are_stored_as_exact_bytes(store):
    rec = store.bind_encoder(Enc())
    odd = os.fsdecode(b"/v/bad\xff name.mp4")
    store.commit(rec.id, [video(odd), video("/v/日本.mp4", seed=1)])
    store.record_failure(odd, f"cannot open: {odd}", 1, 1, None)
    assert store.failures()[0]["path"] == odd and "\\xff" in store.failures()[0]["reason"]
    assert set(store.known_videos(["/v"])) == {odd, "/v/日本.mp4"}
    engine = create_engine(f"sqlite:///{store.root / 'vsearch.db'}")
    with engine.connect() as c:
        raw = {r[0] for r in c.exec_driver_sql("SELECT path FROM videos")}
    assert b"/v/bad\xff name.mp4" in raw


def test_prefix_queries_do_not_match_sibling_folders(store):
    rec = store.bind_encoder(Enc())
    store.commit(rec.id, [video("/data/a/x.mp4"), video("/data/ab/y.mp4", seed=1), video("/data/a", seed=2)])
    assert set(store.known_videos(["/data/a"])) == {"/data/a/x.mp4", "/data/a"}


def test_two_processes_opening_a_new_store_at_once_both_succeed(tmp_path):
    """An indexer creating a store while readers poll it: the migration runs once, under the
    write lock, and no opener fails with "database is locked".

    The openers meet at a file barrier after their imports (a start time fixed in advance let a
    slow import miss it, and then nothing overlapped), waiting with short sleeps (five openers
    spinning on 2 cores starved the sixth's start for minutes), and each records when it was inside
    `Store.open`; the test asserts that at least two of them really were at the same time.
    """
    import sys

    from .procs import communicate, kill_group, spawn

    code = (
        "import os, sys, time\nfrom vsearch.store import Store\n"
        "root, ready, go = sys.argv[1:4]\n"
        "open(os.path.join(ready, str(os.getpid())), 'w').close()\n"
        "deadline = time.monotonic() + 120\n"
        "while not os.path.exists(go):\n"
        "    if time.monotonic() > deadline: sys.exit('no go signal within 120 s')\n"
        "    time.sleep(0.001)\n"
        "t0 = time.monotonic(); s = Store.open(root); g = s.generation(); t1 = time.monotonic(); s.close()\n"
        "print(g, t0, t1)\n"
    )
    ready, go = tmp_path / "ready", tmp_path / "go"
    ready.mkdir()
    procs = [spawn([sys.executable, "-c", code, tmp_path / "s", ready, go]) for _ in range(6)]
    try:
        deadline = time.monotonic() + 120
        while len(list(ready.iterdir())) < len(procs) and time.monotonic() < deadline:
            assert all(p.poll() is None for p in procs), [p.communicate()[1][-500:] for p in procs if p.poll() is not None]
            time.sleep(0.02)
        go.touch()
        results = [communicate(p, timeout=120) for p in procs]
    finally:
        for p in procs:  # whatever happened above, no opener outlives the test
            kill_group(p)
    assert all(p.returncode == 0 for p in procs), [r[1][-500:] for r in results]
    rows = [r[0].split() for r in results]
    assert [row[0] for row in rows] == ["0"] * 6
    spans = sorted((float(a), float(b)) for _g, a, b in rows)
    assert any(spans[i + 1][0] < spans[i][1] for i in range(len(spans) - 1)), f"the openers never overlapped: {spans}"
