"""Segments that follow the footage: cut detection on real rendered files (keyframe-first and
sequential reads), the segment plan around cuts, bad input (one long shot, a slideshow, a black
screen, a 0.5 s clip), the 0006 migration, and `index --segments / --resegment`."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import run_cli
from tests.old_stores import engine_at
from tests.videos import write_video
from vsearch.eval.moments import boundary_scores, cut_tolerance, match_cuts, render_films
from vsearch.store import Store
from vsearch.video.jobs import DecodeJob, decode_job
from vsearch.video.sampling import frame_times_from_fps
from vsearch.video.sampling import plan_segments as fixed_frame_plans
from vsearch.video.segmenting import final_plans, fixed_windows, plan_segments, segment_plans
from vsearch.video.shots import ShotSettings, detect_shots, find_cuts, gops_to_decode, histograms, select_cuts

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="Debian's ffmpeg writes the GOP test files")


# -- the plan ----------------------------------------------------------------------------------
def test_segments_end_at_cuts_and_long_shots_split_evenly():
    assert plan_segments(30.0, [7.0, 12.3], 10.0, 1.0) == [(0.0, 7.0), (7.0, 12.3), (12.3, 21.15), (21.15, 30.0)]
    # a cut outside the video, or at its very ends, is not a cut
    assert plan_segments(12.0, [-1.0, 0.0, 5.0, 12.0, 40.0], 10.0, 1.0) == [(0.0, 5.0), (5.0, 12.0)]


def test_a_sliver_joins_its_neighbour():
    # 0.3 s shot between two cuts: it joins the shot after it; a sliver at the end joins the one before
    assert plan_segments(12.0, [5.0, 5.3], 10.0, 1.0) == [(0.0, 5.0), (5.0, 12.0)]
    assert plan_segments(12.0, [5.0, 11.6], 10.0, 1.0) == [(0.0, 5.0), (5.0, 12.0)]
    assert plan_segments(12.0, [0.4, 6.0], 10.0, 1.0) == [(0.0, 6.0), (6.0, 12.0)]


def test_no_cut_gives_the_fixed_window_plan():
    assert plan_segments(25.0, [], 10.0, 1.0) == [(0.0, 10.0), (10.0, 20.0), (20.0, 25.0)] == fixed_windows(25.0, 10.0, 1.0)
    assert plan_segments(20.5, [], 10.0, 1.0) == [(0.0, 10.0), (10.0, 20.5)]  # a 0.5 s tail joins
    assert plan_segments(0.5, [], 10.0, 1.0) == [(0.0, 0.5)]  # a 0.5 s clip is one segment
    assert plan_segments(0.5, [0.25], 10.0, 1.0) == [(0.0, 0.5)]
    assert plan_segments(0.0, [], 10.0, 1.0) == []
    with pytest.raises(ValueError):
        plan_segments(10.0, [], 0.0, 1.0)
    # On frames: exactly what a fixed store plans, so switching to shots re-embeds nothing uncut.
    times = frame_times_from_fps(253, 10.0)
    assert segment_plans(times, [], 10.0, 1.0) == fixed_frame_plans(times, 10.0, 1.0)
    assert segment_plans(times, [0.3, 25.0], 10.0, 1.0) == fixed_frame_plans(times, 10.0, 1.0)


def test_a_cut_every_frame_does_not_make_a_segment_per_frame():
    cuts = np.arange(1, 250) / 25.0  # a slideshow at 25 fps, 10 s
    plan = plan_segments(10.0, cuts, 10.0, 1.0)
    assert len(plan) <= 10 and all(b - a >= 1.0 - 1e-9 for a, b in plan)


@settings(max_examples=200, deadline=None)
@given(
    duration=st.floats(0.05, 120.0),
    cuts=st.lists(st.floats(-5.0, 130.0), max_size=40),
    seg=st.floats(0.5, 30.0),
    min_s=st.floats(0.0, 3.0),
)
def test_plans_tile_the_video_without_empty_segments(duration, cuts, seg, min_s):
    plan = plan_segments(duration, cuts, seg, min_s)
    assert plan[0][0] == 0.0 and plan[-1][1] == pytest.approx(duration)
    assert all(b > a for a, b in plan)
    assert all(plan[i][1] == plan[i + 1][0] for i in range(len(plan) - 1))
    if len(plan) > 1:
        assert all(b - a >= min(min_s, seg / 2) - 1e-9 for a, b in plan[:-1])
    times = frame_times_from_fps(max(1, int(duration * 10)), 10.0)
    frames = segment_plans(times, cuts, seg, min_s)
    assert frames[0].start_frame == 0 and frames[-1].end_frame == len(times)
    assert all(p.num_frames > 0 and p.end_s > p.start_s for p in frames)
    assert all(frames[i].end_frame == frames[i + 1].start_frame for i in range(len(frames) - 1))


@settings(max_examples=200, deadline=None)
@given(
    duration=st.floats(0.5, 120.0),
    cuts=st.lists(st.floats(0.0, 120.0), max_size=30),
    seg=st.floats(0.5, 30.0),
    min_s=st.floats(0.0, 3.0),
    fps=st.sampled_from([10.0, 29.97]),
)
def test_plans_settled_from_the_cuts_so_far_begin_the_whole_plan(duration, cuts, seg, min_s, fps):
    """A scan under way knows the cuts up to a point: the plans it sends then (final_plans) are
    the first plans of the whole file's, whatever cuts come later."""
    times = frame_times_from_fps(max(1, int(duration * fps)), fps)
    cuts = sorted(cuts)
    whole = segment_plans(times, cuts, seg, min_s)
    for k in range(len(cuts) + 1):
        early = final_plans(times, cuts[:k], seg, min_s)
        assert whole[: len(early)] == early


# -- the detector on frames --------------------------------------------------------------------
def _flat(colours, side=16) -> np.ndarray:
    return np.stack([np.full((side, side, 3), c, np.uint8) for c in colours])


def _cuts(frames, fps=10.0, **kw) -> list[int]:
    s = ShotSettings(**kw)
    return select_cuts(find_cuts(histograms(frames), fps, s), len(frames), fps, s)


def test_a_hard_cut_is_found_and_a_flash_is_not():
    a, b = [40] * 30, [200] * 30
    assert _cuts(_flat(a + b)) == [30]
    assert _cuts(_flat(a[:15] + [250] + a[:14] + b)) == [30]  # a one-frame flash inside the first shot


def test_motion_noise_and_a_slideshow_are_not_cuts():
    rng = np.random.default_rng(0)
    x = np.arange(64)[None, :, None]
    pan = np.stack([np.repeat(((x + 3 * t) * 4 % 256).astype(np.uint8), 64, axis=0).repeat(3, axis=2) for t in range(60)])
    assert _cuts(pan) == []
    noise = np.clip(120 + rng.normal(0, 25, (60, 32, 32, 3)), 0, 255).astype(np.uint8)
    assert _cuts(noise) == []
    slideshow = rng.integers(0, 256, (60, 1, 1, 3), dtype=np.uint8).repeat(16, axis=1).repeat(16, axis=2)
    assert _cuts(slideshow) == []  # a new picture every frame: no frame stands out, no shot per frame


def test_cuts_closer_than_the_minimum_shot_keep_the_stronger():
    between = np.full((3, 10, 10, 3), 40, np.uint8)
    between[:, :4] = 230  # 40% of the picture changes into the 0.3 s shot, the rest after it
    frames = np.concatenate([_flat([40] * 20, 10), between, _flat([230] * 20, 10)])
    assert _cuts(frames, min_shot_s=0.6) == [23]  # the bigger step wins
    assert _cuts(frames, min_shot_s=0.2) == [20, 23]


def _gop_sizes(gops: int, gop: int = 30, base: int = 4000, rng_seed: int = 0) -> np.ndarray:
    """Packet sizes of ``gops`` GOPs of ``gop`` frames: a big keyframe, then P/B-like packets."""
    rng = np.random.default_rng(rng_seed)
    sizes = np.where(np.arange(gops * gop) % 3 == 0, base * 2, base).astype(np.float64)
    sizes *= rng.uniform(0.85, 1.15, len(sizes))
    sizes[::gop] = base * 8
    return sizes.astype(np.int64)


def test_packet_sizes_skip_gops_of_sustained_motion():
    points = np.arange(0, 181, 30)  # 6 GOPs of 30 frames, keyframes on a regular grid
    sizes = _gop_sizes(6)
    motion = np.full(6, 0.25)  # every keyframe differs as much as after a cut: a zoom
    assert gops_to_decode(points, motion, None) == [0, 1, 2, 3, 4, 5]  # without sizes: decode them all
    assert gops_to_decode(points, motion, sizes) == []
    # A frame coded as if nothing came before it (the first one after a cut) stands out.
    spiked = sizes.copy()
    spiked[100] = 4000 * 8
    assert gops_to_decode(points, motion, spiked) == [3]
    # A cut to a plain picture: the packets' level falls.
    plain = sizes.copy()
    plain[70:90] = 40
    assert gops_to_decode(points, motion, plain) == [2]
    # Flat packets but a change the neighbours do not show: a cut exactly at the next keyframe.
    at_key = np.array([0.2, 0.7, 0.25, 0.2, 0.25, 0.2])  # a cut at frame 60, in a zoom
    assert gops_to_decode(points, at_key, sizes) == [1]
    # A keyframe off the grid (an encoder's scene-cut keyframe) is worth a look.
    off = np.array([0, 30, 50, 80, 110, 140, 170])
    off_sizes = _gop_sizes(6)[:170]
    off_sizes[off_sizes > 4000 * 4] = 4000  # keyframes at the new places
    off_sizes[off[:-1]] = 4000 * 8
    assert gops_to_decode(off, np.full(6, 0.25), off_sizes) == [1]  # the GOP that ends at frame 50
    # ... also when that keyframe is the file's last (the scan then stops its points there).
    late = np.array([0, 30, 60, 90, 120, 140])
    late_sizes = _gop_sizes(6)[:170]
    late_sizes[late_sizes > 4000 * 4] = 4000
    late_sizes[late] = 4000 * 8
    assert gops_to_decode(late, np.full(5, 0.25), late_sizes) == [4]
    # Small changes are never decoded, whatever the packets say.
    assert gops_to_decode(points, np.full(6, 0.05), spiked) == []


def test_a_scan_read_in_pieces_finds_what_a_whole_read_finds():
    """The sequential scan decides each step once the frames its tests look at are read; pieces of
    7 frames give the cuts one read of everything gives (cuts, a flash and motion across pieces)."""
    from vsearch.video.shots import scan, scan_stream

    # A cut at frame 28 (a piece starts there), a one-frame flash at 48 (the last frame of a
    # piece: the picture it returns to is in the next one), then 37% of the picture changes at
    # 61 and the rest at 64: the two compete (0.3 s apart), and 64, the bigger step, wins.
    frames = _flat([40] * 28 + [200] * 20 + [250] + [200] * 12 + [90] * 40)
    frames[61:64] = 200
    frames[61:64, :6] = 90
    read = lambda idx: frames[idx]  # noqa: E731
    starts = np.arange(len(frames)) / 10.0
    whole = _cuts(frames)
    for chunk in (7, 120):
        found = scan(read, len(frames), 10.0, starts, settings=ShotSettings(chunk=chunk))
        assert found.cuts == whole and found.method == "sequential"
    # And as it goes: each settled stretch's cuts are the whole scan's up to there.
    for frontier, cuts in scan_stream(read, len(frames), 10.0, starts, settings=ShotSettings(chunk=7)):
        assert cuts == [c for c in whole if c <= frontier]


# -- real files --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def films(tmp_path_factory):
    return render_films(tmp_path_factory.mktemp("films"), count=3, seed=5)


def _scores(films, found_by_film) -> dict:
    counts = np.sum(
        [match_cuts(found, [b for _a, b, _s in f.scenes[:-1]], cut_tolerance(10)) for f, found in zip(films, found_by_film)],
        axis=0,
    )
    return boundary_scores(*map(int, counts))


def test_rendered_films_cuts_are_found(films):
    """Known cuts in real H.264 files (one keyframe per cut or fewer: read sequentially)."""
    scans = [detect_shots(f.path) for f in films]
    assert all(s.method == "sequential" for s in scans)
    scores = _scores(films, [s.times for s in scans])
    assert scores["cuts"] == 9 and scores["f1"] >= 0.85, scores


@needs_ffmpeg
@pytest.mark.parametrize(
    "codec, options, backend",
    [
        ("libx264", ["-preset", "veryfast", "-g", "20", "-keyint_min", "20", "-sc_threshold", "0", "-bf", "2"], "decord"),
        ("libx265", ["-x265-params", "keyint=20:min-keyint=20:scenecut=0:open-gop=0:log-level=error"], "pyav"),
    ],
    ids=["h264-decord", "hevc-pyav"],
)
def test_two_second_gops_decode_keyframes_and_only_the_gops_that_change(films, tmp_path, codec, options, backend):
    from vsearch.video.decode import VideoReader

    film = films[0]
    cam = tmp_path / "cam.mp4"
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y", "-i", film.path, "-c:v", codec, *options, "-pix_fmt", "yuv420p", str(cam)],
        check=True, timeout=120,
    )  # fmt: skip
    with VideoReader(str(cam)) as r:
        table, n = r.keyframes(), r.info.num_frames
        assert r.info.backend == backend
    assert list(table.keys[:3]) == [0, 20, 40]
    keyed = detect_shots(str(cam), table)
    plain = detect_shots(str(cam))
    assert keyed.method == "keyframes" and plain.method == "sequential"
    assert keyed.times == plain.times and len(keyed.times) >= 2
    assert keyed.decoded < n * 0.6 and plain.decoded == n
    assert match_cuts(keyed.times, [b for _a, b, _s in film.scenes[:-1]], 0.1)[2] <= 1


def _spliced(path, scenes: list[tuple[str, float]], bframes: int, extra: tuple = ()) -> Path:
    """Scenes of ffmpeg's test sources (``"name[=options]"``, seconds) cut together at 320x180,
    30 fps, in H.264 with a keyframe exactly every 2 s (no scene-cut keyframes) and B-frames."""
    inputs, chains = [], []
    for i, (source, seconds) in enumerate(scenes):
        name, _, options = source.partition("=")
        inputs += ["-f", "lavfi", "-i", f"{name}=size=320x180:rate=30" + (f":{options}" if options else "")]
        chains.append(f"[{i}]trim=0:{seconds:g},setpts=PTS-STARTPTS,format=yuv420p[s{i}]")
    graph = ";".join(chains) + ";" + "".join(f"[s{i}]" for i in range(len(scenes))) + f"concat=n={len(scenes)}:v=1[v]"
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y", *inputs, "-filter_complex", graph, "-map", "[v]", "-c:v", "libx264",
         "-preset", "veryfast", "-g", "60", "-keyint_min", "60", "-sc_threshold", "0", "-bf", str(bframes), *extra,
         "-pix_fmt", "yuv420p", str(path)],
        check=True, timeout=120,
    )  # fmt: skip
    return Path(path)


@needs_ffmpeg
def test_gops_of_a_zoom_are_not_decoded_to_look_for_cuts(tmp_path):
    """A fractal zoom changes every 2 s GOP's keyframes as much as a cut does; its packets show no
    cut, so only the GOP with the cut (at 9.3 s, inside a GOP) and keyframes are decoded."""
    from vsearch.video.decode import VideoReader

    path = _spliced(tmp_path / "zoom.mp4", [("mandelbrot=start_scale=3", 9.3), ("testsrc2", 2.7)], bframes=2)
    with VideoReader(str(path)) as r:
        table = r.keyframes()
    keyed, plain = detect_shots(str(path), table), detect_shots(str(path))
    assert keyed.method == "keyframes" and keyed.times == plain.times == [9.3]
    # 5 of the 6 GOPs change by more than the candidate threshold; without the packet sizes all
    # 5 were decoded (300+ frames), and the last frame (its whole GOP's reference frames) too.
    assert keyed.decoded <= 2 * 61 + len(table.keys), keyed.decoded  # the keyframes, two GOPs (both ends)


@needs_ffmpeg
def test_an_open_gop_file_is_cut_where_its_shots_change(tmp_path):
    """Open GOPs (x264's open-gop, B-frames): the frames shown just before a keyframe come after
    it in the file. decord's seeks shifted such a file's frames by the leading ones, so its scan
    put the cuts 2-3 frames early (7.233 and 16.3 s for 7.3 and 16.4). The keyframes as shown and
    planned reads give the cuts where the pictures change, for the streamed job and the scan."""
    path = _spliced(
        tmp_path / "open.mp4", [("testsrc2", 7.3), ("mandelbrot", 9.1), ("testsrc", 4)], bframes=3,
        extra=("-x264-params", "open-gop=1"),
    )
    for stream in (False, True):
        job = DecodeJob(0, str(path), 4, 32, "squash", 10.0, 1.0, segmenter="shots", sampling="fast", stream_plans=stream)
        msgs = list(decode_job(job))
        assert msgs[-1] == ("done", 0), msgs[-1]
        info = {k: v for m in msgs if m[0] in ("info", "plans") for k, v in m[-1 if m[0] == "plans" else 2].items()}
        plans = [p for m in msgs if m[0] in ("info", "plans") for p in m[3 if m[0] == "info" else 2]]
        assert info["cuts"] == [7.3, 16.4], stream
        assert {219, 492} <= {p[1] for p in plans}, plans  # shots start at the cut frames


def test_streamed_plans_are_the_whole_files_and_come_before_the_scan_ends(films):
    """stream_plans: the same plans, cuts and frames as planning after the whole scan, but the
    first shot's segment is sent before the last shot's cut is known."""
    film = films[0]

    def run(stream):
        job = DecodeJob(0, film.path, 4, 32, "squash", 10.0, 1.0, segmenter="shots", stream_plans=stream)
        msgs = list(decode_job(job))
        assert msgs[-1] == ("done", 0), msgs[-1]
        plans, info = [], {}
        for m in msgs:
            if m[0] == "info":
                plans += m[3]
                info.update(m[2])
            elif m[0] == "plans":
                plans += m[2]
                info.update(m[3])
        frames = {m[2]: (list(m[3]), int(m[4].sum())) for m in msgs if m[0] == "segment"}
        return msgs, plans, info["cuts"], frames

    msgs, plans, cuts, frames = run(True)
    assert (plans, cuts, frames) == run(False)[1:] and len(cuts) >= 2
    kinds = [m[0] for m in msgs]
    last_plans = len(kinds) - 1 - kinds[::-1].index("plans")
    assert kinds.index("segment") < last_plans  # a segment went out while the scan went on


def _plans(path, segmenter="shots", **kw):
    msgs = list(decode_job(DecodeJob(0, str(path), 2, 32, "squash", 10.0, 1.0, segmenter=segmenter, **kw)))
    assert msgs[-1] == ("done", 0), msgs[-1]
    info = msgs[0]
    return info[2], [(p[1], p[2]) for p in info[3]], msgs


def test_bad_input_gets_sensible_segments(tmp_path):
    """One long shot, a black screen, a slideshow, a 0.5 s clip: no crash, no empty segment,
    the fixed plan wherever there is no cut."""
    rng = np.random.default_rng(1)
    x = np.arange(48)[None, :, None]
    long_take = np.stack([np.repeat(((x + t) * 5 % 256).astype(np.uint8), 32, axis=0).repeat(3, axis=2) for t in range(250)])
    files = {
        "long": write_video(tmp_path / "long.mp4", long_take, fps=10),  # 25 s, one slow pan
        "black": write_video(tmp_path / "black.mp4", np.zeros((120, 32, 48, 3), np.uint8), fps=10),
        "slides": write_video(
            tmp_path / "slides.mp4", rng.integers(0, 256, (80, 1, 1, 3), dtype=np.uint8).repeat(32, 1).repeat(48, 2), fps=10
        ),
        "short": write_video(tmp_path / "short.mp4", np.full((5, 32, 48, 3), 90, np.uint8), fps=10),
    }
    for name, path in files.items():
        info, shots, _ = _plans(path)
        _, fixed, _ = _plans(path, "fixed")
        assert all(b > a for a, b in shots), name
        assert info["cuts"] == [] and shots == fixed, (name, info["cuts"])
    assert _plans(files["long"])[1] == [(0, 100), (100, 200), (200, 250)]
    assert _plans(files["short"])[1] == [(0, 5)]


def test_a_plan_that_stays_is_not_decoded_again(films):
    info, plans, _ = _plans(films[0].path)
    assert len(plans) >= 4 and len(info["cuts"]) >= 2
    again, sent, msgs = _plans(films[0].path, known_plans=tuple(plans))
    assert again["same_plan"] and sent == [] and not [m for m in msgs if m[0] == "segment"]
    other, sent, msgs = _plans(films[0].path, known_plans=((0, 10),))
    assert "same_plan" not in other and sent == plans and len([m for m in msgs if m[0] == "segment"]) == len(plans)


# -- store and command line --------------------------------------------------------------------
def test_a_store_at_0005_upgrades_as_fixed(tmp_path):
    from vsearch.store import db as dbmod

    root = tmp_path / "old"
    engine = engine_at(root, "0005")
    with engine.begin() as c:  # a store as 0005 wrote it: settings, one video
        c.exec_driver_sql(
            "INSERT INTO meta VALUES ('generation','1'),('segment_seconds','10.0'),('min_tail_seconds','1.0')"
        )  # fmt: skip
        c.exec_driver_sql(
            "INSERT INTO videos (id, path, size, mtime_ns, content_hash, duration, fps, num_frames, width, height, "
            "indexed_at, sampling) VALUES (1, X'2F762F612E6D7034', 10, 1, 'h', 5.0, 10.0, 50, 64, 48, '2026-01-01 00:00:00', 'exact')"
        )
    engine.dispose()
    with Store.open(root) as s:
        assert dbmod.current_revision(s.engine) == dbmod.SCHEMA_HEAD == "0006"
        assert s.segmenter() == "fixed" and s.status()["segmenter"] == "fixed"
        assert s.cuts(1) is None and s.count_videos() == 1
    with Store.open(tmp_path / "new") as s:  # a new library store: fixed until told
        assert s.segmenter() == "fixed"


@pytest.mark.slow
def test_index_segments_and_resegment(films, tmp_path):
    vids = tmp_path / "vids"
    vids.mkdir()
    for f in films[:2]:
        shutil.copy(f.path, vids)
    store = tmp_path / "store"
    args = ("--store", store, "--model", "tiny-clip", "--workers", "0")
    first = json.loads(run_cli("index", vids, *args, "--json").stdout)
    assert first["segmenter"] == "shots" and first["counts"]["indexed"] == 2  # a new store cuts at shots
    with Store.open(store, create=False) as s:
        stored = s.known_videos([str(vids)])
        cuts = {p: s.cuts(k.id) for p, k in stored.items()}
        assert s.segmenter() == "shots" and all(len(c) >= 2 for c in cuts.values())
        planned = sum(len(plan_segments(f.scenes[-1][1], cuts[str(vids / f.path.split("/")[-1])], 10.0, 1.0)) for f in films[:2])
        assert s.count_segments() == first["counts"]["segments"] == planned
        before = s.status()
    assert before["videos_with_cuts"] == 2
    res = run_cli("index", vids, *args, "--segments", "fixed", code=1)  # another mode: one line, nothing changed
    assert "--resegment" in res.output and len(res.output.strip().splitlines()) == 1
    assert "cut at shots" in run_cli("status", "--store", store).stdout
    fixed = json.loads(run_cli("index", vids, *args, "--segments", "fixed", "--resegment", "--json").stdout)
    assert fixed["segmenter"] == "fixed" and fixed["counts"]["replanned"] == 2 == fixed["counts"]["resegmented"]
    windows = sum(len(fixed_windows(f.scenes[-1][1], 10.0, 1.0)) for f in films[:2])
    with Store.open(store, create=False) as s:
        assert s.segmenter() == "fixed" and s.count_segments() == windows
        assert s.status()["videos_with_cuts"] == 0 and s.check().ok
    assert "fixed 10 s windows" in run_cli("status", "--store", store).stdout
    again = json.loads(run_cli("index", vids, *args, "--json").stdout)
    assert again["model_loaded"] is False  # the store keeps its mode: nothing to do
    with Store.open(store, create=False) as s:  # as a `--resegment --segments shots` stopped early leaves it
        s.set_segmenter("shots", resegment=True)
        s.set_setting("resegment", "pending")
    done = json.loads(run_cli("index", vids, *args, "--json").stdout)  # no flag: the next run finishes it
    assert done["counts"]["replanned"] == 2 == done["counts"]["resegmented"] and done["segmenter"] == "shots"
    with Store.open(store, create=False) as s:
        assert s.status()["videos_with_cuts"] == 2 and s.count_segments() == planned and s.get_setting("resegment") == "done"


def test_embed_segments_can_follow_shots(films, tmp_path):
    out = tmp_path / "seg.npy"
    film = films[0]
    run_cli("embed", film.path, "--model", "tiny-clip", "--segments", "--segmenter", "shots", "--out", out, "--workers", "0")
    rows = json.loads(out.with_suffix(".json").read_text())["rows"]
    cuts = detect_shots(film.path).times
    planned = [a for a, _b in plan_segments(film.scenes[-1][1], cuts, 10.0, 1.0)]
    assert len(cuts) >= 2 and [r["start"] for r in rows] == pytest.approx(planned, abs=0.1)  # (to a frame)
    res = run_cli("embed", film.path, "--model", "tiny-clip", "--segments", "--segmenter", "scenes", "--out", out, code=1)
    assert "unknown segmenter 'scenes'" in res.output


def test_resegment_without_a_store_is_refused_and_creates_nothing(tmp_path):
    videos = Path(__file__).resolve().parents[1] / "sample_data" / "videos"
    res = run_cli("index", videos, "--resegment", "--store", tmp_path / "none", "--model", "tiny-clip", code=1)
    assert "no vsearch store at" in res.output and "re-segment" in res.output
    assert len(res.output.strip().splitlines()) == 1 and not (tmp_path / "none").exists()
