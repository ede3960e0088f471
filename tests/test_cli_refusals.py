"""A careless operator gets one line, exit 1, and nothing changed: bad ports, unreachable store
folders, a model folder that is not there, a moment past a video's end. The CLI runs in
subprocesses; unreadable folders are made real for root by dropping its DAC override."""

from __future__ import annotations

import json
import os
import shutil
import sys

import pytest

from tests.procs import run
from vsearch.store import Store

SETPRIV = shutil.which("setpriv")
DROP_DAC = [SETPRIV, "--inh-caps=-dac_override,-dac_read_search", "--bounding-set=-dac_override,-dac_read_search"]


def cli(*args, env=None, prefix=(), timeout=120):
    return run([*prefix, sys.executable, "-m", "vsearch", *map(str, args)], timeout=timeout, env={**os.environ, "COLUMNS": "300", **(env or {})})


def refusal(res) -> str:
    assert res.returncode == 1, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr and not res.stderr.startswith("\n"), res.stderr
    lines = [x for x in res.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, res.stderr
    return lines[0]


@pytest.fixture(scope="module")
def store(synth_store):
    return synth_store


@pytest.mark.parametrize("port", ["70000", "-1"])
def test_serve_refuses_impossible_ports(store, port):
    assert "between 0 and 65535" in refusal(cli("serve", "--store", store, "--port", port))


@pytest.mark.skipif(SETPRIV is None, reason="setpriv (util-linux) is not installed")
def test_unreachable_store_folders_are_one_line(tmp_path):
    locked = tmp_path / "locked"
    (locked / "inner").mkdir(parents=True)
    locked.chmod(0)
    try:
        if os.geteuid() != 0:
            pytest.skip("dropping the DAC override needs root (CI runs as root)")
        line = refusal(cli("status", "--store", locked / "inner" / "s", prefix=DROP_DAC))
        assert "cannot reach the store" in line and "ermission denied" in line
        for args in (["status"], ["index", tmp_path]):
            line = refusal(cli(*args, env={"VSEARCH_HOME": str(locked / "home")}, prefix=DROP_DAC))
            assert "cannot reach the store" in line
    finally:
        locked.chmod(0o755)


def test_a_missing_model_folder_is_named_as_such(store):
    line = refusal(cli("search", "a red circle", "--store", store, "--model", "/no/such/model"))
    assert "no such model folder" in line


def test_a_moment_past_the_end_is_refused_not_replaced(store, synth_dir):
    clip = sorted((synth_dir / "videos").iterdir())[0]
    res = cli("search", "--like", f"{clip}@99", "--store", store)
    assert "past its end" in refusal(res)
    res = cli("search", "--like", f"{clip}@1", "--store", store, "--json")
    assert res.returncode == 0 and json.loads(res.stdout), res.stderr


def test_more_like_a_segment_scores_it_at_most_one(store):
    with Store.open(store) as st:
        from vsearch.search import search_like

        sid = st.segment_rows(list(range(1, 5)))
        first = min(sid)
        hits = search_like(st, first, 5, segments=True).hits
    assert hits[0].segment_id == first and hits[0].score == pytest.approx(1.0, abs=1e-4)  # (float16 vectors)
    assert all(-1.0 <= h.score <= 1.0 for h in hits)


def test_a_store_path_that_cannot_be_a_store_is_refused_before_any_model_loads(tmp_path, synth_dir):
    """Without --model a new store would take the default hub model: the path is checked first,
    so the refusal is about the path, not a download (HF_HUB_OFFLINE would make it a hub error)."""
    afile = tmp_path / "afile"
    afile.write_text("x")
    for where, why in ((afile, "it is a file, not a folder"), (afile / "sub", "is a file, not a folder")):
        line = refusal(cli("index", synth_dir / "videos", "--store", where))
        assert "cannot create a store" in line and why in line and "hub" not in line, line
    assert afile.read_text() == "x"


def test_index_counts_the_files_it_skips_as_not_video(tmp_path, synth_dir):
    folder = tmp_path / "mixed"
    folder.mkdir()
    clip = sorted((synth_dir / "videos").iterdir())[0]
    shutil.copy(clip, folder / clip.name)
    for name in ("song.m4a", "voice.m4a", "readme.txt"):
        (folder / name).write_bytes(b"not a video")
    res = cli("index", folder, "--store", tmp_path / "s", "--model", "tiny-clip", "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["counts"]["indexed"] == 1 and out["counts"]["not_video"] == 3
    assert out["not_video"] == {".m4a": 2, ".txt": 1}
    res = cli("index", folder, "--store", tmp_path / "s")
    assert "not video (skipped)" in res.stdout and ".m4a 2" in res.stdout, res.stdout
