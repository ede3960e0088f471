"""`vsearch index` on a folder where nothing changed: no torch, no model, no FAISS (issue 24).

Bounded by the work done, not by the clock: a subprocess reports which modules it imported, and
the library reports whether it loaded a model.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.videos import write_indexed
from vsearch.index_command import index_folders
from vsearch.store import Store

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_MODEL = ROOT / "sample_data" / "model"


class CountingLoader:
    """A real model loader that counts its calls (the test's probe for 'a model was loaded')."""

    def __init__(self):
        self.calls: list[str] = []

    def __call__(self, ref, **kwargs):
        from vsearch.models import load_encoder

        self.calls.append(str(ref))
        return load_encoder(ref, **kwargs)


def _folder(tmp_path: Path) -> Path:
    vids = tmp_path / "vids"
    vids.mkdir()
    write_indexed(vids / "a.mp4", n=30)
    write_indexed(vids / "b.mp4", n=25)
    return vids


def test_unchanged_folder_loads_no_model(tmp_path):
    vids, store = _folder(tmp_path), tmp_path / "store"
    loader = CountingLoader()
    first = index_folders(store, [vids], model=str(SAMPLE_MODEL), load=loader, workers=0)
    assert first.counts()["indexed"] == 2 and loader.calls == [str(SAMPLE_MODEL)]
    again = index_folders(store, [vids], load=loader, workers=0)
    assert loader.calls == [str(SAMPLE_MODEL)], "nothing changed, yet a model was loaded"
    assert not again.model_loaded
    assert again.counts() == {"indexed": 0, "unchanged": 2, "moved": 0, "removed": 0, "failed": 0, "segments": 0, "not_video": 0}
    with Store.open(store, create=False) as st:
        assert st.status()["last_run"]["counts"]["unchanged"] == 2  # the quick run is recorded like any other


def test_a_changed_file_still_loads_the_model(tmp_path):
    vids, store = _folder(tmp_path), tmp_path / "store"
    loader = CountingLoader()
    index_folders(store, [vids], model=str(SAMPLE_MODEL), load=loader, workers=0)
    write_indexed(vids / "c.mp4", n=20)
    report = index_folders(store, [vids], load=loader, workers=0)
    assert len(loader.calls) == 2 and report.model_loaded
    assert report.counts()["indexed"] == 1 and report.counts()["unchanged"] == 2
    os.remove(vids / "a.mp4")
    gone = index_folders(store, [vids], load=loader, workers=0)
    assert gone.removed == [str(vids / "a.mp4")]


def test_another_model_is_not_a_quick_run(tmp_path):
    """--model naming something else than the store's model must reach the encoder check."""
    from vsearch.errors import EncoderMismatch

    vids, store = _folder(tmp_path), tmp_path / "store"
    index_folders(store, [vids], model=str(SAMPLE_MODEL), workers=0)
    with pytest.raises(EncoderMismatch):
        index_folders(store, [vids], model="tiny-clip", workers=0)


@pytest.mark.slow
def test_cli_noop_imports_neither_torch_nor_faiss(tmp_path):
    vids, store = _folder(tmp_path), tmp_path / "store"
    cmd = [sys.executable, "-m", "vsearch_cli.main", "index", str(vids), "--store", str(store), "--workers", "0", "--json"]
    index_folders(store, [vids], model=str(SAMPLE_MODEL), workers=0)  # the store, built in-process
    probe = (
        "import sys, json, runpy\n"
        f"sys.argv = {['vsearch', *cmd[3:]]!r}\n"
        "try:\n"
        "    runpy.run_module('vsearch_cli.main', run_name='__main__')\n"
        "except SystemExit as exc:\n"
        "    code = exc.code\n"
        "else:\n"
        "    code = 0\n"
        "heavy = sorted(m for m in ('torch', 'faiss', 'transformers', 'decord', 'av') if m in sys.modules)\n"
        "print(json.dumps({'code': code, 'heavy': heavy}), file=sys.stderr)\n"
    )
    again = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=170)
    verdict = json.loads(again.stderr.strip().splitlines()[-1])
    assert verdict == {"code": 0, "heavy": []}, again.stderr
    out = json.loads(again.stdout)
    assert out["counts"]["unchanged"] == 2 and out["model_loaded"] is False
    assert "index_change" in out  # the report's own dict: nothing dropped on the way to --json


def _decode_workers() -> list[int]:
    """Pids of this process's children running ``vsearch.video.workers``."""
    me, found = os.getpid(), []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == me and b"vsearch.video.workers" in cmd:
            found.append(int(pid))
    return found


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc to see the decode workers")
def _loader_that_waits_for_decoders(seen: list[list[int]]):
    """A model loader that first waits (up to 30 s) for decode workers to exist and records
    them: non-empty means decoding started before the model was asked for."""
    import time

    def loader(ref, **kwargs):
        from vsearch.models import load_encoder

        deadline = time.monotonic() + 30
        while not _decode_workers() and time.monotonic() < deadline:
            time.sleep(0.05)
        seen.append(_decode_workers())
        return load_encoder(ref, **kwargs)

    return loader


def test_decoding_starts_while_the_model_loads(tmp_path):
    """On a changed folder the store's model loads in the background: the decode workers are
    already running when the loader is called (before: they started after it returned)."""

    vids, store = _folder(tmp_path), tmp_path / "store"
    index_folders(store, [vids], model=str(SAMPLE_MODEL), workers=0)
    write_indexed(vids / "c.mp4", n=20)
    seen: list[list[int]] = []
    loader = _loader_that_waits_for_decoders(seen)

    report = index_folders(store, [vids], load=loader, workers=1)
    assert report.counts()["indexed"] == 1
    assert len(seen) == 1 and seen[0], "the model was loaded before any decoder started"


def test_a_broken_file_that_did_not_change_is_not_retried(tmp_path):
    """One broken file in a folder must not cost every re-run a model load; it stays reported."""
    vids, store = _folder(tmp_path), tmp_path / "store"
    (vids / "broken.mp4").write_bytes(b"not a video at all" * 100)
    loader = CountingLoader()
    first = index_folders(store, [vids], model=str(SAMPLE_MODEL), load=loader, workers=0)
    assert [p for p, _ in first.failed] == [str(vids / "broken.mp4")]
    again = index_folders(store, [vids], load=loader, workers=0)
    assert len(loader.calls) == 1 and not again.model_loaded
    assert [p for p, _ in again.failed] == [str(vids / "broken.mp4")] and "not retried" in again.failed[0][1]
    assert again.counts()["unchanged"] == 2
    os.utime(vids / "broken.mp4", ns=(1, 1))  # touched: it may have been repaired, so try again
    retried = index_folders(store, [vids], load=loader, workers=0)
    assert len(loader.calls) == 2 and retried.model_loaded


def test_a_new_store_decodes_while_a_model_folder_loads(tmp_path):
    """A model folder declares its spec (vsearch.json): a new store decodes while it loads."""

    vids, store = _folder(tmp_path), tmp_path / "store"
    seen: list[list[int]] = []
    loader = _loader_that_waits_for_decoders(seen)

    report = index_folders(store, [vids], model=str(SAMPLE_MODEL), load=loader, workers=1)
    assert report.counts()["indexed"] == 2 and len(seen) == 1 and seen[0]
    with Store.open(store, create=False) as st:
        assert st.encoder().source == str(SAMPLE_MODEL)


def test_a_model_that_fails_to_load_leaves_no_new_store(tmp_path):
    vids, store = _folder(tmp_path), tmp_path / "store"
    broken = tmp_path / "broken-model"
    shutil.copytree(SAMPLE_MODEL, broken)
    for weights in broken.glob("*.safetensors"):
        weights.write_bytes(b"not weights")
    with pytest.raises(Exception):  # noqa: B017 - whatever the loader raises, nothing may be left
        index_folders(store, [vids], model=str(broken), workers=1)
    assert not store.exists()


def test_an_empty_folder_still_binds_a_new_store_to_its_model(tmp_path):
    empty, store = tmp_path / "empty", tmp_path / "store"
    empty.mkdir()
    index_folders(store, [empty], model=str(SAMPLE_MODEL), workers=0)
    with Store.open(store, create=False) as st:
        assert st.encoder().source == str(SAMPLE_MODEL)


def test_the_store_records_each_videos_sampling(tmp_path):
    import sqlite3

    vids, store = _folder(tmp_path), tmp_path / "store"
    index_folders(store, [vids], model=str(SAMPLE_MODEL), sampling="exact", workers=0)
    with Store.open(store, create=False) as st:
        assert st.sampling() == "exact"
    write_indexed(vids / "c.mp4", n=20)
    index_folders(store, [vids], sampling="fast", workers=0)
    with sqlite3.connect(store / "vsearch.db") as db:
        rows = {os.fsdecode(bytes(p)): mode for p, mode in db.execute("SELECT path, sampling FROM videos")}
    assert rows == {str(vids / "a.mp4"): "exact", str(vids / "b.mp4"): "exact", str(vids / "c.mp4"): "fast"}
    with Store.open(store, create=False) as st:
        assert st.sampling() == "mixed"
    (vids / "sparse.mp4").write_bytes((vids / "c.mp4").read_bytes())
    os.remove(vids / "c.mp4")  # (a rename keeps the row: nothing is decoded)
    index_folders(store, [vids], sampling="fast", workers=0)
    with Store.open(store, create=False) as st:
        assert st.sampling() == "mixed"


def test_an_unknown_sampling_is_one_line_and_creates_nothing(tmp_path):
    vids, store = _folder(tmp_path), tmp_path / "store"
    cmd = [sys.executable, "-m", "vsearch_cli.main", "index", str(vids), "--store", str(store), "--sampling", "fastest"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "unknown sampling 'fastest'" in done.stderr and len(done.stderr.splitlines()) == 1
    assert not store.exists()


def test_trace_is_a_timeline_across_the_command_and_its_decode_workers(tmp_path, monkeypatch):
    """VSEARCH_TRACE=FILE: every process of a run appends stamped events (issue 24's timeline)."""
    vids, store, log = _folder(tmp_path), tmp_path / "store", tmp_path / "trace.txt"
    monkeypatch.setenv("VSEARCH_TRACE", str(log))
    monkeypatch.delenv("VSEARCH_TRACE_T0", raising=False)  # (restored: the run sets it for its workers)
    index_folders(store, [vids], model=str(SAMPLE_MODEL), workers=1)
    rows = [line.split(maxsplit=4) for line in log.read_text().splitlines()]
    assert all(r[0] == "vsearch-trace" and float(r[3]) >= 0 for r in rows)
    events = {r[4]: (float(r[1]), int(r[2])) for r in rows}
    for want in ("index: start", "model: loaded", "ingest: decode workers started", "worker: up", "job 0: done",
                 "job 1: done", "pool: first segment received", "ingest: first segment embedded", "ingest: index saved"):  # fmt: skip
        assert want in events, want
    assert events["worker: up"][1] != events["index: start"][1] == os.getpid()
    assert events["index: start"][0] <= events["worker: up"][0]  # (prestarted: before the pool is made)
    assert events["index: start"][0] <= events["ingest: decode workers started"][0] <= events["job 0: done"][0]
    assert events["worker: up"][0] <= events["pool: first segment received"][0] <= events["ingest: first segment embedded"][0]
    assert events["ingest: first segment embedded"][0] <= events["ingest: index saved"][0]


def test_prestarted_decoders_are_taken_by_the_next_pool_and_spares_stopped(tmp_path):
    """``prestart`` starts decoder processes before the jobs are known; the next pool decodes on
    them instead of starting its own, and ``release_spares`` stops the ones no pool took."""
    from vsearch.video import workers
    from vsearch.video.workers import DecodeJob, DecodePool, prestart, release_spares

    vids = _folder(tmp_path)
    prestart(2)
    spares = list(workers._spares)
    assert len(spares) == 2 and all(w.alive() for w in spares)
    job = DecodeJob(0, str(vids / "a.mp4"), 4, 32, "squash", 10.0, 2.0)
    msgs = list(DecodePool(1).messages([job]))
    assert msgs[-1] == ("done", 0)
    assert workers._spares == [spares[1]] and spares[0].proc.poll() is not None  # the first one decoded, then stopped
    release_spares()
    assert workers._spares == [] and spares[1].proc.poll() is not None
