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
from dataclasses import dataclass, field
from typing import Protocol

from .embedding import EncodedVideo, SegmentBatcher, StageTimes, default_batch_size, default_workers, encode_stream
from .errors import MissingRootError
from .store.store import SegmentWrite, Store, VideoWrite
from .thumbnails import encode_jpeg
from .video.discover import FoundFile, Listing, content_hash, is_video_name, list_videos
from .video.workers import DecodeJob, DecodePool

#: Write this many finished videos per transaction (or whatever is ready after COMMIT_SECONDS).
COMMIT_EVERY = 8
COMMIT_SECONDS = 2.0
#: Persist the FAISS file at least this often during long runs (it is always saved at the end).
SAVE_SECONDS = 300.0


class Progress(Protocol):
    """What ``index`` reports while it runs (the CLI draws a rich progress bar from it)."""

    def start(self, total_files: int) -> None: ...

    def update(self, *, files: int = 0, segments: int = 0, new_segments: int = 0, current: str | None = None) -> None: ...


@dataclass
class IndexReport:
    run_id: int
    indexed: list[str] = field(default_factory=list)
    unchanged: int = 0
    moved: list[tuple[str, str]] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)
    segments: int = 0
    seconds: float = 0.0
    timings: dict = field(default_factory=dict)
    interrupted: bool = False
    #: Set when the size policy rebuilt the FAISS index (flat -> IVF, or an IVF retrained).
    index_change: dict | None = None

    @property
    def ok(self) -> bool:
        return not self.failed and not self.interrupted

    def counts(self) -> dict:
        return {
            "indexed": len(self.indexed),
            "unchanged": self.unchanged,
            "moved": len(self.moved),
            "removed": len(self.removed),
            "failed": len(self.failed),
            "segments": self.segments,
        }


@dataclass
class _Plan:
    todo: list[tuple[FoundFile, str]]
    unchanged: int
    moved: list[tuple[str, str]]
    missing: dict[str, int]  # path -> video id
    failed: list[tuple[FoundFile | None, str, str]]  # (file, path, reason)
    skipped: list[tuple[str, str]]  # folders that could not be walked (path, reason)


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
) -> IndexReport:
    """Bring the store up to date with the videos under ``roots``.

    ``stop`` (set it from a signal handler) finishes the files in progress, saves, and returns
    with ``interrupted=True``; running ``index`` again picks up where it stopped. ``faults``
    maps paths to an injected decoder fault ("segfault", "hang") and exists for tests.
    ``thumbnails``: store a small JPEG per segment from the frames already decoded. ``ray``:
    decode and encode on Ray (True: a local Ray or ``RAY_ADDRESS``; a string: that cluster);
    discovery, the diff and every write stay here (``scale.ray_pipeline``).
    """
    from .perf import tune_malloc

    tune_malloc()
    t_start = time.perf_counter()
    check_roots(roots, store)
    ray_ctx = None
    if ray:
        from .scale.ray_pipeline import connect, start_actors

        rmod = connect(ray if isinstance(ray, str) else None)
        ray_ctx = (rmod, start_actors(rmod, encoder))
    lock = store.lock("index", wait=wait)
    try:
        rec = store.bind_encoder(encoder)
        if segment_seconds is not None:
            store.set_segmenting(segment_seconds)
        seg_s, tail_s = store.segmenting()
        roots = [os.fspath(r) for r in roots]
        run_id = store.start_run("index", roots, rec.id)
        report = IndexReport(run_id)
        times = StageTimes()
        try:
            listing = list_videos(roots)
            _refuse_empty_roots(store, roots, listing)
            plan = _diff(store, listing)
            report.unchanged, report.moved = plan.unchanged, plan.moved
            report.warnings += [(p, f"folder skipped: {r}") for p, r in plan.skipped]
            store.prune_failures(listing.roots, {f.path for f in listing.files})
            for f, path, reason in plan.failed:
                _fail(store, report, run_id, path, reason, f)
            if plan.missing:
                store.commit(rec.id, (), plan.missing.values())
                report.removed = sorted(plan.missing)
            if progress:
                progress.start(len(plan.todo))
            _encode_and_write(
                store, rec.id, encoder, plan.todo, report, times,
                seg_s=seg_s, tail_s=tail_s, workers=workers, batch_size=batch_size,
                decode_timeout=decode_timeout, progress=progress, stop=stop, faults=faults or {},
                thumbnails=thumbnails, ray_ctx=ray_ctx,
            )  # fmt: skip
            report.interrupted = bool(stop and stop.is_set())
        except BaseException:
            # Committed videos stay; record the run as failed without masking the original error
            # (on a full disk, saving the index would fail the same way).
            report.seconds = time.perf_counter() - t_start
            with contextlib.suppress(Exception):
                store.save_index()
            with contextlib.suppress(Exception):
                store.finish_run(run_id, "failed", report.counts(), {**times.as_dict(), "total": round(report.seconds, 3)})
            raise
        t0 = time.perf_counter()
        store.save_index()
        if not report.interrupted:
            report.index_change = store.apply_index_policy()
        times.write += time.perf_counter() - t0
        report.seconds = time.perf_counter() - t_start
        report.timings = {**times.as_dict(), "total": round(report.seconds, 3)}
        store.finish_run(run_id, "interrupted" if report.interrupted else "completed", report.counts(), report.timings)
        return report
    finally:
        lock.release()


def check_roots(roots: Sequence[str | os.PathLike[str]], store: Store | None = None) -> None:
    """Refuse a root that does not exist, before anything is created, loaded or removed.

    An unmounted drive or a renamed folder looks exactly like "every video was deleted";
    treating it so would throw away hours of embedding. Removing on purpose is ``vsearch remove``.
    """
    for root in roots:
        root = os.fspath(root)
        if os.path.exists(root):
            continue
        held = len(store.known_videos([os.path.abspath(root)])) if store is not None else 0
        if held:
            raise MissingRootError(
                f"{root} does not exist (not mounted? renamed?): the store holds {held} videos under it and nothing "
                f"was removed; to remove them on purpose: vsearch remove {root}"
            )
        raise MissingRootError(f"{root}: no such file or folder")


def _refuse_empty_roots(store: Store, roots: Sequence[str], listing: Listing) -> None:
    """A root that exists but holds no video at all while the store has videos under it is an
    empty mount point far more often than a deliberate wipe: refuse, remove nothing."""
    found_under = {r: 0 for r in listing.roots}
    for f in listing.files:
        for r in listing.roots:
            if f.path == r or f.path.startswith(r.rstrip(os.sep) + os.sep):
                found_under[r] += 1
    for r, n in found_under.items():
        if n == 0 and os.path.isdir(r):
            held = len(store.known_videos([r]))
            if held:
                raise MissingRootError(
                    f"{r} holds no videos (an empty mount point?) but the store holds {held} under it: nothing was "
                    f"removed; to remove them on purpose: vsearch remove {r}"
                )


def _diff(store: Store, listing: Listing) -> _Plan:
    known = store.known_videos(listing.roots)
    found = {f.path for f in listing.files}
    unreadable = {p for p, _ in listing.problems}
    missing = {p: k for p, k in known.items() if p not in found and p not in unreadable}
    # A folder that cannot be walked (a symlink loop, no permission) is skipped with a warning; a
    # video file that cannot be read is a failed file.
    failed: list[tuple[FoundFile | None, str, str]] = [(None, p, r) for p, r in listing.problems if is_video_name(p)]
    skipped = [(p, r) for p, r in listing.problems if not is_video_name(p)]
    todo: list[tuple[FoundFile, str]] = []
    unchanged = 0
    for f in listing.files:
        k = known.get(f.path)
        if k is not None and k.size == f.size and k.mtime_ns == f.mtime_ns:
            unchanged += 1
            continue
        try:
            chash = content_hash(f.path, f.size)
        except OSError as exc:
            if isinstance(exc, FileNotFoundError):
                reason = "file disappeared before it could be read"
            elif isinstance(exc, PermissionError):
                reason = "permission denied"
            else:
                reason = f"cannot read: {exc.strerror or exc}"
            failed.append((f, f.path, reason))
            continue
        if k is not None and k.content_hash == chash:
            store.touch_video(k.id, f.mtime_ns)  # same bytes, new mtime (copied, touched)
            unchanged += 1
            continue
        todo.append((f, chash))
    # A new path whose content matches a video that vanished is a rename: keep its vectors.
    moved = []
    vanished = {known[p].content_hash: p for p in missing}
    still_todo = []
    for f, chash in todo:
        old = vanished.pop(chash, None) if f.path not in known else None
        if old is not None:
            store.move_video(missing.pop(old).id, f.path, f.size, f.mtime_ns)
            moved.append((old, f.path))
        else:
            still_todo.append((f, chash))
    # A file moved across roots (``mv vids vids2; vsearch index vids2``): its content matches a
    # stored video, indexed from any root, whose file is gone. Keep the vectors, update the row.
    if still_todo:
        elsewhere = store.videos_by_hash(h for _f, h in still_todo)
        claimed: set[int] = set()
        todo_left = []
        for f, chash in still_todo:
            gone = [
                (vid, p) for vid, p in elsewhere.get(chash, ())
                if vid not in claimed and p not in found and p != f.path and not os.path.exists(p)
            ]  # fmt: skip
            if f.path not in known and gone:
                vid, old = gone[0]
                claimed.add(vid)
                store.move_video(vid, f.path, f.size, f.mtime_ns)
                moved.append((old, f.path))
            else:
                todo_left.append((f, chash))
        still_todo = todo_left
    return _Plan(still_todo, unchanged, moved, {p: k.id for p, k in missing.items()}, failed, skipped)


def _fail(store: Store, report: IndexReport, run_id: int, path: str, reason: str, f: FoundFile | None) -> None:
    report.failed.append((path, reason))
    store.record_failure(path, reason, f.size if f else None, f.mtime_ns if f else None, run_id)


def _encode_and_write(
    store: Store,
    encoder_id: int,
    encoder,
    todo: list[tuple[FoundFile, str]],
    report: IndexReport,
    times: StageTimes,
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
) -> None:
    if not todo:
        return
    spec = encoder.spec
    files = {i: f for i, (f, _h) in enumerate(todo)}
    hashes = {i: h for i, (_f, h) in enumerate(todo)}
    jobs = (
        DecodeJob(i, f.path, spec.frames, spec.pixels.image_size, spec.pixels.resize, seg_s, tail_s, fault=faults.get(f.path))
        for i, (f, _h) in enumerate(todo)
    )
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
        pool = DecodePool(default_workers() if workers is None else workers, timeout=decode_timeout)
        messages = pool.messages(jobs)
        batcher = SegmentBatcher(encoder, bsize, times)
    ready: list[VideoWrite] = []
    last_commit = last_save = time.monotonic()

    def write(force: bool = False) -> None:
        nonlocal last_commit, last_save
        if not ready or not (force or len(ready) >= COMMIT_EVERY or time.monotonic() - last_commit > COMMIT_SECONDS):
            return
        t0 = time.perf_counter()
        store.commit(encoder_id, ready)
        report.indexed += [v.path for v in ready]
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

    try:
        stream = encode_stream(messages, batcher, times, on_message=check_stop, keep_thumbnails=thumbnails)
        for kind, job_id, payload in stream:
            f = files[job_id]
            if kind == "segments" and progress:
                progress.update(new_segments=payload)
            elif kind == "vector" and progress:
                progress.update(segments=1)
            elif kind == "error":
                if progress:
                    progress.update(files=1, current=os.path.basename(f.path))
                _fail(store, report, report.run_id, f.path, payload, f)
            elif kind == "video":
                if progress:
                    progress.update(files=1, current=os.path.basename(f.path))
                changed = _changed_since_listing(f)
                video = None if changed else _to_write(payload, f, hashes[job_id], report, spec.pixels.resize)
                if changed:
                    _fail(store, report, report.run_id, f.path, changed, f)
                elif video is None:
                    why = payload.seg_errors[0][1] if payload.seg_errors else "no frames decoded"
                    _fail(store, report, report.run_id, f.path, f"no segment could be decoded ({why})", f)
                else:
                    ready.append(video)
            write()
    finally:
        write(force=True)


def _changed_since_listing(f: FoundFile) -> str | None:
    """A file replaced or deleted while it was decoded must not be stored under its old identity."""
    try:
        st = os.stat(f.path)
    except OSError:
        return "file disappeared while it was being indexed"
    if st.st_size != f.size or st.st_mtime_ns != f.mtime_ns:
        return "file changed while it was being indexed; it will be indexed on the next run"
    return None


def _to_write(video: EncodedVideo, f: FoundFile, chash: str, report: IndexReport, resize: str = "crop") -> VideoWrite | None:
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
            encode_jpeg(video.thumbs[seg], aspect) if seg in video.thumbs else None,
        )  # fmt: skip
        for seg, p in sorted(video.plans.items())
        if seg in video.vectors
    ]
    return VideoWrite(f.path, f.size, f.mtime_ns, chash, video.info, segments, warning)
