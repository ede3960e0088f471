"""Indexing on a real local Ray (2 CPUs): the same store as the local pipeline, and a dead
worker's file retried, then recorded as failed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed (the README's install includes it)")

from vsearch.ingest import index  # noqa: E402
from vsearch.models import load_encoder  # noqa: E402
from vsearch.search import search  # noqa: E402
from vsearch.store import Store  # noqa: E402

pytestmark = pytest.mark.slow
SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def rows(st):
    with st.Session() as s:
        from sqlalchemy import select

        from vsearch.store.schema import Segment, Video

        return sorted(
            (v.path, g.idx, round(g.start_s, 6), round(g.end_s, 6))
            for v, g in s.execute(select(Video, Segment).join(Segment, Segment.video_id == Video.id))
        )


def test_ray_indexes_sample_data_like_the_local_pipeline(local_ray, tmp_path):
    enc = load_encoder(SAMPLE / "model")
    with Store.open(tmp_path / "local") as a, Store.open(tmp_path / "ray") as b:
        ra = index(a, [SAMPLE / "videos"], enc, workers=1)
        rb = index(b, [SAMPLE / "videos"], enc, ray=True)
        assert ra.counts() == rb.counts() and rb.counts()["segments"] == 48
        assert rows(a) == rows(b)  # same segments, same time ranges
        assert b.check().ok and b.status()["thumbnails"] == 48
        for q in ("a red circle", "a yellow triangle moving up", "a blue square"):
            ha = search(a, q, k=20, encoder=enc, segments=True).hits
            hb = search(b, q, k=20, encoder=enc, segments=True).hits
            assert [(h.path, h.start) for h in ha] == [(h.path, h.start) for h in hb]
            assert max(abs(x.score - y.score) for x, y in zip(ha, hb)) <= 1e-3


def test_a_dead_worker_is_retried_then_its_file_recorded_as_failed(local_ray, tmp_path):
    vids = tmp_path / "v"
    vids.mkdir()
    for f in sorted((SAMPLE / "videos").glob("red_*.mp4"))[:3]:
        shutil.copy(f, vids / f.name)
    victim = str(sorted(vids.iterdir())[0])
    enc = load_encoder(SAMPLE / "model")
    with Store.open(tmp_path / "s") as st:
        report = index(st, [vids], enc, ray=True, faults={victim: "segfault"})
        assert [p for p, _r in report.failed] == [victim]
        assert "worker" in report.failed[0][1]
        assert report.counts()["indexed"] == 2 and st.check().ok


def test_shards_on_ray_import_into_a_store_equal_to_the_local_one(local_ray, tmp_path):
    from vsearch.scale.shards import export_shards, import_shards

    enc = load_encoder(SAMPLE / "model")
    videos = [str(p) for p in (SAMPLE / "videos").glob("*.mp4")]
    res = export_shards(enc, videos, tmp_path / "shards", ray=True, files_per_shard=16)
    assert res["shards"] == 3 and res["failed_files"] == 0
    with Store.open(tmp_path / "local") as a, Store.open(tmp_path / "imported") as b:
        index(a, [SAMPLE / "videos"], enc, workers=1)
        with b.lock("import"):
            got = import_shards(b, tmp_path / "shards", enc)
        assert got == {"shards": 3, "videos": 40, "segments": 48}
        assert rows(a) == rows(b) and b.check().ok
        for q in ("a red circle", "a green triangle moving left"):
            ha = search(a, q, k=20, encoder=enc, segments=True).hits
            hb = search(b, q, k=20, encoder=enc, segments=True).hits
            assert [(h.path, h.start) for h in ha] == [(h.path, h.start) for h in hb]
            assert max(abs(x.score - y.score) for x, y in zip(ha, hb)) <= 1e-3
