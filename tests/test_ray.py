"""Indexing on a real local Ray: the same store as the local pipeline, shards that import to it,
and a dead worker's file retried, then recorded as failed.

Ray runs in child processes (the CLI, as users run it): a pytest process that has started Ray
keeps gRPC threads, and the decode workers other tests fork from it could hang.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import textwrap
from pathlib import Path

import pytest

from tests.procs import run

pytest.importorskip("ray", reason="Ray is not installed (the README's install includes it)")

from vsearch.models import load_encoder  # noqa: E402
from vsearch.search import search  # noqa: E402
from vsearch.store import Store  # noqa: E402

pytestmark = pytest.mark.slow
SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"
RAY_ENV = {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "RAY_USAGE_STATS_ENABLED": "0"}


def env_now(**extra: str) -> dict[str, str]:
    """The environment as the test sees it now (its own VSEARCH_HOME: a command-line run writes
    the user cache there, not in the real home), with Ray's settings."""
    return {**os.environ, **RAY_ENV, **extra}


def cli(*args, timeout=600, env=None):
    env = env or env_now()
    res = run([sys.executable, "-m", "vsearch", *map(str, args)], timeout=timeout, env=env)  # kills Ray's children too
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(next(line for line in reversed(res.stdout.splitlines()) if line.startswith("{")))


def rows(st):
    from sqlalchemy import select

    from vsearch.store.schema import Segment, Video

    with st.Session() as s:
        return sorted(
            (v.path, g.idx, round(g.start_s, 6), round(g.end_s, 6))
            for v, g in s.execute(select(Video, Segment).join(Segment, Segment.video_id == Video.id))
        )


def same_results(a, b, enc):
    for q in ("a red circle", "a yellow triangle moving up", "a blue square"):
        ha = search(a, q, k=20, encoder=enc, segments=True).hits
        hb = search(b, q, k=20, encoder=enc, segments=True).hits
        assert [(h.path, h.start) for h in ha] == [(h.path, h.start) for h in hb]
        assert max(abs(x.score - y.score) for x, y in zip(ha, hb)) <= 1e-3


@pytest.fixture(scope="module")
def local_store(sample_store):
    """sample_data indexed by the local pipeline (the session's shared store, read only)."""
    return sample_store


def test_ray_indexes_sample_data_like_the_local_pipeline(local_store, tmp_path):
    # One segment per task: each 30 s compilation is a first task (its plan, its first segment)
    # and two more, whose segments must land in the same video rows as the local pipeline's.
    env = env_now(VSEARCH_RAY_SEGMENTS_PER_TASK="1")
    report = cli("index", SAMPLE / "videos", "--model", SAMPLE / "model", "--store", tmp_path / "ray", "--ray", "--json", env=env)
    assert report["counts"]["indexed"] == 40 and report["counts"]["segments"] == 48
    enc = load_encoder(SAMPLE / "model")
    with Store.open(local_store) as a, Store.open(tmp_path / "ray") as b:
        assert rows(a) == rows(b)  # same segments, same time ranges
        assert b.check().ok and b.status()["thumbnails"] == 48
        same_results(a, b, enc)


def test_shards_made_on_ray_import_into_the_same_store(local_store, tmp_path):
    made = cli("embed", SAMPLE / "videos", "--model", SAMPLE / "model", "--out", tmp_path / "shards", "--ray", "--json")
    assert made["shards"] == 1 and made["failed_files"] == 0
    got = cli("import", tmp_path / "shards", "--store", tmp_path / "imported", "--json")
    assert got == {"shards": 1, "videos": 40, "segments": 48}
    enc = load_encoder(SAMPLE / "model")
    with Store.open(local_store) as a, Store.open(tmp_path / "imported") as b:
        assert rows(a) == rows(b) and b.check().ok
        same_results(a, b, enc)


def test_a_dead_worker_is_retried_then_its_file_recorded_as_failed(tmp_path):
    vids = tmp_path / "v"
    vids.mkdir()
    for f in sorted((SAMPLE / "videos").glob("red_*.mp4"))[:3]:
        shutil.copy(f, vids / f.name)
    victim = str(sorted(vids.iterdir())[0])
    script = tmp_path / "run.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import json
            from vsearch.ingest import index
            from vsearch.models import load_encoder
            from vsearch.store import Store

            with Store.open({str(tmp_path / "s")!r}) as st:
                r = index(st, [{str(vids)!r}], load_encoder({str(SAMPLE / "model")!r}), ray=True, faults={{{victim!r}: "segfault"}})
                print(json.dumps({{"failed": r.failed, "counts": r.counts(), "ok": st.check().ok}}))
            """
        )
    )
    res = run([sys.executable, str(script)], timeout=600, env=env_now())
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(next(line for line in reversed(res.stdout.splitlines()) if line.startswith("{")))
    assert [p for p, _r in out["failed"]] == [victim] and "worker" in out["failed"][0][1]
    assert out["counts"]["indexed"] == 2 and out["ok"]
