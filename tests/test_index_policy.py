"""Index policy: exact up to a size, IVF above (trained, nprobe tuned for recall), IVF-PQ on demand."""

import numpy as np
import pytest
from sqlalchemy import select

from vsearch.errors import ConfigError
from vsearch.store import SegmentWrite, Store, VideoWrite, index_sync
from vsearch.store.schema import Embedding
from vsearch.store.vectors import FLAT_MAX, choose_index, list_index_files

DIM = 16


class Enc:
    fingerprint, name, source = "e" * 32, "test", "test"

    class spec:  # noqa: N801 - a minimal stand-in for EncoderSpec
        @staticmethod
        def as_dict():
            return {"family": "test", "dim": DIM}


def structured(n, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 4)) @ rng.normal(size=(4, DIM)) + 0.3 * rng.normal(size=(n, DIM))
    return (z / np.linalg.norm(z, axis=1, keepdims=True)).astype(np.float32)


def fill(st, n_videos, per_video=10, seed=0):
    rec = st.bind_encoder(Enc())
    vecs = structured(n_videos * per_video, seed)
    info = {"duration": 1, "fps": 1, "num_frames": 1, "width": 1, "height": 1}
    videos = [
        VideoWrite(
            f"/v/{seed}_{i}.mp4",
            1,
            1,
            f"h{seed}{i}",
            info,
            [SegmentWrite(j, j, j + 1, j, j + 1, [j], vecs[i * per_video + j]) for j in range(per_video)],
        )
        for i in range(n_videos)
    ]
    for k in range(0, len(videos), 50):
        st.commit(rec.id, videos[k : k + 50])
    return vecs


def exact(st):
    """(ids, vectors) of every stored vector: the ground truth for exact search."""
    ids, vecs = [], []
    for i, v in st.iter_embeddings(st.encoder().id):
        ids.append(np.asarray(i))
        vecs.append(np.asarray(v, np.float32))
    return np.concatenate(ids), np.concatenate(vecs)


def ids_in_db(st):
    with st.Session() as s:
        return {r[0] for r in s.execute(select(Embedding.segment_id))}


def test_choose_index_is_a_pure_size_policy():
    assert choose_index(FLAT_MAX, 512).kind == "flat"
    ivf = choose_index(1_000_000, 512)
    assert (ivf.kind, ivf.nlist) == ("ivf", 4096)  # 4 * sqrt(1e6) = 4000 -> 2^12
    assert choose_index(300_000, 512).nlist == 2048
    pq = choose_index(1_000_000, 512, "ivf-pq")
    assert (pq.nlist, pq.pq_m, pq.pq_bits) == (4096, 64, 8)  # 64-byte codes
    assert choose_index(1000, 512, "ivf").nlist <= 1000 // 39  # enough training points per list
    with pytest.raises(ConfigError, match="unknown index kind"):
        choose_index(10, 8, "hnsw")


def test_ivf_rebuild_recall_deletes_adds_and_reload(tmp_path):
    st = Store.open(tmp_path / "s")
    vecs = fill(st, 300)  # 3,000 vectors
    result = st.rebuild_index("ivf")
    assert result["kind"] == "ivf" and result["policy"] == "pinned" and result["recall_at_10"] >= 0.95
    status = st.status()["index"]
    assert status["kind"] == "ivf" and status["params"]["nprobe"] == result["nprobe"]
    # Deletes and adds keep working on the IVF index, and a fresh reader agrees.
    st.remove_paths(["/v/0_0.mp4", "/v/0_1.mp4"])
    fill(st, 5, seed=9)
    assert set(st.vector_index().ids().tolist()) == ids_in_db(st)
    reader = Store.open(st.root)
    assert reader.vector_index().kind == "ivf" and set(reader.vector_index().ids().tolist()) == ids_in_db(st)
    # A query equal to a stored vector finds that very segment first (the exact answer, from the database).
    db_ids, db_vecs = exact(st)
    want = int(db_ids[int(np.argmax(db_vecs @ vecs[100]))])
    assert int(reader.vector_index().search(vecs[100:101], 1).ids[0, 0]) == want
    # Without its file, the IVF index is rebuilt (trained) from the database.
    for _g, p in list_index_files(st.index_dir, st.encoder().id):
        p.unlink()
    fresh = Store.open(st.root)
    assert fresh.vector_index().kind == "ivf" and fresh.check().ok
    for x in (st, reader, fresh):
        x.close()


def test_auto_policy_switches_past_the_threshold_and_pinned_stays(tmp_path, monkeypatch):
    monkeypatch.setattr(
        index_sync, "choose_index", lambda n, dim, kind="auto", nlist=None: choose_index(n, dim, kind, nlist, flat_max=1000)
    )
    st = Store.open(tmp_path / "s")
    fill(st, 50)  # 500 vectors: flat
    assert st.apply_index_policy() is None and st.vector_index().kind == "flat"
    fill(st, 100, seed=1)  # 1,500 vectors: past the (lowered) threshold
    change = st.apply_index_policy()
    assert change["kind"] == "ivf" and change["policy"] == "auto" and st.vector_index().kind == "ivf"
    st.rebuild_index("flat")  # pinned by hand
    fill(st, 100, seed=2)
    assert st.apply_index_policy() is None and st.vector_index().kind == "flat"
    st.close()


def test_ivf_pq_is_smaller_and_records_its_recall(tmp_path):
    st = Store.open(tmp_path / "s")
    fill(st, 300)
    flat_bytes = st.status()["index"]["bytes"] or 0
    st.save_index()
    flat_bytes = st.status()["index"]["bytes"]
    result = st.rebuild_index("ivf-pq")
    assert result["kind"] == "ivf-pq" and result["pq_m"] == DIM // 8
    # The recorded recall is what the index really achieves against exact search (measured here).
    db_ids, db_vecs = exact(st)
    queries = db_vecs[:: max(1, len(db_vecs) // 100)][:100]
    truth = np.argsort(-(queries @ db_vecs.T), axis=1)[:, :10]
    got = st.vector_index().search(queries, 10).ids
    measured = np.mean([len(set(db_ids[t].tolist()) & set(g.tolist())) / 10 for t, g in zip(truth, got)])
    assert abs(measured - result["recall_at_10"]) <= 0.15 and measured >= 0.3, (measured, result["recall_at_10"])
    assert st.status()["index"]["bytes"] < flat_bytes
    assert st.check().ok
    st.close()
