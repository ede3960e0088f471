"""Search past the exact index: filters in both regimes at 100,000 segments against brute force,
k distinct videos when one video owns the top, composed queries on sample_data, and the one-line
refusals of bad filter input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from vsearch.errors import QueryError
from vsearch.filters import SearchFilter, parse_date
from vsearch.search import RESTRICT_BELOW_SHARE, rank_segments
from vsearch.store import SegmentWrite, Store, VideoWrite
from vsearch_cli.main import app

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"
DIM = 32
PER_VIDEO = 10


class Enc:
    fingerprint, name, source = "f" * 32, "filters-test", "test"

    class spec:  # noqa: N801 - the fields the store records
        @staticmethod
        def as_dict():
            return {"family": "test", "dim": DIM}


def topics(n: int, seed: int = 0) -> np.ndarray:
    """Segments of videos in 200 topics (segments of a video close together), unit length."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(200, DIM))
    videos = n // PER_VIDEO
    v = centres[rng.integers(0, 200, videos)] + 0.5 * rng.normal(size=(videos, DIM))
    x = np.repeat(v, PER_VIDEO, axis=0) + 0.2 * rng.normal(size=(n, DIM))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


HELD_OUT = 300  # segments of 30 more videos, drawn like the stored ones and never stored


@pytest.fixture(scope="module")
def big_store(tmp_path_factory):
    """100,000 segments (10,000 videos) through the store's own commit path, as IVF-SQ8.

    Folders: /lib/aNN/ (100 folders of 100 videos). Durations cycle 10..109 s; recording
    times one hour apart from 2020-01-01.
    """
    root = tmp_path_factory.mktemp("big") / "s"
    st = Store.open(root)
    rec = st.bind_encoder(Enc())
    drawn = topics(100_000 + HELD_OUT)
    vecs, queries = drawn[:100_000], drawn[100_000 :: PER_VIDEO]
    t0 = parse_date("2020-01-01")
    batch = []
    for v in range(10_000):
        info = {"duration": 10.0 + v % 100, "fps": 1, "num_frames": 10, "width": 1, "height": 1, "creation_time": t0 + 3600 * v}
        segs = [SegmentWrite(j, j, j + 1, j, j + 1, [j], vecs[v * PER_VIDEO + j]) for j in range(PER_VIDEO)]
        batch.append(VideoWrite(f"/lib/a{v // 100:02d}/v{v:05d}.mp4", 1, 1, f"h{v}", info, segs))
        if len(batch) == 1000:
            st.commit(rec.id, batch)
            batch = []
    st.rebuild_index("ivf-sq8")
    yield st, vecs, queries
    st.close()


def brute_force(vecs: np.ndarray, q: np.ndarray, keep: np.ndarray, k: int) -> list[int]:
    """Segment ids (1-based, commit order) of the exact filtered top k."""
    scores = vecs @ q
    scores[~keep] = -np.inf
    order = np.argsort(-scores, kind="stable")[:k]
    return [int(i) + 1 for i in order if np.isfinite(scores[i])]


def video_filter_mask(flt: SearchFilter) -> np.ndarray:
    v = np.arange(100_000) // PER_VIDEO
    dur = 10.0 + v % 100
    rec = parse_date("2020-01-01") + 3600.0 * v
    keep = np.ones(100_000, bool)
    if flt.under:
        folders = {int(p.rsplit("/a", 1)[1]) for p in flt.under}
        keep &= np.isin(v // 100, list(folders))
    if flt.min_duration is not None:
        keep &= dur >= flt.min_duration
    if flt.max_duration is not None:
        keep &= dur <= flt.max_duration
    if flt.after is not None:
        keep &= rec >= flt.after
    if flt.before is not None:
        keep &= rec < flt.before
    return keep


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize(
    "flt",
    [
        SearchFilter.parse(under=["/lib/a07"]),  # 1% (restricted search)
        SearchFilter.parse(min_duration=50, max_duration=50),  # 1% by duration
        SearchFilter.parse(under=["/lib/a03"], max_duration=19),  # 0.1%: 10 videos
        SearchFilter.parse(after="2020-03", before="2020-04"),  # 744 videos: 7.4%
        SearchFilter.parse(min_duration=30),  # 80% (post-filter)
        SearchFilter.parse(under=[f"/lib/a{i:02d}" for i in range(50)], after="2020-02"),  # ~42%
    ],
    ids=["folder-1pct", "duration-1pct", "folder+duration-0.1pct", "dates-7pct", "duration-80pct", "folders+date-42pct"],
)
def test_filtered_search_matches_brute_force_in_both_regimes(big_store, flt):
    st, vecs, queries = big_store
    keep = video_filter_mask(flt)
    share = keep.mean()
    assert st.count_segments(flt) == keep.sum()
    index = st.vector_index()
    assert index.kind == "ivf-sq8"
    recalls, video_recalls = [], []
    for q in queries:  # a segment of a new video of the same collection (never stored)
        got = rank_segments(st, index, q[None], 10, segments=True, filters=flt)
        want = brute_force(vecs, q, keep, 10)
        recalls.append(len({h.segment_id for h in got} & set(want)) / len(want))
        for h in got:  # every hit passes the filter
            v = (h.segment_id - 1) // PER_VIDEO
            assert keep[h.segment_id - 1], (h.path, v)
        best = rank_segments(st, index, q[None], 10, segments=False, filters=flt)
        assert len({h.video_id for h in best}) == len(best) == min(10, keep.sum() // PER_VIDEO)
        # The best-per-video answer against brute force: the 10 videos of the exact ranking.
        exact_videos: list[int] = []
        for sid in brute_force(vecs, q, keep, 400):
            vid = (sid - 1) // PER_VIDEO
            if vid not in exact_videos:
                exact_videos.append(vid)
        got_videos = {(h.segment_id - 1) // PER_VIDEO for h in best}
        video_recalls.append(len(got_videos & set(exact_videos[:10])) / min(10, len(exact_videos)))
    regime = "restricted" if share < RESTRICT_BELOW_SHARE else "post-filter"
    assert np.mean(recalls) >= 0.95, (regime, share, np.mean(recalls))
    assert np.mean(video_recalls) >= 0.95, (regime, share, np.mean(video_recalls))


@pytest.mark.timeout(300)
def test_k_distinct_videos_when_one_video_owns_thousands_of_the_top_segments(tmp_path):
    st = Store.open(tmp_path / "s")
    rec = st.bind_encoder(Enc())
    rng = np.random.default_rng(0)
    target = np.zeros(DIM, np.float32)
    target[0] = 1.0
    near = target + 0.05 * rng.normal(size=(10_000, DIM)).astype(np.float32)
    near /= np.linalg.norm(near, axis=1, keepdims=True)
    info = {"duration": 10_000.0, "fps": 1, "num_frames": 10_000, "width": 1, "height": 1}
    giant = VideoWrite("/v/giant.mp4", 1, 1, "g", info, [SegmentWrite(j, j, j + 1, j, j + 1, [j], near[j]) for j in range(10_000)])
    others = []
    for i in range(30):
        v = target + (0.5 + 0.05 * i) * rng.normal(size=DIM).astype(np.float32)  # all further than the giant's segments
        v /= np.linalg.norm(v)
        others.append(VideoWrite(f"/v/o{i:02d}.mp4", 1, 1, f"o{i}", info | {"duration": 1.0}, [SegmentWrite(0, 0, 1, 0, 1, [0], v)]))
    st.commit(rec.id, [giant, *others])
    for kind in ("flat", "ivf-sq8"):
        st.rebuild_index(kind)
        hits = rank_segments(st, st.vector_index(), target[None], 10)
        assert len(hits) == 10 and len({h.video_id for h in hits}) == 10, kind
        assert hits[0].path == "/v/giant.mp4"
        # All 31 videos when k asks for more than there are.
        assert len(rank_segments(st, st.vector_index(), target[None], 50)) == 31
    st.close()


def test_dates_durations_and_paths_parse_or_refuse_in_one_line():
    assert parse_date("2024") == parse_date("2024-01-01") == parse_date("2024-01-01T00:00:00Z")
    assert parse_date("2024-06") == parse_date("2024-06-01")
    assert parse_date("2024-06-01T02:00+02:00") == parse_date("2024-06-01")
    f = SearchFilter.parse(under=["~/x", "rel"], min_duration=0, after="2023", before="2024")
    assert f.under[0].endswith("/x") and f.under[1].startswith("/") and not f.empty
    assert f.matches(f.under[0] + "/a.mp4", 5.0, parse_date("2023-07")) and not f.matches(f.under[0] + "x/a.mp4", 5.0, parse_date("2023-07"))
    assert not f.matches(f.under[1], 5.0, parse_date("2024-01-01"))  # before is exclusive
    for kwargs, msg in [
        ({"after": "last tuesday"}, "cannot read"),
        ({"before": "2024-13"}, "cannot read"),
        ({"min_duration": -1}, ">= 0"),
        ({"min_duration": 60, "max_duration": 30}, "inverted"),
        ({"after": "2024", "before": "2023"}, "empty"),
    ]:
        with pytest.raises(QueryError, match=msg):
            SearchFilter.parse(**kwargs)


def _names(store, *args) -> list[str]:
    res = CliRunner().invoke(app, ["search", *args, "--store", str(store), "--json", "-k", "40"])
    assert res.exit_code == 0, res.output
    return [Path(h["path"]).stem for h in json.loads(res.stdout)]


def _first(names: list[str], prefix: str) -> int:
    return min(i for i, n in enumerate(names) if n.startswith(prefix))


@pytest.mark.timeout(300)
def test_not_moves_results_away_from_a_description(sample_store):
    plain = _names(sample_store, "a circle")
    away = _names(sample_store, "a circle", "--not", "a red circle")
    # Red circles fall; circles of other colours overtake them.
    assert _first(away, "red_circle") >= _first(plain, "red_circle") + 5, (plain[:12], away[:12])

    def others_above_first_red(names):
        return sum(1 for n in names[: _first(names, "red_circle")] if "_circle" in n)

    assert others_above_first_red(away) > others_above_first_red(plain) + 2, (plain[:12], away[:12])
    best_other = min(i for i, n in enumerate(plain) if "_circle" in n and not n.startswith("red"))
    assert min(i for i, n in enumerate(away) if "_circle" in n and not n.startswith("red")) <= best_other


@pytest.mark.timeout(300)
def test_text_and_image_form_one_query(sample_store, tmp_path):
    import av

    with av.open(str(SAMPLE / "videos" / "red_square_left_01.mp4")) as c:
        frame = next(c.decode(video=0)).to_image()
    picture = tmp_path / "red_square.png"
    frame.save(picture)
    text = _names(sample_store, "a circle")
    image = _names(sample_store, "--image", str(picture))
    both = _names(sample_store, "a circle", "--image", str(picture))
    # Text alone puts a circle of another colour first; the picture alone, red squares.
    assert not text[0].startswith("red") and image[0].startswith("red_square")
    # Together: red circles come up above every circle of another colour, and above where the
    # picture alone put them.
    red_circles = [i for i, n in enumerate(both) if n.startswith("red_circle")]
    other_circles = [i for i, n in enumerate(both) if "_circle" in n and not n.startswith("red")]
    assert red_circles and max(red_circles) < min(other_circles), both[:12]
    assert _first(both, "red_circle") < _first(image, "red_circle")


def test_bad_filters_are_one_line_and_change_nothing(sample_store, tmp_path):
    before = sorted(p.name for p in sample_store.iterdir())
    for args, msg in [
        (["--after", "someday"], "cannot read"),
        (["--min-duration", "-3"], ">= 0"),
        (["--min-duration", "9", "--max-duration", "2"], "inverted"),
        (["--after", "2025", "--before", "2024"], "empty"),
    ]:
        res = CliRunner().invoke(app, ["search", "a circle", "--store", str(sample_store), *args])
        assert res.exit_code == 1, res.output
        lines = [x for x in res.output.strip().splitlines() if x.strip()]
        assert len(lines) == 1 and msg in lines[0], res.output
    res = CliRunner().invoke(app, ["search", "a circle", "--store", str(sample_store), "--in", str(tmp_path / "nothing-here")])
    assert res.exit_code == 0 and "0 results: no indexed video under" in res.output, res.output
    # --in a folder that is indexed keeps only its videos.
    names = _names(sample_store, "a circle", "--in", str(SAMPLE / "videos" / "red_circle_left_01.mp4"))
    assert names == ["red_circle_left_01"]
    assert sorted(p.name for p in sample_store.iterdir()) == before


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_bench_search_takes_any_vectors_and_ends_with_one_json_object(tmp_path):
    """`bench/search.py --vectors V.npy --query-vectors Q.npy --json`: the documented contract."""
    import sys

    from tests.procs import run

    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000 + 20, 64)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    np.save(tmp_path / "v.npy", x[:3000])
    np.save(tmp_path / "q.npy", x[3000:])
    bench = Path(__file__).resolve().parents[1] / "bench" / "search.py"
    res = run([sys.executable, bench, "--vectors", tmp_path / "v.npy", "--query-vectors", tmp_path / "q.npy", "--json"], timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    for name in ("flat", "auto"):
        row = out[name]
        assert {"kind", "build_s", "p50_ms", "p99_ms", "raw_p50_ms", "recall_at_10", "bytes"} <= row.keys()
    assert out["flat"]["recall_at_10"] == 1.0 and out["auto"]["kind"] == "flat"  # 3,000 vectors: exact
    bad = np.zeros((10, 64), np.float64)
    np.save(tmp_path / "bad.npy", bad)
    res = run([sys.executable, bench, "--vectors", tmp_path / "bad.npy", "--query-vectors", tmp_path / "q.npy"], timeout=120)
    assert res.returncode != 0 and "float32" in res.stderr


@pytest.mark.timeout(300)
def test_recording_time_comes_from_the_container_else_the_mtime(tmp_path, tiny_encoder):
    """A camera's creation_time tag (written by Debian's ffmpeg) is the recording time; a file
    without one falls back to its mtime. --after / --before filter on it."""
    import os
    import shutil
    import subprocess

    if shutil.which("ffmpeg") is None:
        pytest.skip("Debian's ffmpeg is not installed (.ci/run installs it)")
    from vsearch.ingest import index

    vids = tmp_path / "v"
    vids.mkdir()
    base = ["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=96x64:rate=8", "-t", "2", "-pix_fmt", "yuv420p"]
    subprocess.run([*base, "-metadata", "creation_time=2021-05-06T07:08:09Z", str(vids / "camera.mp4")], check=True, timeout=120)
    subprocess.run([*base, "-map_metadata", "-1", str(vids / "copied.mp4")], check=True, timeout=120)
    old = parse_date("2019-03-01")
    os.utime(vids / "copied.mp4", (old, old))
    with Store.open(tmp_path / "s") as st:
        index(st, [vids], tiny_encoder, workers=0)
    res = CliRunner().invoke(app, ["search", "a pattern", "--store", str(tmp_path / "s"), "--json"])
    hits = {Path(h["path"]).name: h["recorded_at"] for h in json.loads(res.stdout)}
    assert hits == {"camera.mp4": "2021-05-06T07:08:09Z", "copied.mp4": "2019-03-01T00:00:00Z"}
    after = CliRunner().invoke(app, ["search", "a pattern", "--store", str(tmp_path / "s"), "--json", "--after", "2020"])
    before = CliRunner().invoke(app, ["search", "a pattern", "--store", str(tmp_path / "s"), "--json", "--before", "2020"])
    assert [Path(h["path"]).name for h in json.loads(after.stdout)] == ["camera.mp4"]
    assert [Path(h["path"]).name for h in json.loads(before.stdout)] == ["copied.mp4"]
