"""`vsearch eval moments`: films with random cut points, every scene once, and the measures of
moment retrieval (temporal IoU, R@1 at IoU 0.5 / 0.7, video R@1)."""

from __future__ import annotations

import json

import av
import pytest

from tests.conftest import run_cli
from vsearch.eval.moments import SCENE_SECONDS, boundary_scores, hit_range, match_cuts, render_films, temporal_iou


def test_temporal_iou():
    assert temporal_iou((0, 10), (0, 10)) == 1.0
    assert temporal_iou((0, 10), (5, 15)) == pytest.approx(5 / 15)
    assert temporal_iou((0, 2), (3, 4)) == 0.0
    assert temporal_iou((2, 4), (0, 10)) == pytest.approx(0.2)


def test_a_hit_answers_with_its_refined_moment_when_it_has_one():
    from types import SimpleNamespace

    plain = SimpleNamespace(start=10.0, end=20.0)  # a Hit from before refined moments
    assert hit_range(plain) == (10.0, 20.0)
    assert hit_range(SimpleNamespace(start=10.0, end=20.0, moment_start=None, moment_end=None)) == (10.0, 20.0)
    assert hit_range(SimpleNamespace(start=10.0, end=20.0, moment_start=12.5, moment_end=16.0)) == (12.5, 16.0)


def test_cut_matching_pairs_each_true_cut_once():
    assert match_cuts([1.0, 1.05, 5.0, 9.0], [1.0, 5.1, 7.0], 0.1) == (2, 2, 1)  # 1.05 is a duplicate
    assert boundary_scores(2, 2, 1) == {"precision": 0.5, "recall": 0.667, "f1": 0.571, "cuts": 3}
    assert boundary_scores(0, 0, 0)["f1"] == 1.0


def test_films_use_every_scene_once_with_random_cuts(tmp_path):
    films = render_films(tmp_path, count=12, seed=3)
    captions = [s.caption for f in films for _a, _b, s in f.scenes]
    assert len(captions) == 48 == len(set(captions))
    for f in films:
        ends = [b for _a, b, _s in f.scenes]
        assert [a for a, _b, _s in f.scenes] == [0.0, *ends[:-1]]  # back to back
        assert all(SCENE_SECONDS[0] - 0.05 <= b - a <= SCENE_SECONDS[1] + 0.05 for a, b, _s in f.scenes)
        with av.open(f.path) as c:
            stream = c.streams.video[0]
            frames = sum(1 for _ in c.decode(stream))
        assert frames / 10 == pytest.approx(ends[-1])  # the file is as long as its timeline
    cuts = [b for f in films for _a, b, _s in f.scenes[:-1]]
    assert len({round(c % 10, 1) for c in cuts}) > 10  # cuts fall anywhere, not on window edges
    assert render_films(tmp_path / "again", count=2, seed=3)[0].scenes == films[0].scenes  # a seed repeats


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_eval_moments_reports_the_four_measures(tmp_path):
    res = run_cli("eval", "moments", "--model", "tiny-clip", "--films", "2", "--segment-seconds", "4", "--json")
    report = json.loads(res.stdout)
    assert report["films"] == 2 and report["queries"] == 8 and report["segment_seconds"] == 4
    assert report["segmenter"] == "shots" and report["cut_detection"]["cuts"] == 6  # (the default, as index)
    assert 0.0 <= report["cut_detection"]["f1"] <= 1.0 and report["segments"] >= 8
    assert 0.0 <= report["mean_iou"] <= 1.0
    assert 0.0 <= report["r1_iou70"] <= report["r1_iou50"] <= report["video_r1"] <= 100.0
    assert len(report["rows"]) == 8 and all(0.0 <= r["iou"] <= 1.0 for r in report["rows"])
    res = run_cli("eval", "moments", "--model", "tiny-clip", "--films", "13", code=1)
    assert "between 1 and 12" in res.output
