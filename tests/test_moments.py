"""`vsearch eval moments`: films with random cut points, every scene once, and the measures of
moment retrieval (temporal IoU, R@1 at IoU 0.5 / 0.7, video R@1)."""

from __future__ import annotations

import json

import av
import pytest

from tests.conftest import run_cli
from vsearch.eval.moments import SCENE_SECONDS, render_films, temporal_iou


def test_temporal_iou():
    assert temporal_iou((0, 10), (0, 10)) == 1.0
    assert temporal_iou((0, 10), (5, 15)) == pytest.approx(5 / 15)
    assert temporal_iou((0, 2), (3, 4)) == 0.0
    assert temporal_iou((2, 4), (0, 10)) == pytest.approx(0.2)


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
    assert 0.0 <= report["mean_iou"] <= 1.0
    assert 0.0 <= report["r1_iou70"] <= report["r1_iou50"] <= report["video_r1"] <= 100.0
    assert len(report["rows"]) == 8 and all(0.0 <= r["iou"] <= 1.0 for r in report["rows"])
    res = run_cli("eval", "moments", "--model", "tiny-clip", "--films", "13", code=1)
    assert "between 1 and 12" in res.output
