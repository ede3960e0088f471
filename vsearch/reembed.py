"""Refresh a store with a new encoder (after training) without a window where search breaks.

The new encoder's vectors are written beside the old ones, for the segments the store already
has (same time ranges; frames re-sampled for the new encoder's frame count). Searches keep
using the old encoder all along. Only when every video has its new vectors does one
transaction make the new encoder the store's encoder and drop the old vectors. Interrupt it
(Ctrl-C, a kill) and run it again: videos already done are skipped.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field

from .embedding import SegmentBatcher, StageTimes, default_batch_size, default_workers, encode_stream
from .errors import EmptyStore, StoreError
from .store.store import Store
from .video.workers import DecodeJob, DecodePool


@dataclass
class ReembedReport:
    videos: int = 0
    segments: int = 0
    skipped: int = 0  # already had the new vectors (resumed run)
    failed: list[tuple[str, str]] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)  # removed at the swap; `vsearch index` re-adds them
    swapped: bool = False
    interrupted: bool = False
    seconds: float = 0.0
    timings: dict = field(default_factory=dict)


def reembed(
    store: Store,
    encoder,
    *,
    workers: int | None = None,
    batch_size: int | None = None,
    decode_timeout: float | None = 120.0,
    wait: bool = False,
    stop: threading.Event | None = None,
    progress=None,
    swap: bool = True,
    restart: bool = False,
) -> ReembedReport:
    """Embed every stored segment with ``encoder`` and make it the store's encoder.

    ``swap=False`` stops before the switch (the vectors stay staged); ``restart`` discards an
    interrupted re-embedding into another model first.
    """
    t_start = time.perf_counter()
    lock = store.lock("reembed", wait=wait)
    report = ReembedReport()
    times = StageTimes()
    try:
        current = store.encoder()
        if current is None:
            raise EmptyStore(f"the store at {store.root} is empty: nothing to re-embed (use `vsearch index`)")
        if current.fingerprint == encoder.fingerprint:
            return report
        staged = store.staged_encoder()
        if staged is not None and staged.fingerprint != encoder.fingerprint and restart:
            store.unstage_encoder()
            staged = None
        if staged is not None and staged.fingerprint != encoder.fingerprint:
            raise StoreError(
                f"another re-embedding ({staged.name}) was interrupted in this store; finish it with "
                f"`vsearch reembed --model {staged.source}` or start over with --restart"
            )
        target = store.stage_encoder(encoder)
        todo = []
        for item in store.videos_missing_vectors(target.id):
            why = _changed(*item[1:4])
            if why:
                report.failed.append((item[1], why))
            else:
                todo.append(item)
        report.skipped = store.count_videos() - len(todo) - len(report.failed)
        if progress:
            progress.start(len(todo))
        spec = encoder.spec
        # Frames are chosen as the store chose them: a store indexed fast stays fast ("mixed": exact).
        sampling = "fast" if store.sampling() == "fast" else "exact"
        jobs = (
            DecodeJob(
                i,
                path,
                spec.frames,
                spec.pixels.image_size,
                spec.pixels.resize,
                0.0,
                0.0,
                segments=tuple(segs),
                sampling=sampling,
                cuts=cuts,
            )  # fmt: skip
            for i, (_vid, path, _size, _mtime, segs, cuts) in enumerate(todo)
        )
        pool = DecodePool(default_workers() if workers is None else workers, timeout=decode_timeout)
        batcher = SegmentBatcher(encoder, batch_size or default_batch_size(str(encoder.device), spec), times)

        def check_stop(_msg) -> None:
            if stop is not None and stop.is_set():
                pool.stop_submitting()

        for kind, job_id, payload in encode_stream(pool.messages(jobs), batcher, times, on_message=check_stop):
            path = todo[job_id][1]
            if kind == "vector" and progress:
                progress.update(segments=1)
            elif kind == "error":
                report.failed.append((path, payload))
                if progress:
                    progress.update(files=1, current=os.path.basename(path))
            elif kind == "video":
                t0 = time.perf_counter()
                rows = [(seg, payload.frame_idx[seg], vec) for seg, vec in payload.vectors.items()]
                store.add_embeddings(target.id, rows)
                report.videos += 1
                report.segments += len(rows)
                times.write += time.perf_counter() - t0
                if progress:
                    progress.update(files=1, current=os.path.basename(path))
        report.interrupted = bool(stop and stop.is_set())
        if swap and not report.interrupted:
            t0 = time.perf_counter()
            report.dropped = store.swap_encoder(target.id)
            report.swapped = True
            store.save_index()
            store.apply_index_policy()
            times.write += time.perf_counter() - t0
    finally:
        lock.release()
        report.seconds = time.perf_counter() - t_start
        report.timings = times.as_dict()
    return report


def _changed(path: str, size: int, mtime_ns: int) -> str | None:
    """Why a stored file can no longer be re-embedded as stored (its segments describe another file)."""
    try:
        st = os.stat(path)
    except OSError:
        return "file is gone; it will be dropped (run `vsearch index` to re-add what exists)"
    if st.st_size != size or st.st_mtime_ns != mtime_ns:
        return "file changed since it was indexed; it will be dropped and re-indexed by the next `vsearch index`"
    return None
