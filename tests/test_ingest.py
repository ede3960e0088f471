"""Indexing real files end to end: round trips, incremental re-runs, failures, segments."""

import os
import shutil

import numpy as np
import pytest

from vsearch.errors import EncoderMismatch, StoreBusy
from vsearch.ingest import index
from vsearch.search import search
from vsearch.store import Store
from vsearch.store import db as dbmod

from .videos import write_indexed, write_noise


def segment_ids(st):
    with st.Session() as s:
        return {r[0] for r in s.execute(dbmod.text("SELECT id FROM segments"))}


def consistent(st):
    """FAISS ids == SQLite segment ids, every segment has a vector, nothing half-written."""
    fresh = Store.open(st.root)
    try:
        assert set(int(i) for i in fresh.vector_index().ids()) == segment_ids(st)
        assert fresh.check().ok
    finally:
        fresh.close()


@pytest.fixture
def folder(tmp_path, synth_dir):
    d = tmp_path / "videos"
    shutil.copytree(synth_dir / "videos", d)
    return d


def test_index_search_status_remove_reindex_round_trip(tmp_path, folder, tiny_encoder):
    st = Store.open(tmp_path / "store")
    r1 = index(st, [folder], tiny_encoder, workers=2)
    assert r1.counts() == {"indexed": 12, "unchanged": 0, "moved": 0, "removed": 0, "failed": 0, "segments": 12, "not_video": 0}
    assert r1.ok
    consistent(st)

    # Unchanged files are skipped without decoding, and nothing is written.
    gen_before = st.generation()
    r2 = index(st, [folder], tiny_encoder, workers=2)
    assert r2.counts()["unchanged"] == 12 and r2.counts()["indexed"] == 0
    assert st.generation() == gen_before  # no new generation: no video was written

    # A changed file is re-embedded (and only it); a deleted one is removed; a renamed one moved.
    files = sorted(folder.iterdir())
    write_noise(files[0], n=15, seed=5)
    os.remove(files[1])
    os.rename(files[2], folder / "renamed.mp4")
    before = {h.path for h in search(st, "a red circle", k=20).hits}
    r3 = index(st, [folder], tiny_encoder, workers=0)
    c = r3.counts()
    assert (c["indexed"], c["removed"], c["moved"], c["unchanged"]) == (1, 1, 1, 9)
    assert r3.moved == [(str(files[2]), str(folder / "renamed.mp4"))]
    consistent(st)
    after = {h.path for h in search(st, "a red circle", k=20).hits}
    assert str(files[1]) in before and str(files[1]) not in after
    assert str(folder / "renamed.mp4") in after and len(after) == 11

    status = st.status()
    assert status["videos"] == 11 and status["segments"] == 11
    assert status["encoder"]["fingerprint"] == tiny_encoder.fingerprint
    assert status["last_run"]["counts"]["indexed"] == 1

    # Another folder in the same store does not remove this one's videos.
    other = tmp_path / "other"
    write_indexed(other / "x.mp4", n=20)
    r4 = index(st, [other], tiny_encoder, workers=0)
    assert r4.counts()["indexed"] == 1 and r4.counts()["removed"] == 0
    assert st.count_videos() == 12

    assert st.rebuild_index()["vectors"] == 12
    consistent(st)
    st.close()


def test_long_video_is_cut_into_segments_with_time_ranges(tmp_path, tiny_encoder):
    write_indexed(tmp_path / "v" / "long.mp4", n=41, fps=2)  # 20.5 s at 2 fps
    st = Store.open(tmp_path / "s")
    index(st, [tmp_path / "v"], tiny_encoder, workers=0, segment_seconds=5.0)
    hits = search(st, "anything", k=10, segments=True).hits
    ranges = sorted((h.segment, h.start, h.end) for h in hits)
    assert ranges == [(0, 0.0, 5.0), (1, 5.0, 10.0), (2, 10.0, 15.0), (3, 15.0, 20.5)]  # 0.5 s tail merged
    with st.Session() as s:
        rows = s.execute(dbmod.text("SELECT frame_indices FROM embeddings ORDER BY segment_id")).all()
    import json

    idx = [json.loads(r[0]) for r in rows]
    assert len(idx[0]) == tiny_encoder.spec.frames
    assert idx[0][0] == 0 and idx[0][-1] == 9 and idx[3][-1] == 40
    consistent(st)


def test_failures_are_recorded_and_the_run_goes_on(tmp_path, synth_dir, tiny_encoder):
    d = tmp_path / "mixed"
    shutil.copytree(synth_dir / "videos", d)
    (d / "empty.mp4").write_bytes(b"")
    (d / "text.mp4").write_bytes(b"hello\n" * 100)
    (d / "crash.mp4").write_bytes((synth_dir / "videos" / os.listdir(synth_dir / "videos")[0]).read_bytes() + b"x")
    st = Store.open(tmp_path / "s")
    report = index(st, [d], tiny_encoder, workers=2, faults={str(d / "crash.mp4"): "segfault"})
    assert report.counts()["indexed"] == 12
    reasons = {os.path.basename(p): r for p, r in report.failed}
    assert reasons.keys() == {"empty.mp4", "text.mp4", "crash.mp4"}
    assert "empty" in reasons["empty.mp4"]
    assert "crashed (SIGSEGV)" in reasons["crash.mp4"]
    assert {os.path.basename(f["path"]) for f in st.failures()} == reasons.keys()
    consistent(st)
    # Fixed files index on the next run and their failures are cleared; deleted ones are forgotten.
    shutil.copy(d / "crash.mp4", d / "fixed.mp4")
    os.remove(d / "crash.mp4")
    (d / "text.mp4").unlink()
    report = index(st, [d], tiny_encoder, workers=0)
    assert report.counts()["indexed"] == 1
    assert {os.path.basename(f["path"]) for f in st.failures()} == {"empty.mp4"}


def test_encoder_mismatch_and_lock(tmp_path, folder, tiny_encoder):
    from vsearch.models import load_encoder

    st = Store.open(tmp_path / "s")
    index(st, [folder], tiny_encoder, workers=0)
    other = load_encoder("tiny-clip", cache=False)
    other.clip.text_projection.weight.data += 0.01  # a different model: one weight changed
    with pytest.raises(EncoderMismatch):
        index(st, [folder], other, workers=0)
    with pytest.raises(EncoderMismatch):
        search(st, "x", encoder=other)
    other_writer = Store.open(st.root)  # like another process: its own lock file handle
    lock = other_writer.lock("index")
    try:
        with pytest.raises(StoreBusy):
            index(st, [folder], tiny_encoder, workers=0)
    finally:
        lock.release()
        other_writer.close()
    with st.lock("remove"):  # re-entrant for the same Store: a caller may hold it around a library call
        index(st, [folder], tiny_encoder, workers=0)


def test_vectors_stored_match_a_direct_encoding(tmp_path, tiny_encoder):
    """The pipeline's vector for a clip equals encoding its sampled frames directly."""
    from vsearch.video.decode import VideoReader
    from vsearch.video.sampling import uniform_indices

    path = write_noise(tmp_path / "v" / "n.mp4", n=30, width=96, height=64)
    st = Store.open(tmp_path / "s")
    index(st, [tmp_path / "v"], tiny_encoder, workers=1)
    ((ids, vecs),) = list(st.iter_embeddings(st.encoder().id))
    spec = tiny_encoder.spec
    with VideoReader(str(path), spec.pixels.image_size, spec.pixels.resize) as r:
        r.read_by_gop(r.keyframes())  # as a decode worker reads (GOP by GOP: PyAV's scaler, not decord's)
        frames = r.get(uniform_indices(0, 30, spec.frames))
    direct = tiny_encoder.encode_frames(frames[None]).numpy()[0]
    assert np.abs(vecs[0] - direct).max() < 5e-4  # float16 storage (a wrong resize moves it ~4e-3)
