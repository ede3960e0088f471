"""A damaged store database: one line from every command, a salvage that keeps what SQLite can
still read (and the damaged file), and never a new schema where a database file was.

Damage is made the way it happens: random bytes written into the middle of the file, the file
cut in half, a text file in its place, a 0-byte file. The CLI runs in subprocesses.
"""

from __future__ import annotations

import json
import os
import shutil
import sys

import pytest

from tests.live_server import LiveServer, get_json
from tests.procs import run
from vsearch.store import Store
from vsearch.store.damage import file_problem, integrity_problem

VSEARCH = [sys.executable, "-m", "vsearch"]


def cli(*args, timeout=120):
    return run([*VSEARCH, *map(str, args)], timeout=timeout, env={**os.environ, "COLUMNS": "300"})


def one_line_error(res) -> str:
    """The stderr of a refusal: exactly one non-blank line, no traceback, no leading blank line."""
    assert "Traceback" not in res.stderr, res.stderr
    assert not res.stderr.startswith("\n"), repr(res.stderr[:80])
    lines = [x for x in res.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, res.stderr
    return lines[0]


@pytest.fixture
def store(synth_store, tmp_path):
    """The session's store of 12 clips (vectors, thumbnails, a FAISS file), copied fresh."""
    root = tmp_path / "s"
    shutil.copytree(synth_store, root)
    for p in root.glob("vsearch.db-*"):
        p.unlink()  # a clean copy: everything is in the main file (the WAL was checkpointed on close)
    return root


def scribble(db, at: float, size: int = 8192, seed: int = 0) -> None:
    import numpy as np

    data = bytearray(db.read_bytes())
    start = int(len(data) * at) // 4096 * 4096 + 100
    data[start : start + size] = np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes()
    db.write_bytes(bytes(data))


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("damage", ["random-bytes", "cut-in-half"])
def test_damaged_database_one_line_everywhere_then_salvaged(store, damage):
    db = store / "vsearch.db"
    with Store.open(store) as st:
        videos_before = st.count_videos()
    if damage == "random-bytes":
        scribble(db, 0.5)
    else:
        with open(db, "r+b") as f:
            f.truncate(db.stat().st_size // 2)
    problem = integrity_problem(db)
    assert problem, "the damage must be visible to SQLite's integrity_check"
    original = db.read_bytes()

    res = cli("check", "--store", store)
    assert res.returncode == 1 and one_line_error(res).startswith("damaged:"), res.stderr
    refused = 0
    for args in (["status"], ["search", "a red circle"]):
        res = cli(*args, "--store", store)
        # A command that reads only sound pages may answer; one that meets the damage says so
        # in one line. Never a traceback.
        assert res.returncode in (0, 1) and "Traceback" not in res.stderr, (args, res.stderr)
        if res.returncode == 1:
            assert "damaged" in one_line_error(res)
            refused += 1
    assert db.read_bytes() == original  # nothing was written by any of them

    res = cli("check", "--repair", "--store", store, "--json")
    if res.returncode == 1:
        # Cut where SQLite keeps the table definitions: no row can be read. Then the repair
        # must say so and what to do, in one line, and leave the file as it was.
        line = one_line_error(res)
        assert "cannot be read" in line and "vsearch index" in line and damage == "cut-in-half", line
        assert db.read_bytes() == original
        return
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["repaired"] and out["damaged"] and out["ok"] in (True, False)
    kept = out["salvage"]["kept_at"]
    assert os.path.exists(kept) and open(kept, "rb").read() == original  # the damaged file is kept as it was
    assert integrity_problem(db) is None
    res = cli("check", "--store", store)
    assert res.returncode == 0, res.stdout + res.stderr
    with Store.open(store) as st:
        recovered = st.count_videos()
        assert 0 < recovered <= videos_before and st.check().ok
    res = cli("search", "a red circle", "--store", store, "--json")
    assert res.returncode == 0 and json.loads(res.stdout), res.stderr


@pytest.mark.slow
def test_a_text_file_is_not_taken_for_a_database(store):
    db = store / "vsearch.db"
    db.write_text("this is not a database\n" * 100)
    assert "not a SQLite database" in file_problem(db)
    res = cli("check", "--store", store)
    assert res.returncode == 1 and "not a SQLite database" in one_line_error(res)
    res = cli("check", "--repair", "--store", store)
    assert res.returncode == 1 and "nothing can be recovered" in one_line_error(res)
    assert db.read_text().startswith("this is not a database")


@pytest.mark.slow
def test_a_zero_byte_database_is_refused_and_its_vectors_kept(store):
    db = store / "vsearch.db"
    faiss_files = sorted((store / "index").glob("*.faiss"))
    assert faiss_files
    db.write_bytes(b"")
    for args in (["search", "a red circle"], ["index", store.parent / "nothing"]):
        res = cli(*args, "--store", store)
        assert res.returncode == 1 and "empty (0 bytes)" in one_line_error(res), (args, res.stderr)
    assert db.stat().st_size == 0  # no schema was created over it
    assert sorted((store / "index").glob("*.faiss")) == faiss_files  # nor were its vectors orphaned or removed


@pytest.mark.slow
def test_the_server_reports_damage_on_health_and_as_json(store):
    import time

    scribble(store / "vsearch.db", 0.6, seed=1)
    try:
        srv = LiveServer(store).__enter__()
    except RuntimeError as exc:  # the damage lies on a page opening reads: a one-line refusal
        assert "damaged" in str(exc) and "Traceback" not in str(exc), str(exc)
        return
    try:
        code, body = get_json(f"{srv.url}/health")
        # quick_check runs in the background at start: poll for it, with a deadline.
        deadline = time.monotonic() + 60
        while code == 200 and time.monotonic() < deadline:
            time.sleep(0.2)
            code, body = get_json(f"{srv.url}/health")
        assert code == 503 and "damaged" in body["error"], body
        code, body = get_json(f"{srv.url}/api/status")
        assert code in (200, 503) and (code == 200 or "damaged" in body["error"])
    finally:
        srv.stop()
