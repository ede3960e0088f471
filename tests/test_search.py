"""Search: best segment per video, raw segments, k bounds, bad queries, empty stores."""

import pytest

from vsearch.errors import EmptyStore, QueryError
from vsearch.ingest import index
from vsearch.search import search
from vsearch.store import Store

from .videos import write_indexed, write_noise


@pytest.fixture(scope="module")
def store(tmp_path_factory, tiny_encoder):
    root = tmp_path_factory.mktemp("search")
    write_indexed(root / "v" / "long.mp4", n=40, fps=2)  # 20 s -> 4 segments of 5 s
    for i in range(3):
        write_noise(root / "v" / f"n{i}.mp4", n=10, seed=i)
    st = Store.open(root / "store")
    index(st, [root / "v"], tiny_encoder, workers=0, segment_seconds=5.0)
    yield st
    st.close()


def test_best_segment_per_video(store):
    resp = search(store, "a grey screen", k=10)
    assert len(resp.hits) == 4  # 4 videos, not 7 segments
    assert len({h.video_id for h in resp.hits}) == 4
    assert [h.score for h in resp.hits] == sorted((h.score for h in resp.hits), reverse=True)
    seg = search(store, "a grey screen", k=10, segments=True)
    assert len(seg.hits) == 7 and resp.searched == 7
    # A video's hit is its best-scoring segment.
    best_long = max((h for h in seg.hits if h.path.endswith("long.mp4")), key=lambda h: h.score)
    (long_hit,) = [h for h in resp.hits if h.path.endswith("long.mp4")]
    assert (long_hit.segment_id, long_hit.score) == (best_long.segment_id, pytest.approx(best_long.score))
    d = long_hit.as_dict()
    assert d["range"] == f"{d['range'][:5]}–{d['range'][-5:]}" and set(d) >= {"path", "score", "start", "end", "range"}


def test_k_bounds(store):
    assert len(search(store, "x", k=1).hits) == 1
    assert len(search(store, "x", k=500, segments=True).hits) == 7  # more than exist: all of them
    for bad in (0, -1, 10_001):
        with pytest.raises(QueryError, match="k must be"):
            search(store, "x", k=bad)


@pytest.mark.parametrize("query", ["", "   ", "\n\t"])
def test_empty_queries_are_refused(store, query):
    with pytest.raises(QueryError, match="empty"):
        search(store, query)


@pytest.mark.parametrize("query", ["émoji 🐶 日本語 mixed Ελληνικά", "ctrl\x01\x02chars", "a" * 2000])
def test_unusual_queries_work(store, query):
    resp = search(store, query, k=2)
    assert len(resp.hits) == 2
    if len(query) > 1000:
        assert resp.warnings and "longer than" in resp.warnings[0]


def test_empty_store(tmp_path, tiny_encoder):
    st = Store.open(tmp_path / "s")
    with pytest.raises(EmptyStore, match="empty"):
        search(st, "x", encoder=tiny_encoder)
    (tmp_path / "nothing-here").mkdir()
    index(st, [tmp_path / "nothing-here"], tiny_encoder, workers=0)  # binds the encoder, no videos
    with pytest.raises(EmptyStore, match="no segments"):
        search(st, "x", encoder=tiny_encoder)
