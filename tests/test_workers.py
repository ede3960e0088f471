"""Decode workers: same frames in and out of process; a crash or a hang fails one file only."""


import numpy as np

from vsearch.video.workers import DecodeJob, DecodePool

from .videos import frame_index, write_indexed


def jobs_for(paths, **kw):
    return [DecodeJob(i, str(p), 4, 32, "squash", 2.0, 0.5, **kw) for i, p in enumerate(paths)]


def collect(pool, jobs):
    by_job: dict = {}
    for msg in pool.messages(jobs):
        by_job.setdefault(msg[1], []).append(msg)
    return by_job


def test_worker_processes_stream_the_same_segments_as_in_process(tmp_path):
    paths = [write_indexed(tmp_path / f"v{i}.mp4", n=40, fps=10) for i in range(3)]
    inproc = collect(DecodePool(0), jobs_for(paths))
    workers = collect(DecodePool(2), jobs_for(paths))
    assert inproc.keys() == workers.keys() == {0, 1, 2}
    for job_id in inproc:
        a = [m for m in inproc[job_id] if m[0] == "segment"]
        b = [m for m in workers[job_id] if m[0] == "segment"]
        assert [m[2] for m in a] == [m[2] for m in b] == [0, 1]  # 4 s at 2 s per segment
        for x, y in zip(a, b):
            assert x[3] == y[3]
            np.testing.assert_array_equal(x[4], y[4])
        assert workers[job_id][-1][0] == "done"
    # Segment 1 covers frames 20..39; four uniform samples of it.
    seg1 = [m for m in workers[0] if m[0] == "segment"][1]
    assert seg1[3] == [20, 26, 32, 39]
    assert seg1[4].shape == (4, 32, 32, 3)
    assert [frame_index(f) for f in seg1[4]] == [20, 26, 32, 39]


def test_a_segfaulting_decoder_fails_only_its_file(tmp_path):
    paths = [write_indexed(tmp_path / f"v{i}.mp4", n=10) for i in range(4)]
    jobs = jobs_for(paths)
    jobs[1] = DecodeJob(1, str(paths[1]), 4, 32, "squash", 2.0, 0.5, fault="segfault")
    pool = DecodePool(2)
    out = collect(pool, jobs)
    assert out[1] == [("error", 1, out[1][0][2])]
    assert "crashed (SIGSEGV)" in out[1][0][2]
    assert all(out[i][-1][0] == "done" for i in (0, 2, 3))
    assert pool.crashes == 1


def test_a_hanging_decoder_is_abandoned_after_the_timeout(tmp_path):
    paths = [write_indexed(tmp_path / f"v{i}.mp4", n=10) for i in range(2)]
    jobs = jobs_for(paths)
    jobs[0] = DecodeJob(0, str(paths[0]), 4, 32, "squash", 2.0, 0.5, fault="hang")
    pool = DecodePool(2, timeout=1.5)
    out = collect(pool, jobs)  # returns at all only because the hung decoder was abandoned (pytest-timeout bounds it)
    assert out[0][0][0] == "error" and "no progress for 1.5 s" in out[0][0][2]
    assert out[1][-1][0] == "done"
    assert pool.timeouts == 1


def test_bad_files_become_error_messages(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    out = collect(DecodePool(1), jobs_for([bad, tmp_path / "missing.mp4"]))
    assert out[0][0][0] == "error" and "not a readable video" in out[0][0][2]
    assert out[1][0][0] == "error" and "disappeared" in out[1][0][2]
