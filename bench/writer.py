"""The single writer's ceiling: segments committed per second (SQLite rows + FAISS add) from a
pre-computed stream, i.e. how many encoders (GPUs) one driver can keep up with.

    python bench/writer.py [--videos 4000] [--segments-per-video 30] [--dim 512] [--per-commit 8]

Writes into a fresh store with ``Store.commit`` exactly as ``vsearch index`` does (a few videos
per transaction; thumbnails off). Baselines, same rows: FAISS ``add_with_ids`` alone and SQLite
``executemany`` of the segment and embedding rows alone (no ORM, one transaction). Target:
>= 20,000 segments/s (8 GPUs at ~2,000 B/32 segments/s each, with margin).
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--videos", type=int, default=4000)
    p.add_argument("--segments-per-video", type=int, default=30)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--per-commit", type=int, default=8)
    args = p.parse_args()

    import faiss

    from vsearch.models.mean_pool import MeanPoolEncoder
    from vsearch.models.tiny import tiny_clip_config
    from vsearch.store import Store
    from vsearch.store.store import SegmentWrite, VideoWrite

    rng = np.random.default_rng(0)
    n_seg = args.videos * args.segments_per_video
    vecs = rng.standard_normal((n_seg, args.dim), dtype=np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)

    # Baseline 1: FAISS alone.
    index = faiss.IndexIDMap2(faiss.IndexFlatIP(args.dim))
    t0 = time.perf_counter()
    index.add_with_ids(vecs, np.arange(n_seg, dtype=np.int64))
    faiss_rate = n_seg / (time.perf_counter() - t0)

    # Baseline 2: SQLite executemany of the same rows (segments + float16 vectors), one transaction.
    with tempfile.TemporaryDirectory() as tmp:
        con = sqlite3.connect(Path(tmp) / "raw.db")
        con.execute("CREATE TABLE segments (id INTEGER PRIMARY KEY, video INTEGER, idx INTEGER, s REAL, e REAL)")
        con.execute("CREATE TABLE emb (segment INTEGER PRIMARY KEY, vector BLOB)")
        f16 = vecs.astype(np.float16)
        t0 = time.perf_counter()
        with con:
            con.executemany(
                "INSERT INTO segments VALUES (?,?,?,?,?)",
                ((i, i // args.segments_per_video, i % args.segments_per_video, 0.0, 10.0) for i in range(n_seg)),
            )
            con.executemany("INSERT INTO emb VALUES (?,?)", ((i, f16[i].tobytes()) for i in range(n_seg)))
        sqlite_rate = n_seg / (time.perf_counter() - t0)
        con.close()

    # vsearch: Store.commit, as the indexer does.
    # A tiny CLIP with a ``dim``-wide projection: it only binds the store (no weights are needed).
    enc = MeanPoolEncoder.from_config(tiny_clip_config(projection_dim=args.dim))
    enc.source = "bench"
    with tempfile.TemporaryDirectory() as tmp:
        with Store.open(Path(tmp) / "s") as st:
            rec = st.bind_encoder(enc)
            dim = int(rec.spec["dim"])
            assert dim == args.dim
            v = vecs
            videos = []
            for k in range(args.videos):
                segs = [SegmentWrite(j, 10.0 * j, 10.0 * (j + 1), 150 * j, 150 * (j + 1), list(range(12)),
                                     v[k * args.segments_per_video + j]) for j in range(args.segments_per_video)]  # fmt: skip
                info = {"duration": 10.0 * args.segments_per_video, "fps": 15.0, "num_frames": 150 * args.segments_per_video,
                        "width": 1280, "height": 720, "codec": "h264", "backend": "bench"}  # fmt: skip
                videos.append(VideoWrite(f"/bench/v{k:06d}.mp4", 1000 + k, k, f"h{k}", info, segs))
            t0 = time.perf_counter()
            for i in range(0, len(videos), args.per_commit):
                st.commit(rec.id, videos[i : i + args.per_commit])
            st.save_index()
            vs_rate = n_seg / (time.perf_counter() - t0)
            assert st.check().ok
    print(f"{n_seg} segments ({args.videos} videos x {args.segments_per_video}), {args.per_commit} videos per commit")
    print(f"{'':<44}{'segments/s':>12}")
    print(f"{'FAISS add_with_ids alone (baseline)':<44}{faiss_rate:>12,.0f}")
    print(f"{'SQLite executemany, one transaction (baseline)':<44}{sqlite_rate:>12,.0f}")
    print(f"{'vsearch Store.commit + save (dim ' + str(dim) + ')':<44}{vs_rate:>12,.0f}")
    print(f"ratio vsearch / SQLite baseline: {vs_rate / sqlite_rate:.2f}x; target >= 20,000 segments/s")


if __name__ == "__main__":
    main()
