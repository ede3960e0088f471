"""Moments (``vsearch.moments``): the rule on hand-made score profiles, its invariants on random
ones, and the whole path through a real store, the CLI and ``Hit.as_dict``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import SAMPLE, run_cli
from vsearch.moments import MARGIN_FLOOR, margin_for, read_segments, refine_hits, refine_range
from vsearch.search import Hit

TEN = ([0, 10, 20, 30], [10, 20, 30, 40])  # four 10 s segments


def test_a_scene_across_a_boundary_takes_both_segments():
    assert refine_range(*TEN, [0.1, 0.80, 0.78, 0.1], 1) == (10.0, 30.0)


def test_a_lone_peak_stays_its_segment():
    assert refine_range(*TEN, [0.1, 0.80, 0.40, 0.1], 1) == (10.0, 20.0)


def test_a_neighbour_joins_at_the_margin_and_not_below_it():
    assert refine_range(*TEN, [0.0, 0.5, 0.4, 0.0], 1, margin=0.1) == (10.0, 30.0)
    assert refine_range(*TEN, [0.0, 0.5, 0.399, 0.0], 1, margin=0.1) == (10.0, 20.0)


def test_the_run_is_contiguous_it_does_not_jump_a_low_segment():
    # Segment 3 matches as well as the hit, but segment 2 between them does not.
    assert refine_range([0, 10, 20, 30, 40], [10, 20, 30, 40, 50], [0.1, 0.8, 0.2, 0.8, 0.1], 1) == (10.0, 20.0)


def test_a_better_neighbour_joins_a_lower_hit():
    # In --segments mode a hit may be the lower half of a scene whose best segment is next to it.
    assert refine_range(*TEN, [0.1, 0.7, 0.9, 0.1], 1, margin=0.05) == (10.0, 30.0)


def test_a_gap_stops_the_run():
    # Segment [20, 30) was never stored (undecodable): 10-20 and 30-40 do not touch.
    assert refine_range([0, 10, 30], [10, 20, 40], [0.1, 0.8, 0.8], 1) == (10.0, 20.0)
    assert refine_range([0, 10, 20.1], [10, 20, 30], [0.1, 0.8, 0.8], 1) == (10.0, 30.0)  # 0.1 s: frame timing


def test_a_cut_ends_the_moment_but_a_long_shot_split_in_pieces_is_joined():
    # Shots 0-10 (cut at 10) and 10-30, the second split into two pieces; all four score alike.
    starts, ends, scores = [0, 5, 10, 20], [5, 10, 20, 30], [0.8, 0.8, 0.8, 0.8]
    assert refine_range(starts, ends, scores, 0, cuts=[10.0]) == (0.0, 10.0)
    assert refine_range(starts, ends, scores, 3, cuts=[10.0]) == (10.0, 30.0)
    # The segment starts at the first frame after the cut: a frame later still counts as at it.
    assert refine_range(starts, ends, scores, 3, cuts=[9.96]) == (10.0, 30.0)
    assert refine_range(starts, ends, scores, 1, cuts=[9.96]) == (0.0, 10.0)
    assert refine_range(starts, ends, scores, 1) == (0.0, 30.0)  # fixed windows: no cuts


def test_segments_of_varying_length_merge_by_their_own_times():
    # Shot-following segments: 1.5 s, 4 s, 0.7 s, 6 s.
    starts, ends = [0.0, 1.5, 5.5, 6.2], [1.5, 5.5, 6.2, 12.2]
    assert refine_range(starts, ends, [0.2, 0.9, 0.88, 0.3], 2) == (1.5, 6.2)


def test_the_moment_never_leaves_the_video():
    # The last stored segment ends past the probed duration: the moment ends at the duration,
    # whether or not it merged a neighbour on the other side.
    assert refine_range(*TEN, [0.1, 0.2, 0.3, 0.9], 3, duration=38.5) == (30.0, 38.5)
    assert refine_range(*TEN, [0.1, 0.2, 0.9, 0.9], 3, duration=39.97) == (20.0, 39.97)
    assert refine_range([-0.2, 10], [10, 20], [0.9, 0.9], 0, duration=20) == (0.0, 20.0)


def test_the_margin_is_half_the_height_above_the_videos_median():
    scores = [0.1, 0.1, 0.9, 0.1, 0.1]
    assert margin_for(scores, 2) == pytest.approx(0.4)
    # A flat profile (all one scene) or a hit below the median: the floor.
    assert margin_for([0.5, 0.5, 0.5], 1) == MARGIN_FLOOR
    assert margin_for([0.9, 0.1, 0.9], 1) == MARGIN_FLOOR
    # Only segments within reach set the baseline.
    assert margin_for([0.9] * 50 + [0.1, 0.5, 0.1], 51, reach=1) == pytest.approx(0.2)


def test_a_bad_call_is_refused():
    with pytest.raises(ValueError):
        refine_range([0, 10], [10, 20], [0.5], 0)
    with pytest.raises(ValueError):
        refine_range([0, 10], [10, 20], [0.5, 0.5], 2)


@st.composite
def profiles(draw):
    n = draw(st.integers(1, 12))
    lengths = draw(st.lists(st.floats(0.2, 12), min_size=n, max_size=n))
    gaps = draw(st.lists(st.sampled_from([0.0, 0.0, 0.0, 0.1, 2.0]), min_size=n, max_size=n))
    starts, t = [], 0.0
    for length, gap in zip(lengths, gaps):
        starts.append(t + gap)
        t = starts[-1] + length
    ends = [s + length for s, length in zip(starts, lengths)]
    scores = draw(st.lists(st.floats(-1, 1), min_size=n, max_size=n))
    best = draw(st.integers(0, n - 1))
    duration = draw(st.one_of(st.none(), st.floats(0.5, ends[-1] + 5)))
    cuts = [s for s in starts[1:] if draw(st.booleans())]  # shot cuts fall where segments start
    return starts, ends, scores, best, duration, cuts


@settings(max_examples=200, deadline=None)
@given(profiles())
def test_a_moment_holds_its_segment_and_stays_inside_the_video(profile):
    starts, ends, scores, best, duration, cuts = profile
    a, b = refine_range(starts, ends, scores, best, duration=duration, cuts=cuts)
    top = duration if duration is not None else float("inf")
    assert 0.0 <= a <= b <= top
    s, e = min(max(starts[best], 0.0), top), min(max(ends[best], 0.0), top)  # the segment, clamped alike
    assert a <= s and e <= b
    # Every segment the moment covers scores within the margin of the hit.
    floor = scores[best] - margin_for(scores, best)
    covered = [i for i in range(len(starts)) if starts[i] >= a - 1e-9 and ends[i] <= b + 1e-9 and ends[i] <= top]
    assert all(scores[i] >= floor for i in covered)
    assert not any(a < c < b for c in cuts)  # never across a cut


# -- through a real store -------------------------------------------------------------------


def build_scene_store(root: Path, thumbnails: bool = False):
    """compilation_02 (three 10 s shots) indexed by shots of at most 5 s with the mean-pool demo
    model: every shot is split in two segments, so a moment has something to find, and the two
    cuts are stored to stop it. Returns (store, encoder)."""
    from vsearch.ingest import index
    from vsearch.models import load_encoder
    from vsearch.store import Store

    (root / "v").mkdir(parents=True)
    shutil.copy(Path(SAMPLE) / "videos" / "compilation_02.mp4", root / "v")
    enc = load_encoder(Path(SAMPLE) / "model")
    with Store.open(root / "s") as store:
        index(store, [root / "v"], enc, workers=0, segment_seconds=5, segmenter="shots", thumbnails=thumbnails)
    return root / "s", enc


@pytest.fixture(scope="module")
def scene_store(tmp_path_factory):
    return build_scene_store(tmp_path_factory.mktemp("scene-store"))


SCENES = [  # sample_data/compilations.csv: three 10 s scenes
    ("a yellow triangle moving right", (0.0, 10.0), "00:00–00:10"),
    ("a red circle moving right", (10.0, 20.0), "00:10–00:20"),
    ("a yellow circle moving left", (20.0, 30.0), "00:20–00:30"),
]


@pytest.mark.parametrize("caption,scene,shown", SCENES)
def test_through_a_store_the_moment_is_the_scene(scene_store, caption, scene, shown):
    from vsearch.search import search
    from vsearch.store import Store

    root, enc = scene_store
    with Store.open(root, create=False) as store:
        hits = search(store, caption, 6, encoder=enc, segments=True).hits
        plain = search(store, caption, 6, encoder=enc, segments=True, refine=False).hits
        # The rule, applied by hand to the stored vectors, is what search reports.
        v = read_segments(store, {hits[0].video_id: (0, 99)}, store.encoder().id, enc.spec.dim)[hits[0].video_id]
    top = hits[0]
    assert top.end - top.start == 5.0  # one 5 s segment scored best
    assert (top.moment_start, top.moment_end) == scene  # the 10 s scene: its two segments
    qv = enc.encode_query(caption).numpy()
    i = int(np.flatnonzero(v.segment_ids == top.segment_id)[0])
    assert v.cuts == pytest.approx((10.0, 20.0), abs=0.1)
    want = refine_range(v.starts, v.ends, v.vectors @ qv, i, duration=v.duration, cuts=v.cuts)
    assert want == (top.moment_start, top.moment_end)
    assert all(h.moment_start is None and h.moment_end is None for h in plain)
    assert [(h.segment_id, h.score) for h in plain] == [(h.segment_id, h.score) for h in hits]  # ranking untouched
    d = top.as_dict()
    assert (d["moment_start"], d["moment_end"], d["moment_range"]) == (*scene, shown)


def test_a_hit_whose_segment_is_gone_keeps_no_moment(scene_store):
    from vsearch.store import Store

    root, enc = scene_store
    with Store.open(root, create=False) as store:
        hit = Hit("x.mp4", 0.5, 0.0, 5.0, 0, 10**9, 1)
        refine_hits(store, [hit], enc.encode_query("a red circle").numpy())
        assert hit.moment_start is None and hit.as_dict()["moment_range"] is None
        wrong_model = Hit("x.mp4", 0.5, 0.0, 5.0, 0, 1, 1)
        refine_hits(store, [wrong_model], enc.encode_query("a red circle").numpy(), fingerprint="another")
        assert wrong_model.moment_start is None


def test_the_cli_shows_the_moment_and_no_refine_leaves_it_out(scene_store):
    root, _enc = scene_store
    args = ("search", "a red circle moving right", "--store", root, "-k", "2", "--segments")
    hits = json.loads(run_cli(*args, "--json").stdout)
    assert hits[0]["moment_range"] == "00:10–00:20" and hits[0]["range"] in ("00:10–00:15", "00:15–00:20")
    assert all(h["moment_start"] is None for h in json.loads(run_cli(*args, "--json", "--no-refine").stdout))
    table = run_cli(*args).stdout
    assert "moment" in table and "00:10–00:20" in table
    best = run_cli("search", "a red circle moving right", "--store", root, "-k", "1").stdout
    assert "00:10–00:20" in best and f"(best {hits[0]['range']})" in best
