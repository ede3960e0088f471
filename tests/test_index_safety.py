"""Indexing never loses data or lies about it: missing roots and empty mounts remove nothing, moved
folders are recognised, a damaged index is repaired, a second writer waits, a touched file is only
touched, thumbnails live and die with their video, and the store is found where it is said to be."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from typer.testing import CliRunner

from vsearch.store import Store
from vsearch_cli.main import app

from .conftest import run_cli

runner = CliRunner()
run = run_cli


def count(store) -> int:
    return json.loads(run("status", "--store", store, "--json").stdout)["videos"]


def test_a_missing_folder_removes_nothing_and_fails(built, tmp_path):
    store, videos = built
    gone = tmp_path / "unmounted"
    videos.rename(gone)  # the drive is not mounted: the folder the store knows is not there
    res = run("index", videos, "--store", store, code=1)
    assert "does not exist" in res.output and "12 videos" in res.output and "vsearch remove" in res.output
    assert len(res.output.strip().splitlines()) == 1
    assert count(store) == 12


def test_an_empty_mount_point_removes_nothing_and_fails(built, tmp_path):
    store, videos = built
    holding = tmp_path / "elsewhere"
    holding.mkdir()
    for f in videos.iterdir():
        f.rename(holding / f.name)  # the mount point exists but is empty
    res = run("index", videos, "--store", store, code=1)
    assert "holds no videos" in res.output and "nothing was" in res.output
    assert count(store) == 12


def test_files_missing_inside_a_present_root_are_still_removed(built):
    store, videos = built
    victim = sorted(videos.iterdir())[0]
    victim.unlink()
    report = json.loads(run("index", videos, "--store", store, "--json").stdout)
    assert report["counts"]["removed"] == 1 and count(store) == 11


def test_a_folder_moved_across_roots_is_recognised_and_search_flags_stale_paths(built, tmp_path):
    store, videos = built
    moved = tmp_path / "vids2"
    videos.rename(moved)
    report = json.loads(run("index", moved, "--store", store, "--json").stdout)
    assert report["counts"]["moved"] == 12 and report["counts"]["indexed"] == 0
    assert count(store) == 12
    hits = json.loads(run("search", "a red circle", "--store", store, "-k", "3", "--json").stdout)
    assert all(h["path"].startswith(str(moved)) and h["missing"] is False for h in hits)
    # A file deleted behind the store's back: search still shows it, flagged, and list says so.
    victim = Path(hits[0]["path"])
    victim.unlink()
    again = runner.invoke(app, ["search", "a red circle", "--store", str(store), "-k", "3", "--json"])
    flagged = [h for h in json.loads(again.stdout) if h["path"] == str(victim)]
    assert flagged and flagged[0]["missing"] is True
    listed = json.loads(run("list", "--missing", "--store", store, "--json").stdout)
    assert [v["path"] for v in listed] == [str(victim)] and listed[0]["exists"] is False
    assert len(json.loads(run("list", "--store", store, "--json").stdout)) == 12


def test_check_finds_and_repairs_a_damaged_index_file_and_status_warns(built):
    store, _videos = built
    (faiss_file,) = (store / "index").glob("vectors-*.faiss")
    faiss_file.write_bytes(bytes(range(100)))
    res = run("check", "--store", store, "--json", code=1)
    data = json.loads(res.stdout)
    assert data["ok"] is False and "cannot be read" in data["index_file_problem"]
    status = json.loads(run("status", "--store", store, "--json").stdout)
    assert status["index"]["problem"]
    assert "damaged" in run("status", "--store", store).output
    fixed = json.loads(run("check", "--store", store, "--repair", "--json").stdout)
    assert fixed["repaired"] is True
    after = json.loads(run("check", "--store", store, "--json").stdout)
    assert after["ok"] is True and after["index_vectors"] == 12


def test_a_refused_run_leaves_no_store_behind(tmp_path, synth_dir):
    store = tmp_path / "S"
    res = run("index", synth_dir / "videos", "--model", "no-such-model", "--store", store, code=1)
    assert "unknown model" in res.output
    assert not store.exists()
    res = run("index", tmp_path / "nowhere", "--model", "tiny-clip", "--store", store, code=1)
    assert "no such file or folder" in res.output and not store.exists()


def test_removing_a_path_that_was_never_indexed_says_so(built, tmp_path):
    store, _videos = built
    res = run("remove", tmp_path / "never", "--store", store, code=1)
    assert "not in the store" in res.output and res.output.strip().endswith(".")
    assert count(store) == 12


def test_thumbnails_are_made_at_index_time_removed_with_their_video_and_backfilled(tmp_path, synth_dir):
    store = tmp_path / "s"
    vids = tmp_path / "v"
    shutil.copytree(synth_dir / "videos", vids)
    run("index", vids, "--store", store, "--model", "tiny-clip", "--workers", "0", "--no-thumbnails")
    assert json.loads(run("check", "--store", store, "--json").stdout)["without_thumbnail"] == 12
    made = json.loads(run("thumbnails", "--store", store, "--json").stdout)
    assert made == {"made": 12, "failed": 0}
    data = json.loads(run("check", "--store", store, "--json").stdout)
    assert data["ok"] and data["without_thumbnail"] == 0
    victim = sorted(vids.iterdir())[0]
    run("remove", victim, "--store", store)
    status = json.loads(run("status", "--store", store, "--json").stdout)
    assert status["thumbnails"] == 11  # removed with its video


def test_store_location_precedence(tmp_path, monkeypatch, synth_dir):
    """--store, else $VSEARCH_HOME, else $XDG_DATA_HOME/vsearch, else ~/.local/share/vsearch."""
    one = sorted((synth_dir / "videos").iterdir())[:1]
    vids = tmp_path / "v"
    vids.mkdir()
    shutil.copy(one[0], vids / one[0].name)
    monkeypatch.delenv("VSEARCH_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    args = ["--model", "tiny-clip", "--workers", "0"]
    run("index", vids, *args)
    assert (tmp_path / "home" / ".local" / "share" / "vsearch" / "vsearch.db").is_file()
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    run("index", vids, *args)
    assert (tmp_path / "xdg" / "vsearch" / "vsearch.db").is_file()
    monkeypatch.setenv("VSEARCH_HOME", str(tmp_path / "vh"))
    run("index", vids, *args)
    assert (tmp_path / "vh" / "vsearch.db").is_file()
    run("index", vids, *args, "--store", tmp_path / "explicit")
    assert (tmp_path / "explicit" / "vsearch.db").is_file()
    assert json.loads(run("status", "--json").stdout)["store"] == str((tmp_path / "vh").resolve())


def test_index_wait_waits_for_the_writer_then_runs(tmp_path, synth_dir):
    store = tmp_path / "s"
    vids = tmp_path / "v"
    vids.mkdir()
    for f in sorted((synth_dir / "videos").iterdir())[:2]:
        shutil.copy(f, vids / f.name)
    st = Store.open(store)
    lock = st.lock("test holder")
    cmd = [sys.executable, "-m", "vsearch", "index", str(vids), "--store", str(store), "--model", "tiny-clip", "--workers", "0"]
    busy = subprocess.run(cmd + ["--json"], capture_output=True, text=True, timeout=120)
    assert busy.returncode != 0 and "test holder" in busy.stderr  # refused, naming the holder
    proc = subprocess.Popen(cmd + ["--wait", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # Evidence, not a pause: the waiter has the lock file open (it polls it) while we hold it.
    lock_file = str((store / "write.lock").resolve())
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        fds = Path(f"/proc/{proc.pid}/fd")
        try:
            if any(os.path.realpath(fd) == lock_file for fd in fds.iterdir()):
                break
        except OSError:
            pass
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()[1][-2000:]  # waiting on the lock, not refused or done
    lock.release()
    st.close()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert json.loads(out)["counts"]["indexed"] == 2


def test_a_new_mtime_with_the_same_bytes_is_only_touched(tmp_path, synth_dir):
    store, vids = tmp_path / "s", tmp_path / "v"
    shutil.copytree(synth_dir / "videos", vids)
    run("index", vids, "--store", store, "--model", "tiny-clip", "--workers", "0")
    gen = json.loads(run("status", "--store", store, "--json").stdout)["generation"]
    victim = sorted(vids.iterdir())[0]
    os.utime(victim, ns=(time.time_ns(), time.time_ns() + 10**9))
    rep = json.loads(run("index", vids, "--store", store, "--json").stdout)
    assert rep["counts"]["unchanged"] == 12 and rep["counts"]["indexed"] == 0
    assert json.loads(run("status", "--store", store, "--json").stdout)["generation"] == gen  # nothing re-embedded
    listed = {v["path"]: v for v in json.loads(run("list", "--store", store, "--json").stdout)}
    assert str(victim) in listed
    with Store.open(store) as st:  # the new mtime is recorded: the next run skips the file unread
        assert st.known_videos([str(vids)])[str(victim)].mtime_ns == victim.stat().st_mtime_ns
