"""Indexing: discover → diff against the store → decode → encode → commit, streaming.

The unit of work and of failure is one file. Decoding runs in worker processes
(``video.workers``) that stream segments back; the encoder batches segments across files; each
finished video is written whole (its row, segments and vectors in one transaction, a few videos
per transaction). A file that fails is recorded with a one-line reason and the run goes on.

Re-running is cheap: a file whose size and mtime match the store is skipped without reading
it; one whose content hash matches is only touched; a renamed file keeps its vectors; files
gone from disk are removed.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Sequence

from .errors import StoreError
from .perf import trace, tune_malloc
from .ingest_plan import (
    DEFAULT_INDEX_SAMPLING,
    RESEGMENT_KEY,
    IndexReport,
    LazyEncoder,
    Progress,
    Replan,
    check_roots,
    diff,
    record_failure,
    refuse_empty_roots,
    replans,
    resegment_pending,
)
from .store.store import SegmentWrite, Store, VideoWrite
from .video.discover import FoundFile, list_videos
from .video.pictures import THUMB_WIDTH, encode_jpeg
from .video.workers import DecodeJob, DecodePool, default_workers

__all__ = ["IndexReport", "Progress", "check_roots", "index"]

#: Write this many finished videos per transaction (or whatever is ready after COMMIT_SECONDS).
COMMIT_EVERY = 8
COMMIT_SECONDS = 2.0
#: Persist the FAISS file at least this often during long runs (it is always saved at the end).
SAVE_SECONDS = 300.0


def index(
    store: Store,
    roots: Sequence[str | os.PathLike[str]],
    encoder,
    *,
    workers: int | None = None,
    batch_size: int | None = None,
    decode_timeout: float | None = 120.0,
    segment_seconds: float | None = None,
    progress: Progress | None = None,
    wait: bool = False,
    stop: threading.Event | None = None,
    faults: dict[str, str] | None = None,
    thumbnails: bool = True,
    ray: str | bool | None = None,
    sampling: str = DEFAULT_INDEX_SAMPLING,
    segmenter: str | None = None,
    resegment: bool = False,
) -> IndexReport:
    """Bring the store up to date with the videos under ``roots``.

    ``stop`` (set it from a signal handler) finishes the files in progress, saves, and returns
    with ``interrupted=True``; running ``index`` again picks up where it stopped. ``faults``
    maps paths to an injected decoder fault ("segfault", "hang") and exists for tests.
    ``thumbnails``: store a small JPEG per segment from the frames already decoded. ``ray``:
    decode and encode on Ray (True: a local Ray or ``RAY_ADDRESS``; a string: that cluster);
    discovery, the diff and every write stay here (``scale.ray_pipeline``). ``sampling``: "fast"
    takes the nearest keyframe for a sampled frame when the file's GOPs allow, "exact" the
    uniform frames (``vsearch.video.readplan``); the store records it. ``encoder`` may be a
    ``LazyEncoder`` for the store's own model: decoding then starts while it loads.
    ``segmenter``: "shots" or "fixed" (``vsearch.video.segmenting``); None keeps the store's.
    A store holding videos refuses another segmenter or ``segment_seconds`` unless
    ``resegment``: then every stored video is planned again, and those whose segments change
    are re-embedded (an interrupted re-plan is finished by the next run).
    """
    tune_malloc()
    trace("ingest: start")
    t_start = time.perf_counter()
    check_roots(roots, store)
    ray_ctx = None
    if ray:
        from .scale.ray_pipeline import connect, start_actors

        rmod = connect(ray if isinstance(ray, str) else None)
        encoder = encoder.get() if isinstance(encoder, LazyEncoder) else encoder
        ray_ctx = (rmod, start_actors(rmod, encoder))
    lock = store.lock("index", wait=wait)
    try:
        # A lazy encoder is bound once it has loaded (a new store has no encoder until then).
        rec = store.encoder() if isinstance(encoder, LazyEncoder) else store.bind_encoder(encoder)
        encoder_id = rec.id if rec is not None else None
        if segmenter is not None:
            store.set_segmenter(segmenter, resegment=resegment)
        if segment_seconds is not None:
            store.set_segmenting(segment_seconds, resegment=resegment)
        if resegment:
            store.set_setting(RESEGMENT_KEY, "pending")
        resegment = resegment_pending(store)
        seg_s, tail_s = store.segmenting()
        mode = store.segmenter()
        roots = [os.fspath(r) for r in roots]
        run_id = store.start_run("index", roots, encoder_id)
        report = IndexReport(run_id, sampling=sampling, segmenter=mode)
        times: dict = {"t_start": t_start}  # + the stage timer once encoding starts (its module imports torch)
        try:
            listing = list_videos(roots)
            refuse_empty_roots(store, roots, listing)
            plan = diff(store, listing)
            report.unchanged, report.moved = plan.unchanged, plan.moved
            report.not_video = dict(listing.not_video)
            report.warnings += [(p, f"folder skipped: {r}") for p, r in plan.skipped]
            store.prune_failures(listing.roots, {f.path for f in listing.files})
            for f, path, reason in plan.failed:
                record_failure(store, report, path, reason, f)
            if plan.missing:
                store.commit(encoder_id, (), plan.missing.values())  # (a new store has none missing)
                report.removed = sorted(plan.missing)
            again: list[Replan] = []
            if resegment:
                again, cannot = replans(store, plan)
                report.warnings += cannot
            todo = [(f, h, None) for f, h in plan.todo] + [(r.file, r.content_hash, r) for r in again]
            if progress:
                progress.start(len(todo))
            _encode_and_write(
                store, encoder_id, encoder, todo, report, times,
                seg_s=seg_s, tail_s=tail_s, workers=workers, batch_size=batch_size,
                decode_timeout=decode_timeout, progress=progress, stop=stop, faults=faults or {},
                thumbnails=thumbnails, ray_ctx=ray_ctx, sampling=sampling, segmenter=mode,
            )  # fmt: skip
            report.interrupted = bool(stop and stop.is_set())
            if resegment and not report.interrupted:
                store.set_setting(RESEGMENT_KEY, "done")
        except BaseException:
            # Committed videos stay; record the run as failed without masking the original error
            # (on a full disk, saving the index would fail the same way).
            report.seconds = time.perf_counter() - t_start
            with contextlib.suppress(Exception):
                store.save_index()
            with contextlib.suppress(Exception):
                store.finish_run(run_id, "failed", report.counts(), {**_as_dict(times), "total": round(report.seconds, 3)})
            raise
        t0 = time.perf_counter()
        store.save_index()
        trace("ingest: index saved")
        if not report.interrupted:
            report.index_change = store.apply_index_policy()
        timings = _as_dict(times)
        timings["write"] = round(timings.get("write", 0.0) + time.perf_counter() - t0, 3)
        report.seconds = time.perf_counter() - t_start
        report.timings = {**timings, "total": round(report.seconds, 3)}
        store.finish_run(run_id, "interrupted" if report.interrupted else "completed", report.counts(), report.timings)
        trace("ingest: run recorded")
        return report
    finally:
        lock.release()


def _encode_and_write(
    store: Store,
    encoder_id: int | None,
    encoder,
    todo: list[tuple[FoundFile, str, Replan | None]],
    report: IndexReport,
    timer: dict,
    *,
    seg_s: float,
    tail_s: float,
    workers: int | None,
    batch_size: int | None,
    decode_timeout: float | None,
    progress: Progress | None,
    stop: threading.Event | None,
    faults: dict[str, str],
    thumbnails: bool = True,
    ray_ctx: tuple | None = None,
    sampling: str = "exact",
    segmenter: str = "fixed",
) -> None:
    if not todo:
        if isinstance(encoder, LazyEncoder) and encoder_id is None:
            store.bind_encoder(encoder.get())  # a new store keeps the model it was asked for
        return
    frames, image_size, resize = _shape(encoder)
    files = {i: f for i, (f, _h, _r) in enumerate(todo)}
    hashes = {i: h for i, (_f, h, _r) in enumerate(todo)}
    again = {i: r for i, (_f, _h, r) in enumerate(todo) if r is not None}
    jobs = (
        DecodeJob(
            i,
            f.path,
            frames,
            image_size,
            resize,
            seg_s,
            tail_s,
            sampling=sampling,
            segmenter=segmenter,
            stream_plans=ray_ctx is None,  # (Ray's first task counts the plans of its info message)
            known_plans=r.plans if r is not None else None,
            thumb_width=THUMB_WIDTH if thumbnails else None,
            fault=faults.get(f.path),
        )  # fmt: skip
        for i, (f, _h, r) in enumerate(todo)
    )
    if ray_ctx is None:
        # No more decoders than files: a lone file's decoder then gets every core (decoder_threads).
        n_workers = default_workers() if workers is None else workers
        pool = DecodePool(min(n_workers, len(todo)), timeout=decode_timeout)
        messages = pool.messages(jobs)  # decoding starts here, while a lazy encoder loads below
        trace("ingest: decode workers started")
    if isinstance(encoder, LazyEncoder):
        shape = _shape(encoder)
        encoder = encoder.get()
        bound = store.bind_encoder(encoder).id  # EncoderMismatch if the folder now holds another model
        if (encoder_id is not None and bound != encoder_id) or _shape(encoder) != shape:
            raise StoreError(f"the model changed while this run decoded for it ({_shape(encoder)} != {shape}); run index again")
        encoder_id = bound
    trace("ingest: model ready")
    # torch from here on: imported after the decoders started.
    from .embedding import SegmentBatcher, StageTimes, default_batch_size, encode_stream

    times = timer["times"] = StageTimes()
    spec = encoder.spec
    bsize = batch_size or default_batch_size(str(encoder.device), spec)
    if ray_ctx is not None:
        from .scale.ray_pipeline import RayBatcher, ray_messages

        rmod, actors = ray_ctx
        stopping = threading.Event()

        def limited(jobs_iter):
            for job in jobs_iter:
                if stopping.is_set():
                    return
                yield job

        cpus = max(1, int(rmod.cluster_resources().get("CPU", 2)) - len(actors))
        messages = ray_messages(rmod, limited(jobs), max_inflight=2 * cpus)
        batcher = RayBatcher(rmod, actors, bsize)
        pool = None
    else:
        batcher = SegmentBatcher(encoder, bsize, times)
    ready: list[VideoWrite] = []
    same_cuts: dict[int, list[float] | None] = {}  # re-planned videos whose segments stayed
    last_commit = last_save = time.monotonic()

    def write(force: bool = False) -> None:
        nonlocal last_commit, last_save
        if force or len(same_cuts) >= 64:
            store.set_cuts(same_cuts)
            same_cuts.clear()
        if not ready or not (force or len(ready) >= COMMIT_EVERY or time.monotonic() - last_commit > COMMIT_SECONDS):
            return
        t0 = time.perf_counter()
        store.commit(encoder_id, ready)
        trace(f"ingest: committed {len(ready)} videos")
        report.indexed += [v.path for v in ready if v.path not in replanned]
        report.segments += sum(len(v.segments) for v in ready)
        ready.clear()
        last_commit = time.monotonic()
        if last_commit - last_save > SAVE_SECONDS:
            store.save_index()
            last_save = time.monotonic()
        times.write += time.perf_counter() - t0

    def check_stop(_msg) -> None:
        if stop is not None and stop.is_set():
            if pool is not None:
                pool.stop_submitting()
            else:
                stopping.set()

    replanned: set[str] = set()  # their rows are replaced, not newly indexed
    first_vector = True
    try:
        stream = encode_stream(messages, batcher, times, on_message=check_stop, keep_thumbnails=thumbnails)
        for kind, job_id, payload in stream:
            f = files[job_id]
            if kind == "segments" and progress:
                progress.update(new_segments=payload)
            elif kind == "vector":
                if first_vector:
                    trace("ingest: first segment embedded")
                    first_vector = False
                if progress:
                    progress.update(segments=1)
            elif kind == "error":
                if progress:
                    progress.update(files=1, current=os.path.basename(f.path))
                _fail(store, report, f, payload, job_id in again)
            elif kind == "video":
                if progress:
                    progress.update(files=1, current=os.path.basename(f.path))
                if job_id in again:
                    report.replanned += 1
                    if (payload.info or {}).get("same_plan"):
                        same_cuts[again[job_id].video_id] = payload.info.get("cuts")
                        write()
                        continue
                changed = _changed_since_listing(f)
                video = None if changed else _to_write(payload, f, hashes[job_id], report, spec.pixels.resize)
                if changed:
                    _fail(store, report, f, changed, job_id in again)
                elif video is None:
                    why = payload.seg_errors[0][1] if payload.seg_errors else "no frames decoded"
                    _fail(store, report, f, f"no segment could be decoded ({why})", job_id in again)
                else:
                    if job_id in again:
                        report.resegmented += 1
                        replanned.add(f.path)
                    ready.append(video)
            write()
    finally:
        write(force=True)
        if pool is not None:
            timer["first_segment_at"] = pool.first_segment_at


def _fail(store: Store, report: IndexReport, f: FoundFile, reason: str, replanning: bool) -> None:
    """A file that failed: recorded as a failure, or, for a stored video being re-planned, a
    warning (its stored segments and vectors stay as they were)."""
    if replanning:
        report.warnings.append((f.path, f"could not be re-planned ({reason}); its segments stay as they were"))
    else:
        record_failure(store, report, f.path, reason, f)


def _changed_since_listing(f: FoundFile) -> str | None:
    """A file replaced or deleted while it was decoded must not be stored under its old identity."""
    try:
        st = os.stat(f.path)
    except OSError:
        return "file disappeared while it was being indexed"
    if st.st_size != f.size or st.st_mtime_ns != f.mtime_ns:
        return "file changed while it was being indexed; it will be indexed on the next run"
    return None


def _shape(encoder) -> tuple[int, int, str]:
    """(frames, image size, resize) that decoding needs, from a model or a lazy one's record."""
    if isinstance(encoder, LazyEncoder):
        return encoder.frames, encoder.image_size, encoder.resize
    spec = encoder.spec
    return spec.frames, spec.pixels.image_size, spec.pixels.resize


def _as_dict(timer: dict) -> dict:
    """Seconds per stage, and when the first segment was decoded (from the start of the run)."""
    out = timer["times"].as_dict() if "times" in timer else {}
    if timer.get("first_segment_at") is not None:
        out["first_segment"] = round(timer["first_segment_at"] - timer["t_start"], 3)
    return out


def _to_write(video, f: FoundFile, chash: str, report: IndexReport, resize: str = "crop") -> VideoWrite | None:
    """The store rows of a finished video; None when no segment could be decoded."""
    if not video.vectors:
        return None
    notes = list(video.notes)
    if video.seg_errors:
        notes.insert(0, f"{len(video.seg_errors)} of {len(video.plans)} segments could not be decoded ({video.seg_errors[0][1]})")
    warning = "; ".join(notes) or None
    if warning:
        report.warnings.append((f.path, warning))
    info = video.info or {}
    # A squashed square frame is stretched back to the display aspect for its thumbnail.
    aspect = info["width"] / info["height"] if resize == "squash" and info.get("height") else None
    segments = [
        SegmentWrite(
            seg,
            p[3],
            p[4],
            p[1],
            p[2],
            video.frame_idx[seg],
            video.vectors[seg],
            _thumbnail(video.thumbs.get(seg), aspect),
        )  # fmt: skip
        for seg, p in sorted(video.plans.items())
        if seg in video.vectors
    ]
    return VideoWrite(f.path, f.size, f.mtime_ns, chash, video.info, segments, warning)


def _thumbnail(made, aspect: float | None) -> tuple[bytes, int, int] | None:
    """A segment's stored thumbnail: the worker's JPEG, or one encoded from the frame it sent
    (decoders that send frames, e.g. a Ray worker from before thumbnails were made there)."""
    if made is None or isinstance(made, tuple):
        return made
    return encode_jpeg(made, aspect)
