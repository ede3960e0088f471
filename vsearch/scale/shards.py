"""Embeddings as Parquet shards, for clusters that cannot reach the store.

``vsearch embed VIDEOS... --out DIR [--ray]`` writes ``DIR/part-NNNNN.parquet``: one row per
segment (path, segment, start, end, vector, encoder fingerprint) plus what the store needs to
recognise the file later (size, mtime, content hash, video facts). Files are split into shards
deterministically (sorted paths, ``files_per_shard`` each); a shard is written to a temporary
name and renamed when complete, so a rerun skips finished shards and redoes only the rest.
``vsearch import DIR`` loads shards into a store after checking the encoder fingerprint, the
dimension and that every vector is unit length.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..atomic import atomic_write, atomic_write_text
from ..errors import ConfigError, DatasetError, EncoderMismatch

FILES_PER_SHARD = 64
SCHEMA_VERSION = 1


def _pa():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ConfigError("Parquet shards need pyarrow: pip install pyarrow (the README's install includes it)") from None
    return pa, pq


def shard_plan(paths: Sequence[str], files_per_shard: int = FILES_PER_SHARD) -> list[list[str]]:
    ordered = sorted(os.path.abspath(p) for p in paths)
    return [ordered[i : i + files_per_shard] for i in range(0, len(ordered), files_per_shard)]


def export_shards(
    encoder,
    paths: Sequence[str],
    out_dir: str | os.PathLike[str],
    *,
    ray: str | bool | None = None,
    segment_seconds: float = 10.0,
    min_tail_seconds: float = 1.0,
    workers: int | None = None,
    files_per_shard: int = FILES_PER_SHARD,
    on_shard: Callable[[int, int], None] | None = None,
    sampling: str = "exact",
    segmenter: str = "fixed",
) -> dict:
    """Embed every segment of ``paths`` into Parquet shards under ``out_dir``; resumable.
    ``sampling``: "exact" or "fast" (``vsearch.video.readplan``); ``segmenter``: "fixed" windows
    or "shots" (``vsearch.video.segmenting``)."""
    from ..embedding import SegmentBatcher, StageTimes, default_batch_size, default_workers, encode_stream
    from ..video.discover import content_hash
    from ..video.workers import DecodeJob, DecodePool

    pa, pq = _pa()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    spec = encoder.spec
    shape = (spec.frames, spec.pixels.image_size, spec.pixels.resize)
    plan = shard_plan(paths, files_per_shard)
    meta_path = out / "shards.json"
    meta = {"schema": SCHEMA_VERSION, "fingerprint": encoder.fingerprint, "encoder": encoder.name, "dim": spec.dim,
            "source": encoder.source, "segment_seconds": segment_seconds, "segmenter": segmenter,
            "shards": len(plan)}  # fmt: skip
    if meta_path.exists():
        old = json.loads(meta_path.read_text())
        if old.get("fingerprint") != encoder.fingerprint:
            raise EncoderMismatch(f"{out} holds shards of another model ({old.get('encoder')}); choose another --out")
    atomic_write_text(meta_path, json.dumps(meta, indent=2) + "\n")
    ray_ctx = None
    if ray:
        from .ray_pipeline import connect, start_actors

        rmod = connect(ray if isinstance(ray, str) else None)
        ray_ctx = (rmod, start_actors(rmod, encoder))
    done = failed = 0
    for n, files in enumerate(plan):
        target = out / f"part-{n:05d}.parquet"
        if target.exists():
            done += 1
            continue
        jobs = [
            DecodeJob(i, p, *shape, segment_seconds, min_tail_seconds, sampling=sampling, segmenter=segmenter)
            for i, p in enumerate(files)
        ]
        bsize = default_batch_size(str(encoder.device), spec)
        if ray_ctx is not None:
            from .ray_pipeline import RayBatcher, ray_messages

            rmod, actors = ray_ctx
            messages = ray_messages(rmod, jobs, max_inflight=2 * max(1, int(rmod.cluster_resources().get("CPU", 2)) - 1))
            batcher = RayBatcher(rmod, actors, bsize)
        else:
            messages = DecodePool(default_workers() if workers is None else workers).messages(iter(jobs))
            batcher = SegmentBatcher(encoder, bsize, StageTimes())
        cols: dict[str, list] = {k: [] for k in ("path", "segment", "start", "end", "start_frame", "end_frame", "frames",
                                                  "vector", "fingerprint", "size", "mtime_ns", "content_hash", "video")}  # fmt: skip
        for kind, job_id, payload in encode_stream(messages, batcher):
            if kind == "error":
                failed += 1
                continue
            if kind != "video" or not payload.vectors:
                continue
            path = files[job_id]
            st = os.stat(path)
            video = json.dumps(payload.info)
            for seg, p in sorted(payload.plans.items()):
                if seg not in payload.vectors:
                    continue
                cols["path"].append(path)
                cols["segment"].append(int(seg))
                cols["start"].append(float(p[3]))
                cols["end"].append(float(p[4]))
                cols["start_frame"].append(int(p[1]))
                cols["end_frame"].append(int(p[2]))
                cols["frames"].append([int(x) for x in payload.frame_idx.get(seg, [])])
                cols["vector"].append(np.asarray(payload.vectors[seg], np.float32))
                cols["fingerprint"].append(encoder.fingerprint)
                cols["size"].append(st.st_size)
                cols["mtime_ns"].append(st.st_mtime_ns)
                cols["content_hash"].append(content_hash(path, st.st_size))
                cols["video"].append(video)
        vectors = cols.pop("vector")
        table = pa.table(
            {
                **cols,
                "vector": pa.FixedSizeListArray.from_arrays(
                    pa.array(np.concatenate(vectors) if vectors else np.zeros(0, np.float32)), spec.dim
                ),
            }
        )
        table = table.replace_schema_metadata({"vsearch": json.dumps(meta)})
        atomic_write(target, lambda tmp, table=table: pq.write_table(table, tmp))
        done += 1
        if on_shard:
            on_shard(done, len(plan))
    return {"out": str(out), "shards": len(plan), "failed_files": failed, "fingerprint": encoder.fingerprint}


def import_shards(store, directory: str | os.PathLike[str], encoder) -> dict:
    """Load shards into ``store`` (bound to ``encoder``; its fingerprint must match the shards').
    Call while holding the store's write lock. Videos already in the store are replaced."""
    from ..store.store import SegmentWrite, VideoWrite

    pa, pq = _pa()
    d = Path(directory)
    parts = sorted(d.glob("part-*.parquet"))
    if not parts:
        raise DatasetError(f"{d}: no part-*.parquet shards (write them with vsearch embed ... --out {d})")
    rec = store.bind_encoder(encoder)
    dim = int(rec.spec["dim"])
    videos = segments = 0
    for part in parts:
        table = pq.read_table(part)
        fps = set(table.column("fingerprint").to_pylist())
        if fps != {encoder.fingerprint}:
            raise EncoderMismatch(
                f"{part.name}: made by another model ({', '.join(f[:12] for f in fps)}), the store's is {encoder.fingerprint[:12]}"
            )
        vec_col = table.column("vector").combine_chunks()
        if vec_col.type.list_size != dim:
            raise DatasetError(f"{part.name}: {vec_col.type.list_size}-dimensional vectors, the store's encoder makes {dim}")
        vectors = np.asarray(vec_col.flatten().to_numpy(zero_copy_only=False), np.float32).reshape(-1, dim)
        norms = np.linalg.norm(vectors, axis=1)
        if len(norms) and float(np.abs(norms - 1).max()) > 1e-3:
            bad = int(np.abs(norms - 1).argmax())
            raise DatasetError(f"{part.name}: row {bad} has norm {norms[bad]:.4f}, not a unit vector")
        rows = table.drop(["vector"]).to_pylist()
        by_path: dict[str, list[int]] = {}
        for i, r in enumerate(rows):
            by_path.setdefault(r["path"], []).append(i)
        writes = []
        for path, idx in by_path.items():
            r0 = rows[idx[0]]
            segs = [
                SegmentWrite(
                    rows[i]["segment"],
                    rows[i]["start"],
                    rows[i]["end"],
                    rows[i]["start_frame"],
                    rows[i]["end_frame"],
                    rows[i]["frames"],
                    vectors[i],
                )  # fmt: skip
                for i in sorted(idx, key=lambda i: rows[i]["segment"])
            ]
            writes.append(VideoWrite(path, r0["size"], r0["mtime_ns"], r0["content_hash"], json.loads(r0["video"]), segs))
        for i in range(0, len(writes), 64):
            store.commit(rec.id, writes[i : i + 64])
        videos += len(writes)
        segments += len(rows)
    store.save_index()
    return {"shards": len(parts), "videos": videos, "segments": segments}
