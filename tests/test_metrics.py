"""Retrieval metrics against hand-computed cases: ties, multi-caption, rectangles, boundaries, DSL."""

import numpy as np
import pytest

from vsearch.eval.metrics import dual_softmax, retrieval_report, summarize, text_to_video, tie_safe_ranks, video_to_text


def test_ranks_count_strictly_higher_scores():
    sim = np.array([[0.9, 0.1, 0.5], [0.2, 0.3, 0.8], [0.4, 0.4, 0.4]])
    assert tie_safe_ranks(sim, [0, 1, 2]).tolist() == [0, 1, 0]
    assert tie_safe_ranks(sim, [2, 0, 1]).tolist() == [1, 2, 0]


def test_ties_count_once_in_the_querys_favour():
    # Row 0 ties its target with two others: rank 0, one entry (CLIP4Clip's version would emit three).
    sim = np.array([[0.5, 0.5, 0.5, 0.1], [0.9, 0.2, 0.9, 0.3]])
    assert tie_safe_ranks(sim, [1, 2]).tolist() == [0, 0]
    assert tie_safe_ranks(sim, [3, 1]).tolist() == [3, 3]


def test_summary_at_boundaries():
    ranks = np.array([0, 4, 5, 9, 10])
    m = summarize(ranks)
    assert m["R@1"] == 20.0 and m["R@5"] == 40.0 and m["R@10"] == 80.0
    assert m["MdR"] == 6.0 and m["MnR"] == pytest.approx(6.6)
    assert m["queries"] == 5


def test_rectangular_and_multi_caption():
    # 5 captions over 3 videos: captions 0,1 -> video 0; 2 -> video 1; 3,4 -> video 2.
    text_video = [0, 0, 1, 2, 2]
    sim = np.array(
        [
            [0.9, 0.1, 0.2],  # rank 0
            [0.3, 0.8, 0.1],  # rank 1
            [0.1, 0.7, 0.7],  # rank 0 (tie with video 2)
            [0.6, 0.2, 0.5],  # rank 1
            [0.1, 0.2, 0.3],  # rank 0
        ]
    )
    t2v = text_to_video(sim, text_video)
    assert t2v["queries"] == 5 and t2v["R@1"] == 60.0 and t2v["MdR"] == 1.0 and t2v["MnR"] == pytest.approx(1.4)
    # v2t: video v vs each video's best caption. Video 0: own best 0.9 (cap 0); others 0.1 (cap 2), 0.6 (cap 3) -> rank 0.
    # Video 1: own 0.7; video 0's best caption scores 0.8 -> rank 1. Video 2: own best 0.7 (cap 3? no: max(0.5,0.3)=0.5);
    # video 0's best for video 2 is 0.2, video 1's is 0.7 -> rank 1.
    v2t = video_to_text(sim, text_video)
    assert v2t["queries"] == 3
    assert v2t["R@1"] == pytest.approx(100 / 3) and v2t["MnR"] == pytest.approx(5 / 3)


def test_dual_softmax_reweights_by_the_query_axis():
    sim = np.array([[0.5, 0.4], [0.45, 0.1]])
    d = dual_softmax(sim, temperature=100)
    col0 = np.exp(100 * np.array([0.5, 0.45]))
    col0 /= col0.sum()
    assert d[0, 0] == pytest.approx(0.5 * col0[0]) and d[1, 0] == pytest.approx(0.45 * col0[1])


def test_dsl_is_reported_apart_and_can_change_the_outcome():
    # Caption 1 prefers video 0 (0.6 > 0.55), but caption 0 claims video 0 far more strongly:
    # the softmax over captions hands video 1 to caption 1. Plain R@1 50, DSL R@1 100.
    sim = np.array([[0.9, 0.5], [0.6, 0.55]])
    report = retrieval_report(sim, [0, 1])
    assert report["t2v"]["R@1"] == 50.0
    assert report["dsl"]["t2v"]["R@1"] == 100.0
    assert set(report) == {"t2v", "v2t", "dsl"} and set(report["dsl"]) == {"t2v", "v2t"}


def test_shape_errors():
    with pytest.raises(ValueError):
        tie_safe_ranks(np.zeros((3, 2)), [0, 1])
    with pytest.raises(ValueError):
        summarize(np.array([]))
