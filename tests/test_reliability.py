"""Reliability: hostile files, interruptions, kills, concurrent use, full and read-only disks, old schemas."""

import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from vsearch.errors import StoreError
from vsearch.ingest import index
from vsearch.search import search
from vsearch.store import Store
from vsearch.synth.corrupt import write_corpus
from vsearch_cli.main import app

from .old_stores import engine_at
from .procs import VSEARCH, kill_group, spawn
from .test_ingest import consistent
from .videos import write_video

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _no_stray_indexers():
    """Every `vsearch` child started by a test dies with it, whatever the test's outcome."""
    yield
    while _CHILDREN:
        kill_group(_CHILDREN.pop())


_CHILDREN: list[subprocess.Popen] = []


def vsearch(*args, **kw):
    proc = spawn([VSEARCH, *args], **kw)
    _CHILDREN.append(proc)
    return proc


def test_hostile_corpus(tmp_path, tiny_encoder):
    folder = tmp_path / "corpus"
    cases = write_corpus(folder)
    store = Store.open(tmp_path / "s")
    report = index(store, [folder], tiny_encoder, workers=2)
    indexed = set(report.indexed)
    failed = dict(report.failed)
    for path, case in cases.items():
        if case.expect == "indexed":
            assert path in indexed, (case.name, failed.get(path))
        elif case.expect == "failed":
            assert path in failed, case.name
            assert failed[path] and "\n" not in failed[path]
        else:
            assert (path in indexed) != (path in failed), case.name
    # A partly damaged file that indexes says what was wrong with it.
    warned = dict(report.warnings)
    for path, case in cases.items():
        need = {"truncated_faststart.mp4": "cut short", "zero_fps.mp4": "timing"}.get(os.path.basename(path))
        if need and path in indexed:
            assert need in (warned.get(path) or ""), (case.name, warned.get(path))
    assert {p for p, _ in report.warnings if p.endswith("again")}  # the symlink loop: a skipped folder
    consistent(store)
    # The summary and `status --failures` list every failure with its reason; exit code 3.
    res = CliRunner().invoke(app, ["index", str(folder), "--store", str(tmp_path / "s2"), "--model", "tiny-clip", "--json"])
    assert res.exit_code == 3
    assert {f["path"] for f in json.loads(res.stdout)["failed"]} == {os.fsdecode(os.fsencode(p)) for p in failed}
    st = CliRunner().invoke(app, ["status", "--store", str(tmp_path / "s2"), "--failures", "--json"])
    assert len(json.loads(st.stdout)["failure_list"]) == len(failed)


def test_files_deleted_or_replaced_between_listing_and_decoding(tmp_path, synth_dir, tiny_encoder, monkeypatch):
    import vsearch.ingest as ingest

    d = tmp_path / "v"
    shutil.copytree(synth_dir / "videos", d)
    files = sorted(d.iterdir())
    real = ingest.list_videos

    def listing_then_change(roots):
        out = real(roots)
        files[0].unlink()  # gone before its decoder opens it
        data = files[1].read_bytes()
        files[1].write_bytes(data + b"\0" * 10)  # replaced by other bytes
        return out

    monkeypatch.setattr(ingest, "list_videos", listing_then_change)
    store = Store.open(tmp_path / "s")
    report = index(store, [d], tiny_encoder, workers=1)
    reasons = dict(report.failed)
    assert "disappeared" in reasons[str(files[0])]
    assert "changed while it was being indexed" in reasons[str(files[1])]
    assert report.counts()["indexed"] == 10
    monkeypatch.setattr(ingest, "list_videos", real)
    again = index(store, [d], tiny_encoder, workers=0)
    assert again.counts()["indexed"] == 1 and not again.failed  # the replaced file, now whole
    consistent(store)


def test_two_hour_video_streams_segments(tmp_path, tiny_encoder):
    frames = np.zeros((720, 32, 48, 3), np.uint8)
    frames[:, :, :, 0] = np.arange(720)[:, None, None] % 256
    write_video(tmp_path / "v" / "two_hours.mp4", frames, fps=Fraction(1, 10))
    store = Store.open(tmp_path / "s")
    report = index(store, [tmp_path / "v"], tiny_encoder, workers=1, segment_seconds=60.0)
    assert report.counts()["segments"] == 120
    hits = search(store, "anything", k=200, segments=True).hits
    assert max(h.end for h in hits) == pytest.approx(7200, abs=10)


def test_old_schema_is_migrated_on_open_with_data_intact(tmp_path):
    from vsearch.store import db as dbmod

    root = tmp_path / "old"
    engine = engine_at(root, "0001")
    vec = np.ones(4, np.float16).tobytes()
    with engine.begin() as c:  # a store as version 0001 wrote it
        for sql in [
            "INSERT INTO meta VALUES ('generation','1'),('segment_seconds','10.0'),('min_tail_seconds','1.0'),('index_kind','flat'),('encoder_id','1')",
            "INSERT INTO encoders VALUES (1,'old','tiny-clip','f00d','{\"dim\": 4, \"family\": \"mean-pool\"}','2026-01-01 00:00:00')",
            "INSERT INTO videos VALUES (1, X'2F762F612E6D7034', 10, 1, 'h', 5.0, 10.0, 50, 64, 48, 'h264', 'decord', '2026-01-01 00:00:00', NULL)",
            "INSERT INTO segments VALUES (1, 1, 0, 0.0, 5.0, 0, 50)",
        ]:
            c.exec_driver_sql(sql)
        c.exec_driver_sql("INSERT INTO embeddings VALUES (1, 1, 1, '[0]', ?)", (vec,))
    engine.dispose()
    with Store.open(root) as st:
        assert dbmod.current_revision(st.engine) == dbmod.SCHEMA_HEAD
        assert st.count_videos() == 1 and st.known_videos(["/v"])["/v/a.mp4"].size == 10
        assert st.status()["index"]["kind"] == "flat"
        assert st.vector_index().ntotal == 1
        assert st.get_setting("index_kind") is None  # moved into vector_indexes


def build_folder(tmp_path, synth_dir, copies=3):
    d = tmp_path / "many"
    d.mkdir()
    for k in range(copies):
        for f in (synth_dir / "videos").iterdir():
            shutil.copy(f, d / f"{k}_{f.name}")
    return d


def stored_videos(store_dir) -> int:
    """Videos committed so far, read through a read-only SQLite connection: a poll that
    opens the store (engine, schema check) took long enough on a loaded host for a small
    run to finish between two polls."""
    db = Path(store_dir) / "vsearch.db"
    if not db.exists():
        return 0
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1.0)
        try:
            return int(con.execute("SELECT count(*) FROM videos").fetchone()[0])
        finally:
            con.close()
    except sqlite3.Error:  # the store may be mid-creation; poll again
        return 0


def wait_for_videos(store_dir, n, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if stored_videos(store_dir) >= n:
            return True
        time.sleep(0.02)
    return False


def test_ctrl_c_stops_cleanly_and_the_next_run_finishes(tmp_path, synth_dir):
    # Enough files that the run is still going when the first commit shows (the single writer
    # commits ~8 videos at a time; 48 files could finish before the signal lands).
    total = 12 * 12
    d = build_folder(tmp_path, synth_dir, copies=12)
    store = tmp_path / "s"
    proc = vsearch("index", d, "--store", store, "--model", "tiny-clip", "--workers", "1", "--batch-size", "1")
    assert wait_for_videos(store, 1)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (out, err)
    assert "run the same command again" in out
    with Store.open(store) as st:
        done = st.count_videos()
        assert 0 < done < total
        assert st.check().ok
    proc = vsearch("index", d, "--store", store, "--json")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    counts = json.loads(out)["counts"]
    assert counts["unchanged"] == done and counts["indexed"] == total - done


def test_sigkill_at_random_moments_never_leaves_the_store_inconsistent(tmp_path, synth_dir):
    """Three trials here; bench/reliability.py runs many more and reports them.

    Each kill lands after a random number of newly committed videos, at most half of those left
    (a kill before any commit tests nothing, and one after the last finds nothing to break), plus
    a random offset that lets it land inside a transaction; at least one trial must have stopped
    mid-run. The trigger is a count, not a delay: the writer commits 8 videos at a time, and on a
    loaded host a fixed delay after the first commit outlasted the whole run.
    """
    d = build_folder(tmp_path, synth_dir, copies=6)
    total = 72
    store = tmp_path / "s"
    rng = np.random.default_rng(0)
    stored_after = []
    for _trial in range(3):
        before = 0
        if (store / "vsearch.db").exists():
            with Store.open(store, create=False) as st:
                before = st.count_videos()
        if before >= total:
            break
        proc = vsearch("index", d, "--store", store, "--model", "tiny-clip", "--workers", "1", "--batch-size", "1")
        target = before + int(rng.integers(1, max(2, (total - before) // 2)))
        assert wait_for_videos(store, target), (
            proc.communicate(timeout=5)[1][-2000:] if proc.poll() is not None else "no commit"
        )
        time.sleep(float(rng.uniform(0.0, 0.2)))
        proc.kill()
        proc.communicate()
        res = CliRunner().invoke(app, ["check", "--store", str(store), "--json"])
        assert res.exit_code == 0 and json.loads(res.stdout)["ok"], res.output
        with Store.open(store, create=False) as st:
            stored_after.append(st.count_videos())
    assert any(0 < n < total for n in stored_after), stored_after  # a kill really interrupted a run
    proc = vsearch("index", d, "--store", store, "--model", "tiny-clip", "--json")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    with Store.open(store) as st:
        assert st.count_videos() == total and st.check().ok


def test_searches_during_indexing_never_fail(tmp_path, synth_dir, tiny_encoder):
    d = build_folder(tmp_path, synth_dir, copies=3)
    store_dir = tmp_path / "s"
    seed = tmp_path / "seed"
    seed.mkdir()
    shutil.copy(next((synth_dir / "videos").iterdir()), seed / "first.mp4")
    with Store.open(store_dir) as st:
        index(st, [seed], tiny_encoder, workers=0)
    proc = vsearch("index", d, "--store", store_dir, "--workers", "1", "--batch-size", "2")
    errors: list[str] = []
    counts: dict[int, list[int]] = {0: [], 1: []}
    done = threading.Event()

    def reader(k: int) -> None:
        st = Store.open(store_dir)
        while not done.is_set():
            try:
                counts[k].append(len(search(st, "a red circle", k=100, encoder=tiny_encoder).hits))
            except Exception as exc:  # noqa: BLE001 - recorded and asserted below
                errors.append(repr(exc))
        st.close()

    # Daemon threads with a deadline: a reader stuck in native code must not keep the suite alive.
    threads = [threading.Thread(target=reader, args=(k,), daemon=True) for k in counts]
    for t in threads:
        t.start()
    _out, err = proc.communicate(timeout=300)
    # One more search per reader after the indexer has exited, so the last count is the final state.
    seen_before = {k: len(v) for k, v in counts.items()}
    deadline = time.monotonic() + 60
    while any(len(counts[k]) <= seen_before[k] + 1 for k in counts) and time.monotonic() < deadline and not errors:
        time.sleep(0.05)
    done.set()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a reader thread did not stop within 60 s"
    assert proc.returncode == 0, err
    assert not errors, errors[:3]
    for seen in counts.values():  # each reader only ever sees the old state or a newer one
        assert seen and seen == sorted(seen) and seen[0] >= 1 and seen[-1] == 37


def test_a_second_writer_is_refused_with_the_holders_name(tmp_path, synth_dir, tiny_encoder):
    with Store.open(tmp_path / "s") as st, st.lock("index"):
        proc = vsearch("index", synth_dir / "videos", "--store", tmp_path / "s", "--model", "tiny-clip")
        _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert f"being written by pid {os.getpid()}" in err and "--wait" in err


def _can_mount():
    return sys.platform.startswith("linux") and os.geteuid() == 0 and shutil.which("mount")


@contextlib.contextmanager
def _tmpfs(where: Path, size: str):
    """A tmpfs of ``size`` mounted at ``where`` for the block, unmounted after it whatever happens;
    the test is skipped where mounting is not permitted."""
    where.mkdir(parents=True, exist_ok=True)
    mount = ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)]
    if subprocess.run(mount, capture_output=True).returncode != 0:
        pytest.skip("mount not permitted here")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)])


@pytest.mark.skipif(not _can_mount(), reason="needs root to mount a small tmpfs")
def test_disk_full_is_a_clear_error_and_the_store_survives(tmp_path, synth_dir, tiny_encoder):
    with _tmpfs(tmp_path / "small", "1m") as mnt:
        with Store.open(mnt / "store") as st:
            index(st, [next((synth_dir / "videos").iterdir())], tiny_encoder, workers=0)
        filler = mnt / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT)  # fill the disk: unbuffered, so close cannot fail
        try:
            while True:
                os.write(fd, b"\0" * 4096)
        except OSError:
            pass
        finally:
            os.close(fd)
        with pytest.raises(StoreError, match="disk is full"):
            Store.open(mnt / "store")
        os.truncate(filler, os.path.getsize(filler) - (48 << 10))  # room to open, not to finish
        with Store.open(mnt / "store") as st, pytest.raises(StoreError, match="disk holding the store .* is full"):
            index(st, [synth_dir / "videos"], tiny_encoder, workers=0)
        filler.unlink()
        with Store.open(mnt / "store") as st:
            assert st.check().ok
            report = index(st, [synth_dir / "videos"], tiny_encoder, workers=0)
            assert report.ok and st.count_videos() == 12


@pytest.mark.skipif(not _can_mount(), reason="needs root to remount read-only")
def test_read_only_store_can_be_searched_but_not_written(tmp_path, synth_dir, tiny_encoder):
    with _tmpfs(tmp_path / "ro", "20m") as mnt:
        with Store.open(mnt / "store") as st:
            index(st, [synth_dir / "videos"], tiny_encoder, workers=0)
        assert subprocess.run(["mount", "-o", "remount,ro", str(mnt)]).returncode == 0
        with Store.open(mnt / "store") as st:
            assert st.readonly
            assert len(search(st, "a red circle", k=3, encoder=tiny_encoder).hits) == 3
            with pytest.raises(StoreError, match="read-only"):
                index(st, [synth_dir / "videos"], tiny_encoder, workers=0)
        res = CliRunner().invoke(app, ["status", "--store", str(mnt / "store"), "--json"])
        assert res.exit_code == 0 and json.loads(res.stdout)["videos"] == 12


def test_a_failed_run_is_recorded_as_failed(tmp_path, synth_dir, tiny_encoder, monkeypatch):
    from vsearch.errors import StoreError
    from vsearch.store.schema import Run

    st = Store.open(tmp_path / "s")
    calls = {"n": 0}
    real = st.commit

    def commit_then_fail(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 1:
            raise StoreError("simulated write failure")
        return real(*args, **kwargs)

    monkeypatch.setattr(st, "commit", commit_then_fail)
    with pytest.raises(StoreError, match="simulated"):
        index(st, [synth_dir / "videos"], tiny_encoder, workers=0)
    with st.Session() as s:
        assert s.query(Run).order_by(Run.id.desc()).first().status == "failed"
    assert st.check().ok and 0 < st.count_videos() < 12  # the first committed batch is kept
