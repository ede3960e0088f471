"""The GOP-aware read planner (issue 24): synthetic keyframe tables, then real files with known GOPs."""

from __future__ import annotations

import shutil
import subprocess
import time

import numpy as np
import pytest

from vsearch.video.decode import VideoReader, orient
from vsearch.video.readplan import (
    KeyframeTable,
    decoded_frames,
    fast_unusable,
    plan_reads,
    snap_to_keyframes,
)
from vsearch.video.sampling import plan_segments, uniform_indices
from vsearch.video.workers import DecodeJob, decode_job, decoder_threads

# -- synthetic tables ----------------------------------------------------------------------------


def camera_table(seconds: int = 30, fps: int = 30, gop_s: int = 2) -> KeyframeTable:
    """A phone's file: a keyframe every ``gop_s`` seconds."""
    n = seconds * fps
    return KeyframeTable.build(range(0, n, gop_s * fps), n)


def test_exact_plan_decodes_each_gop_once_and_stops_at_the_last_needed_frame():
    table = camera_table()
    wanted = [0, 42, 85, 128, 170, 213, 256, 299]
    reads = plan_reads(wanted, table)
    assert [r.key for r in reads] == [0, 60, 120, 180, 240]
    assert [r.frames for r in reads] == [(0, 42), (85,), (128, 170), (213,), (256, 299)]
    # Each GOP from its keyframe to its last wanted frame, nothing past it: 43 + 26 + 51 + 34 + 60.
    assert decoded_frames(reads) == 43 + 26 + 51 + 34 + 60
    assert sorted(f for r in reads for f in r.frames) == wanted


def test_exact_plan_without_a_table_is_one_forward_read():
    reads = plan_reads([9, 3, 3, 7], None)
    assert len(reads) == 1 and reads[0].key == 0 and reads[0].frames == (3, 7, 9)


def test_fast_moves_frames_to_keyframes_within_half_a_gop():
    table = camera_table()
    for seg in plan_segments(np.stack([np.arange(900) / 30, np.arange(1, 901) / 30], 1), 10.0):
        exact = uniform_indices(seg.start_frame, seg.end_frame, 8)
        fast = snap_to_keyframes(exact, seg.start_frame, seg.end_frame, table)
        assert len(fast) == len(exact) and fast == sorted(fast)
        for e, f in zip(exact, fast):
            if f != e:
                assert table.is_key(f) and abs(f - e) <= 30  # half a 60-frame GOP
                assert seg.start_frame <= f < seg.end_frame  # never past the segment (a cut may follow)
        assert len(set(fast)) == len(fast)  # a keyframe serves one sampled frame
    first = snap_to_keyframes(uniform_indices(0, 300, 8), 0, 300, table)
    assert first == [0, 60, 85, 120, 180, 240, 256, 299]  # 85 and 256: their keyframe is taken; 299: none near
    # Keyframes 0, 60 (and on to 85), 120, 180, 240 (and on to 299): 1 + 26 + 1 + 1 + 60.
    assert decoded_frames(plan_reads(first, table)) == 89
    assert decoded_frames(plan_reads(uniform_indices(0, 300, 8), table)) == 214


def test_an_open_end_lets_the_last_frame_take_the_next_segments_keyframe():
    """Frame 299 lies one frame before keyframe 300, which starts the next segment; with the end
    open (no cut there) it moves on to it and the segment's dearest read goes: 89 decoded frames
    become 1 + 26 + 1 + 1 + 17 + 1."""
    table = camera_table()
    exact = uniform_indices(0, 300, 8)
    opened = snap_to_keyframes(exact, 0, 300, table, open_end=True)
    assert opened == [0, 60, 85, 120, 180, 240, 256, 300]
    assert decoded_frames(plan_reads(opened, table)) == 47
    assert snap_to_keyframes(exact, 0, 300, table)[-1] == 299  # closed (a cut may follow): never past the end
    last = uniform_indices(600, 900, 8)  # the file's last segment: no keyframe after it
    assert snap_to_keyframes(last, 600, 900, table, open_end=True) == snap_to_keyframes(last, 600, 900, table)


def test_fast_keeps_exact_frames_when_the_gop_exceeds_the_frame_budget():
    """12 s GOPs against 1.4 s between samples: moving frames would show one moment eight times."""
    table = KeyframeTable.build(range(0, 900, 360), 900)
    exact = uniform_indices(0, 300, 8)
    assert snap_to_keyframes(exact, 0, 300, table) == exact
    assert fast_unusable(table, 30.0) == "a keyframe only every 12.0 s; sampled exactly"
    assert fast_unusable(camera_table(), 30.0) is None
    assert fast_unusable(None, 30.0) == "no keyframe index; sampled exactly"
    assert "single keyframe" in fast_unusable(KeyframeTable.build([0], 900), 30.0)


def test_open_gop_leading_frames_do_not_snap_to_a_keyframe_that_is_not_there():
    table = KeyframeTable.build([5, 65, 125], 180)
    assert table.gop(2) == (0, 5) and not table.is_key(0)
    assert snap_to_keyframes([1, 40, 70], 0, 180, table) == [1, 65, 70]  # 1 -> 5 is more than half of 5 frames
    assert snap_to_keyframes([3], 0, 180, table) == [5]


def test_decoder_threads_share_the_cores():
    assert decoder_threads(2, cpus=2) == 1
    assert decoder_threads(0, cpus=8) == 8  # in-process: all of them
    assert decoder_threads(3, cpus=16) == 5
    assert decoder_threads(8, cpus=2) == 1


# -- real files with known GOPs ------------------------------------------------------------------

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="Debian's ffmpeg writes the GOP test files")


def camera_file(
    path, seconds: int, fps: int = 10, gop: int = 20, size: str = "320x180", extra: tuple = (), hevc: str | None = None
) -> str:
    """testsrc2 (motion) with a keyframe exactly every ``gop`` frames and B-frames: H.264, or
    HEVC (in an ``hvc1`` MP4) with ``hevc`` added to its x265 parameters."""
    if hevc is None:
        codec = ["-c:v", "libx264", "-preset", "veryfast", "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0",
                 "-bf", "2"]  # fmt: skip
    else:
        params = f"keyint={gop}:min-keyint={gop}:scenecut=0:log-level=error:{hevc}"
        codec = ["-c:v", "libx265", "-preset", "ultrafast", "-tag:v", "hvc1", "-x265-params", params]
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={fps}", "-t", str(seconds),
         *codec, "-pix_fmt", "yuv420p", *extra, str(path)],
        check=True, timeout=120,
    )  # fmt: skip
    return str(path)


def _messages(job: DecodeJob) -> list[tuple]:
    return list(decode_job(job))


@needs_ffmpeg
@pytest.mark.parametrize("backend", ["decord", "pyav"])
def test_keyframe_table_of_a_real_file(tmp_path, backend):
    path = camera_file(tmp_path / "cam.mp4", seconds=6, gop=20)
    with VideoReader(path, 32, "squash", backend=backend) as r:
        assert r.info.num_frames == 60
        assert list(r.keyframes().keys) == [0, 20, 40]


@needs_ffmpeg
def test_fast_job_reads_keyframes_and_their_pixels_match_exact_decoding(tmp_path):
    path = camera_file(tmp_path / "cam.mp4", seconds=20, gop=20)  # 2 s GOPs, two 10 s segments
    fast = _messages(DecodeJob(0, path, 8, 32, "squash", 10.0, 2.0, sampling="fast"))
    exact = _messages(DecodeJob(0, path, 8, 32, "squash", 10.0, 2.0, sampling="exact"))
    f_segs = [m for m in fast if m[0] == "segment"]
    e_segs = [m for m in exact if m[0] == "segment"]
    assert [m[3] for m in e_segs] == [uniform_indices(0, 100, 8), uniform_indices(100, 200, 8)]
    # 28 and 70: their nearest keyframe is taken; 99: keyframe 100, which starts the next segment
    # (the same moving picture: no cut between), and which that segment does not decode again.
    assert f_segs[0][3] == [0, 20, 28, 40, 60, 70, 80, 100] and f_segs[1][3][0] == 100
    assert fast[0][2]["sampling"] == "fast" and exact[0][2]["sampling"] == "exact"
    assert not [m for m in fast if m[0] == "note"]  # good GOPs: nothing to warn about
    for idx, frames in ((f_segs[0][3], f_segs[0][4]), (e_segs[0][3], e_segs[0][4])):
        np.testing.assert_array_equal(frames, _every_frame(path, (32, 32), "BICUBIC")[idx])  # the very frames


def _every_frame(path: str, size: tuple[int, int], interpolation: str | None = None) -> np.ndarray:
    """Every frame of ``path`` by a plain full decode, scaled as ``GopReader`` scales."""
    import av

    with av.open(path) as c:
        stream = c.streams.video[0]
        return np.stack(
            [
                f.to_ndarray(format="rgb24", width=size[0], height=size[1], interpolation=interpolation)
                for f in c.decode(stream)
            ]
        )  # fmt: skip


@needs_ffmpeg
@pytest.mark.parametrize("threads", [1, 2])
def test_gop_reads_give_a_full_decodes_frames_and_decode_fewer(tmp_path, threads):
    """Wanted frames decode with the reference frames they need and nothing else (B-frames that
    nothing refers to are skipped), in any order, with repeats, across GOPs; frame threads too."""
    from vsearch.video.gop_reader import GopReader

    path = camera_file(tmp_path / "cam.mp4", seconds=12, gop=20)  # keyframes 0, 20, ..., 100; B-frames
    full = _every_frame(path, (48, 32))
    gop = GopReader.open(path, 0, 120, (48, 32), threads=threads)
    assert list(gop.keys) == [0, 20, 40, 60, 80, 100]
    for idx in ([0, 20, 40], [19, 1, 19, 37, 38, 39], [99, 100, 119], list(range(55, 66)), [7]):
        np.testing.assert_array_equal(gop.get(idx), full[idx])
    gop.decoded = 0
    gop.get([18, 38, 58, 78, 98, 118])  # the last frames of six GOPs: the costliest to reach
    assert gop.decoded < 0.85 * 6 * 19, gop.decoded  # non-reference B-frames were skipped
    gop.close()
    assert GopReader.open(path, 0, 119, (48, 32)) is None  # another count of the frames: not trusted


@needs_ffmpeg
def test_reader_reads_by_gop_only_with_its_own_keyframe_table(tmp_path):
    path = camera_file(tmp_path / "cam.mp4", seconds=6, gop=20)
    with VideoReader(path, 48, "squash") as r:
        assert not r.read_by_gop(KeyframeTable.build([0, 15, 30, 45], 60))  # not this file's keyframes
        assert r.read_by_gop(r.keyframes())
        np.testing.assert_array_equal(r.get([5, 25, 59]), _every_frame(path, (48, 48), "BICUBIC")[[5, 25, 59]])


@needs_ffmpeg
def test_sparse_keyframes_index_exactly_and_warn_once(tmp_path):
    path = camera_file(tmp_path / "sparse.mp4", seconds=30, gop=300)  # one keyframe in 30 s
    msgs = _messages(DecodeJob(0, path, 8, 32, "squash", 10.0, 2.0, sampling="fast"))
    notes = [m[2] for m in msgs if m[0] == "note"]
    assert notes == ["a single keyframe; sampled exactly"]
    assert msgs[0][0] == "info" and msgs[0][2]["sampling"] == "exact"  # recorded as what was done
    segs = [m for m in msgs if m[0] == "segment"]
    assert [m[3] for m in segs] == [uniform_indices(s, s + 100, 8) for s in (0, 100, 200)]
    assert msgs[-1] == ("done", 0)


@needs_ffmpeg
def test_thumbnails_are_made_at_display_size_in_the_worker(tmp_path):
    from vsearch.video.pictures import MAX_BYTES

    path = camera_file(tmp_path / "cam.mp4", seconds=4, gop=20, size="960x540")
    msgs = _messages(DecodeJob(0, path, 4, 32, "squash", 10.0, 2.0, sampling="fast", thumb_width=640))
    (seg,) = [m for m in msgs if m[0] == "segment"]
    jpeg, w, h = seg[5]
    assert (w, h) == (640, 360) and len(jpeg) <= MAX_BYTES and jpeg[:2] == b"\xff\xd8"
    assert seg[4].shape == (4, 32, 32, 3)  # the encoder's frames are unchanged


@needs_ffmpeg
def test_pyav_skips_the_gops_it_needs_only_the_keyframe_of(tmp_path):
    """PyAV (rotated phone files take it) decodes a fast plan without the skipped GOPs' other
    frames, and returns the very pixels a frame-by-frame decode gives for the same indices."""
    from vsearch.video.pyav_reader import PyAVSequential

    path = camera_file(tmp_path / "cam.mp4", seconds=20, gop=20)  # keyframes 0, 20, ..., 180
    table = KeyframeTable.build(range(0, 200, 20), 200)
    requests = [
        snap_to_keyframes(uniform_indices(s, s + 100, 8), s, s + 100, table) for s in (0, 100)
    ]  # [0, 20, 28, 40, 60, 70, 80, 99], [100, 120, 128, 140, 160, 170, 180, 199]
    planned, plain = PyAVSequential(path, (32, 32), 0), PyAVSequential(path, (32, 32), 0)
    planned.use_keyframes(table.keys)
    for idx in requests:
        np.testing.assert_array_equal(planned.get(idx), plain.get(idx))
    assert plain.decoded >= 200 - 2  # every frame up to the last wanted one (decoder delay aside)
    assert planned.decoded < 0.75 * plain.decoded, (planned.decoded, plain.decoded)
    planned.close()
    plain.close()


@needs_ffmpeg
def test_a_wrong_keyframe_table_is_dropped_not_trusted(tmp_path):
    from vsearch.video.pyav_reader import PyAVSequential

    path = camera_file(tmp_path / "cam.mp4", seconds=6, gop=20)  # real keyframes 0, 20, 40
    wrong, plain = PyAVSequential(path, (32, 32), 0), PyAVSequential(path, (32, 32), 0)
    wrong.use_keyframes([0, 15, 30, 45])
    idx = [0, 5, 25, 50]
    np.testing.assert_array_equal(wrong.get(idx), plain.get(idx))


@needs_ffmpeg
def test_an_open_gop_file_is_sampled_exactly_with_one_note(tmp_path):
    """Open GOPs: keyframe tables count in decode order, which is not the order frames are shown
    in (here keyframe 20 is listed as 17), so fast sampling would read the wrong frames."""
    from vsearch.video.pyav_reader import has_open_gops

    path = camera_file(tmp_path / "open.mp4", seconds=20, gop=20, extra=("-x264-params", "open-gop=1:bframes=3"))
    closed = camera_file(tmp_path / "closed.mp4", seconds=20, gop=20)
    assert has_open_gops(path, 0) and not has_open_gops(closed, 0)
    msgs = _messages(DecodeJob(0, path, 8, 32, "squash", 10.0, 2.0, sampling="fast"))
    assert [m[2] for m in msgs if m[0] == "note"] == [
        "open GOPs (frames shown before a keyframe refer to the GOP before it); sampled exactly"
    ]
    segs = [m for m in msgs if m[0] == "segment"]
    assert [m[3] for m in segs] == [uniform_indices(0, 100, 8), uniform_indices(100, 200, 8)]
    assert msgs[-1] == ("done", 0)


@needs_ffmpeg
def test_a_decoder_waiting_on_its_consumer_leaves_no_decord_reader_spinning(tmp_path):
    """A decord reader keeps a core spinning while idle after a read. Once the consumer has held
    a message past ``CONSUMER_WAIT_S``, each next one is handed over with the process's decord
    readers parked; unwrapped, they are not. (Decode jobs read most files by GOP now; decord
    reads what planned reads cannot be trusted on, and any reader that plans nothing.)"""
    from vsearch.video.jobs import CONSUMER_WAIT_S, parking

    path = camera_file(tmp_path / "cam.mp4", seconds=6, gop=20)

    def spinning_while_held(wrap) -> list[bool]:
        with VideoReader(path, 32, "squash") as r:
            assert r.info.backend == "decord" and r.decord_seeks_right

            def messages():
                for start in range(0, 60, 10):
                    yield ("segment", r.get([start, start + 5]))

            held = []
            for _msg in wrap(messages()):
                held.append(r._decord_dirty)
                time.sleep(2 * CONSUMER_WAIT_S)  # a consumer slower than decoding
            return held

    assert spinning_while_held(lambda m: m) == [True] * 6
    assert spinning_while_held(parking) == [True] + [False] * 5  # (the first had no wait before it)


def _seeks_wrong_file(tmp_path, codec: str) -> str:
    """12 s at 10 fps, a keyframe every 20 frames: open GOPs (H.264, HEVC) or MPEG-TS."""
    path = str(tmp_path / f"open-{codec}.mp4")
    if codec == "h264":
        camera_file(path, seconds=12, gop=20, extra=("-x264-params", "open-gop=1:bframes=3:b-pyramid=normal"))
    elif codec.startswith("mpegts"):
        # MPEG-TS (a camcorder's .m2ts, a broadcast recording): decord's seeks landed a GOP late
        # (frame i came back as frame i + 20), closed GOPs or open.
        path = path.replace(".mp4", ".ts")
        params = "open-gop=1:bframes=3" if codec == "mpegts-open" else "bframes=3"
        camera_file(path, seconds=12, gop=20, extra=("-x264-params", params, "-f", "mpegts"))
    else:
        camera_file(path, seconds=12, gop=20, hevc="open-gop=1:bframes=4")
    return path


@needs_ffmpeg
@pytest.mark.parametrize("codec", ["h264", "hevc", "mpegts", "mpegts-open"])
def test_forward_runs_go_on_where_the_last_stopped_and_give_a_full_decodes_frames(tmp_path, codec):
    """A shot scan's half-second pieces (``get_run``): consecutive runs across keyframes go on
    from where the decoder stopped (each frame decoded once, not each piece from its keyframe
    again), and every frame is a full decode's, open GOPs' leading frames included; a jump to a
    later GOP, a run that goes back, or a planned read in between starts afresh, right too."""
    from vsearch.video.pyav_reader import PyAVSequential

    path = _seeks_wrong_file(tmp_path, codec)
    every = PyAVSequential(path, None, 0).get(list(range(120)))
    with VideoReader(path) as r:
        assert r.read_by_gop_as_shown() is not None
        gop = r._gop
        before = gop.decoded
        for a, b in ((20, 34), (35, 49), (50, 64)):  # across keyframes 40 and 60
            np.testing.assert_array_equal(r.get_run(list(range(a, b + 1))), every[a : b + 1], err_msg=f"{a}-{b}")
        assert gop.decoded - before <= 45 + 4, gop.decoded - before  # 45 frames, a few of them early
        for a, b in ((95, 104), (30, 36), (37, 45)):  # a jump, a run back, then on from there
            np.testing.assert_array_equal(r.get_run(list(range(a, b + 1))), every[a : b + 1], err_msg=f"{a}-{b}")
        np.testing.assert_array_equal(r.get([5, 71]), every[[5, 71]])  # a planned read in between
        np.testing.assert_array_equal(r.get_run(list(range(46, 60))), every[46:60])
        np.testing.assert_array_equal(r.get_run(list(range(100, 120))), every[100:120])  # to the end of the file


@needs_ffmpeg
@pytest.mark.parametrize("codec", ["h264", "hevc", "mpegts", "mpegts-open"])
def test_files_decord_seeks_wrong_in_are_read_by_gop_with_the_frames_of_a_full_decode(tmp_path, codec):
    """Open GOPs and MPEG-TS: planned with the keyframes as shown, every frame read (alone, in
    sets, and the leading frames just before each keyframe, which refer to the GOP before in an
    open GOP) is the frame a full decode in order gives, at full size; a reader that plans
    nothing does the same (decord's seeks returned other frames there: frames 97-99 of the
    open-GOP H.264 file; every frame of the MPEG-TS ones, a GOP late)."""
    from vsearch.video.pyav_reader import PyAVSequential, has_open_gops

    path = _seeks_wrong_file(tmp_path, codec)
    assert has_open_gops(path, 0) == (codec != "mpegts")
    every = PyAVSequential(path, None, 0).get(list(range(120)))
    with VideoReader(path) as r:
        table = r.read_by_gop_as_shown()
        assert table is not None and table.keys.tolist() == list(range(0, 120, 20))
        leading = [k - d for k in range(20, 120, 20) for d in (3, 2, 1)]
        rng = np.random.default_rng(0)
        sets = [leading, *([int(i)] for i in leading[::4]), *(sorted(set(rng.integers(0, 120, 6).tolist())) for _ in range(8))]
        for idx in sets:
            np.testing.assert_array_equal(r.get(idx), every[idx], err_msg=str(idx))
    for idx in sets:  # a fresh reader that plans nothing (training, re-ranking) reads the same frames
        with VideoReader(path) as r:
            np.testing.assert_array_equal(r.get(idx), every[idx], err_msg=f"fresh reader: {idx}")


@needs_ffmpeg
def test_an_mpeg_ts_file_indexes_the_frames_it_was_asked_for(tmp_path):
    """A decode job on MPEG-TS: each sampled frame is the one a decode in order gives at the same
    size, up to the two scalers (bicubic and bilinear: at most 3 grey levels per frame, measured).
    decord returned them a GOP late: 25-32 levels off."""
    from vsearch.video.pyav_reader import PyAVSequential

    path = camera_file(tmp_path / "broadcast.ts", seconds=12, gop=20, extra=("-f", "mpegts"))
    segs = [m for m in decode_job(DecodeJob(0, path, 8, 64, "squash", 4.0, 1.0, sampling="exact")) if m[0] == "segment"]
    in_order = PyAVSequential(path, (64, 64), 0)
    assert len(segs) == 3
    for m in segs:
        off = np.abs(m[4].astype(int) - in_order.get(list(m[3])).astype(int)).mean(axis=(1, 2, 3))
        assert off.max() < 6, (m[3], off.round(1).tolist())


@needs_ffmpeg
def test_embed_takes_the_sampling_too(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    from vsearch.embedding import embed_videos
    from vsearch.models import load_encoder

    path = camera_file(tmp_path / "cam.mp4", seconds=10, gop=20)
    model = load_encoder(Path(__file__).resolve().parents[1] / "sample_data" / "model", device="cpu")
    exact = embed_videos(model, [path], workers=0).vectors[0]
    fast = embed_videos(model, [path], workers=0, sampling="fast").vectors[0]
    assert 0.95 <= float(exact @ fast) < 0.99999  # other frames (keyframes), the same picture
    bad = subprocess.run(
        [sys.executable, "-m", "vsearch_cli.main", "embed", path, "--out", str(tmp_path / "x.npy"), "--sampling", "fastest"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert bad.returncode == 1 and "unknown sampling 'fastest'" in bad.stderr and not (tmp_path / "x.npy").exists()


@needs_ffmpeg
def test_a_thumbnail_shows_the_middle_not_a_far_keyframe(tmp_path):
    """One keyframe in a 6 s clip: the thumbnail is the middle sampled frame, not frame 0."""
    from tests.videos import frame_index, write_indexed

    path = str(write_indexed(tmp_path / "one-gop.mp4", n=40, width=64, height=48))  # x264 default: keyframe 0 only
    msgs = _messages(DecodeJob(0, path, 8, 32, "squash", 10.0, 2.0, sampling="fast", thumb_width=640))
    (seg,) = [m for m in msgs if m[0] == "segment"]
    import io

    from PIL import Image

    jpeg, w, h = seg[5]
    picture = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))[None]
    assert (w, h) == (64, 48) and frame_index(picture[0]) == seg[3][len(seg[3]) // 2] != 0


@needs_ffmpeg
def test_a_rotated_open_gop_file_read_by_pyav_gets_the_frames_asked_for(tmp_path):
    """Rotated files go to PyAV, whose planned reads trust the keyframe table: an open-GOP file
    must not be planned with it (the table counts in decode order)."""
    from vsearch.video.pyav_reader import PyAVSequential

    src = camera_file(tmp_path / "open.mp4", seconds=20, gop=20, extra=("-x264-params", "open-gop=1:bframes=3"))
    rot = tmp_path / "rot.mp4"
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y", "-i", src, "-c", "copy", "-metadata:s:v:0", "rotate=180", str(rot)],
        check=True, timeout=60,
    )  # fmt: skip
    msgs = _messages(DecodeJob(0, str(rot), 8, 32, "squash", 10.0, 2.0, sampling="fast", thumb_width=640))
    assert msgs[0][2]["backend"] == "pyav" and msgs[0][2]["sampling"] == "exact"
    with VideoReader(str(rot)) as r:
        turn = r.header.orientation
    plain = PyAVSequential(str(rot), (32, 32), 0, orientation=turn)  # every frame, decoded in order
    for seg in (m for m in msgs if m[0] == "segment"):
        np.testing.assert_array_equal(seg[4], orient(plain.get(seg[3]), turn))


@needs_ffmpeg
@pytest.mark.parametrize("rotate", [0, 90])
def test_a_sampled_keyframe_gives_its_thumbnail_from_the_same_decode(tmp_path, rotate):
    """Fast sampling reads keyframes; the one a thumbnail shows is scaled a second time from the
    segment's own decode (no second read), with the very pixels a thumbnail reader gives."""
    from vsearch.video.pictures import encode_jpeg, thumbnail_decode_side

    path = camera_file(tmp_path / "cam.mp4", seconds=4, gop=20, size="480x270")
    if rotate:
        turned = tmp_path / "turned.mp4"
        subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", path, "-c", "copy", "-metadata:s:v:0",
                        f"rotate={rotate}", str(turned)], check=True, timeout=60)  # fmt: skip
        path = str(turned)
    side = thumbnail_decode_side(270, 480, 320) if rotate else thumbnail_decode_side(480, 270, 320)  # as shown
    with VideoReader(path, 32, "squash") as r, VideoReader(path, side, "crop") as t:
        assert r.read_by_gop(r.keyframes()) and t.read_by_gop(t.keyframes())
        frames, picture = r.get_with_picture([0, 5, 20], 20, side)
        np.testing.assert_array_equal(frames, r.get([0, 5, 20]))
        np.testing.assert_array_equal(picture, t.get([20])[0])
        assert picture.shape == ((480, 270, 3) if rotate else (180, 320, 3))  # upright, aspect kept
        assert r.get_with_picture([0, 5], 20, side)[1] is None  # not among the frames: read apart
        shown = t.get([20])[0]
    msgs = _messages(DecodeJob(0, path, 4, 32, "squash", 10.0, 2.0, sampling="fast", thumb_width=320))
    (seg,) = [m for m in msgs if m[0] == "segment"]
    assert seg[3] == [0, 20, 26, 39] and seg[5] == encode_jpeg(shown, max_width=320)  # keyframe 20, from the decode


def test_gop_reads_of_hevc_are_the_frames_asked_for(tmp_path):
    """HEVC (decoded by PyAV) read GOP by GOP: short closed GOPs with B-frames, every frame
    identified by its timestamp (the pictures carry their own index)."""
    from tests.videos import frame_index, write_hevc_indexed

    path = write_hevc_indexed(tmp_path / "hevc.mp4", "keyint=8:min-keyint=8:scenecut=0:open-gop=0:bframes=3:log-level=error")
    idx = [0, 5, 7, 9, 14, 18, 23, 27, 31, 36, 39, 1]
    with VideoReader(str(path)) as r:
        assert r.info.backend == "pyav" and r.read_by_gop(r.keyframes())
        assert [frame_index(f) for f in r.get(idx)] == idx
        assert r._gop is not None  # (read by GOP, not by the fallback)


def test_a_keyframe_may_serve_two_frames_when_asked():
    """``share=2`` (measured, not the default: see ``readplan.KEYFRAME_SHARE``): 42 and 85 share
    keyframe 60, 213 and 256 share 240, and the segment costs 64 decoded frames instead of 89."""
    table = camera_table()
    two = snap_to_keyframes(uniform_indices(0, 300, 8), 0, 300, table, share=2)
    assert two == [0, 60, 60, 120, 180, 240, 240, 299]
    assert decoded_frames(plan_reads(two, table)) == 1 + 1 + 1 + 1 + 60


@needs_ffmpeg
def test_a_segments_last_frame_crosses_into_the_next_only_where_no_cut_lies_between(tmp_path):
    """A 20 s film cut at 10 s (a keyframe, on the 2 s grid) and a 20 s film in one take, both
    in 10 s segments sampled ``fast``. Without a cut the first segment's last frame is keyframe
    300, which starts the second segment; at the cut it stays frame 299: fixed windows know no
    cuts and compare the two pictures, shots know the cut. Explicit segments (Ray's later
    tasks, a re-embedding) given the cuts sample the frames the whole-file job sampled."""
    from tests.test_shots import _spliced

    cut = _spliced(tmp_path / "cut.mp4", [("testsrc2", 10.0), ("smptebars", 10.0)], bframes=2)
    take = _spliced(tmp_path / "take.mp4", [("testsrc2", 20.0)], bframes=2)

    def sampled(path, segmenter, **kw):
        msgs = _messages(DecodeJob(0, str(path), 8, 32, "squash", 10.0, 2.0, sampling="fast", segmenter=segmenter, **kw))
        info = next(m[2] for m in msgs if m[0] == "info")
        plans = [p for m in msgs if m[0] in ("info", "plans") for p in m[3 if m[0] == "info" else 2]]
        segs = [m for m in msgs if m[0] == "segment"]
        return [m[3] for m in segs], [m[4] for m in segs], info, plans

    for segmenter, cuts in (("fixed", None), ("shots", [])):
        idx, frames, info, _ = sampled(take, segmenter)
        assert info.get("cuts") == cuts
        assert idx[0][-1] == 300 and idx[1][0] == 300, segmenter
        np.testing.assert_array_equal(frames[0][-1], _every_frame(str(take), (32, 32), "BICUBIC")[300])  # the very frame
    for segmenter, cuts in (("fixed", None), ("shots", [10.0])):
        idx, _, info, _ = sampled(cut, segmenter)
        assert info.get("cuts") == cuts
        assert idx[0][-1] == 299 and idx[1][0] == 300, segmenter  # the cut is never crossed
    # The segments on their own, as Ray's later tasks and `reembed` read them, given the cuts.
    for path in (take, cut):
        whole, _, info, plans = sampled(path, "shots")
        alone, _, _, _ = sampled(path, "shots", segments=tuple(tuple(p) for p in plans), cuts=tuple(info["cuts"]))
        assert alone == whole
    # A known cut is never crossed, however alike the pictures (here: a cut claimed in one take).
    _, _, _, plans = sampled(take, "shots")
    claimed, _, _, _ = sampled(take, "shots", segments=tuple(tuple(p) for p in plans), cuts=(10.0,))
    assert claimed[0][-1] == 299


@needs_ffmpeg
@pytest.mark.parametrize("hevc", [False, True])
def test_the_shot_scans_keyframes_are_shared_with_the_segments_pixel_for_pixel(tmp_path, hevc):
    """A streamed shots job hands the keyframes its scan decodes to its own reader's segments
    (``stream_shots(share=...)``): each shared keyframe is the very frame that reader returns,
    and the job's segments are those of a job that shares nothing, to the last pixel. HEVC reads
    through PyAV (bilinear), H.264 as decord scales (bicubic)."""
    from tests.test_shots import _spliced
    from vsearch.video.shots import stream_shots

    if hevc:
        path = camera_file(tmp_path / "hevc.mp4", seconds=12, gop=20, hevc="open-gop=0")
    else:
        path = str(_spliced(tmp_path / "cut.mp4", [("testsrc2", 6.0), ("smptebars", 6.0)], bframes=2))
    with VideoReader(path, 48, "crop") as r:
        table = r.keyframes()
        assert r.read_by_gop(table)
        kept: dict = {}
        scan = stream_shots(path, table, share=(r, kept))
        for _ in scan:
            pass
        assert sorted(kept) == table.keys.tolist()
        np.testing.assert_array_equal(np.stack([kept[k] for k in sorted(kept)]), r.get(table.keys.tolist()))

    def segments(streamed: bool) -> dict:
        job = DecodeJob(0, path, 8, 48, "crop", 4.0, 1.0, sampling="fast", segmenter="shots", stream_plans=streamed)
        return {m[2]: (m[3], m[4]) for m in _messages(job) if m[0] == "segment"}

    whole, streamed = segments(False), segments(True)
    assert whole.keys() == streamed.keys() and len(whole) >= 3
    for k in whole:
        assert whole[k][0] == streamed[k][0]
        np.testing.assert_array_equal(whole[k][1], streamed[k][1])
