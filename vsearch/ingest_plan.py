"""What `vsearch index` has to do, decided before anything heavy is loaded.

Diffing a folder against the store needs only SQLite and ``stat``: this module imports neither
torch nor faiss, so re-running ``index`` on a folder where nothing changed answers in the time
it takes to list the folder (issue 24: the old command imported torch and loaded the model
first, 8-9 s for nothing). ``LazyEncoder`` lets decoding start while a model loads. The
command built on these is ``vsearch.index_command``.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from .errors import MissingRootError
from .perf import trace
from .store.store import Store
from .video.discover import FoundFile, Listing, content_hash, display_path, is_video_name, list_videos

#: Sampling plans an index run may use (``vsearch.video.readplan``): ``exact`` decodes the
#: uniformly spaced frames; ``fast`` takes the nearest keyframe when it lies within half a GOP.
SAMPLING_MODES = ("exact", "fast")
DEFAULT_INDEX_SAMPLING = "fast"


class Progress(Protocol):
    """What ``index`` reports while it runs (the CLI draws a rich progress bar from it)."""

    def start(self, total_files: int) -> None: ...

    def update(self, *, files: int = 0, segments: int = 0, new_segments: int = 0, current: str | None = None) -> None: ...


@dataclass
class IndexReport:
    run_id: int | None
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
    #: How frames were chosen for the files indexed in this run ("exact" or "fast").
    sampling: str | None = None
    #: True when the diff found nothing to encode and no model was loaded.
    model_loaded: bool = True
    #: Files under the roots that are not videos, by extension (``Listing.not_video``).
    not_video: dict[str, int] = field(default_factory=dict)
    #: How the store cuts videos into segments ("shots" or "fixed").
    segmenter: str | None = None
    #: ``--resegment``: stored videos planned again, and how many of them got new segments (and
    #: were re-embedded); the others kept their vectors.
    replanned: int = 0
    resegmented: int = 0

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
            "not_video": sum(self.not_video.values()),
            **({"replanned": self.replanned, "resegmented": self.resegmented} if self.replanned else {}),
        }

    def as_dict(self) -> dict:
        """Everything a script needs, with printable paths (the `index --json` output)."""
        return {
            "counts": self.counts(),
            "failed": [{"path": display_path(p), "reason": r} for p, r in self.failed],
            "warnings": [{"path": display_path(p), "warning": w} for p, w in self.warnings],
            "removed": [display_path(p) for p in self.removed],
            "moved": [{"from": display_path(a), "to": display_path(b)} for a, b in self.moved],
            "seconds": round(self.seconds, 3),
            "timings": self.timings,
            "interrupted": self.interrupted,
            "index_change": self.index_change,
            "sampling": self.sampling,
            "segmenter": self.segmenter,
            "model_loaded": self.model_loaded,
            "not_video": dict(sorted(self.not_video.items())),
        }


@dataclass
class Changes:
    """The diff of a listing against the store: what to encode, what merely moved or vanished."""

    todo: list[tuple[FoundFile, str]]
    unchanged: int
    moved: list[tuple[str, str]]
    missing: dict[str, int]  # path -> video id
    failed: list[tuple[FoundFile | None, str, str]]  # (file, path, reason)
    skipped: list[tuple[str, str]]  # folders that could not be walked (path, reason)


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


def refuse_empty_roots(store: Store, roots: Sequence[str], listing: Listing) -> None:
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


def unchanged_by_stat(store: Store, listing: Listing) -> list[tuple[str, str]] | None:
    """None when the run has something to do; else the files that failed before and have not
    changed since (path, reason), which a re-run would only fail again. Nothing to do: every
    listed file is stored, or failed, with the same size and mtime, nothing stored under the
    roots is gone, and nothing failed to list. Read-only."""
    if listing.problems:
        return None
    known = store.known_videos(listing.roots)
    failed = store.failed_files(listing.roots) if len(known) != len(listing.files) else {}
    still_failing: list[tuple[str, str]] = []
    for f in listing.files:
        k = known.get(f.path)
        if k is not None:
            if k.size != f.size or k.mtime_ns != f.mtime_ns:
                return None
            continue
        size, mtime, reason = failed.get(f.path, (None, None, ""))
        if size != f.size or mtime != f.mtime_ns:
            return None
        still_failing.append((f.path, reason))
    if len(known) + len(still_failing) != len(listing.files):
        return None  # (paths stored under the roots but gone from the listing)
    return still_failing


def diff(store: Store, listing: Listing) -> Changes:
    """Compare ``listing`` with the store. Touches (same bytes, new mtime) and renames (same
    bytes, new path) are applied here, since they need no decoding; the rest is returned."""
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
    return Changes(still_todo, unchanged, moved, {p: k.id for p, k in missing.items()}, failed, skipped)


class LazyEncoder:
    """The store's own model, loading in a background thread from the moment it is made.

    Decoding needs only the frame count, size and resize rule, which the store's encoder record
    holds; ``vsearch.ingest`` starts its decode workers and only then waits in ``get()``. The
    model's load (torch and transformers imports: seconds) thus overlaps the first files'
    decoding instead of preceding it.
    """

    def __init__(self, load: Callable[[], object], spec: dict):
        self.frames = int(spec["frames"])
        self.image_size = int(spec["pixels"]["image_size"])
        self.resize = str(spec["pixels"]["resize"])
        self._load = load
        self._value = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="vsearch-model-load", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        trace("model: load starts")
        try:
            self._value = self._load()
        except BaseException as exc:  # noqa: BLE001 - re-raised by get() in the caller's thread
            self._error = exc
        trace("model: loaded")

    def settle(self) -> None:
        """Wait for the load to end, used or not: a process must not exit while a thread is
        still importing torch (interpreter shutdown under a half-done import can crash)."""
        self._thread.join()

    @property
    def failed(self) -> bool:
        """The load ended with an error."""
        return not self._thread.is_alive() and self._error is not None

    def get(self):
        """The loaded model (waits for it); the loader's own error if it failed."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value


def record_failure(store: Store, report: IndexReport, path: str, reason: str, f: FoundFile | None) -> None:
    report.failed.append((path, reason))
    store.record_failure(path, reason, f.size if f else None, f.mtime_ns if f else None, report.run_id)


def index_if_unchanged(
    store: Store, roots: Sequence[str], segment_seconds: float | None = None, segmenter: str | None = None
) -> IndexReport | None:
    """The whole run when nothing under ``roots`` changed (by size and mtime), else None.

    Lists the folders and compares with SQLite only: no model, no FAISS. A file that failed
    before and is byte-for-byte unchanged (size, mtime) is reported failed again, not retried:
    one broken file must not cost every re-run a model load. The run is recorded like any
    other, so ``status`` shows when the folder was last checked. An unfinished ``--resegment``
    is never answered here.
    """
    t_start = time.perf_counter()
    rec = store.encoder()
    if rec is None or resegment_pending(store):
        return None
    if segment_seconds is not None:
        store.set_segmenting(segment_seconds)  # refuses a different length, as a full run would
    if segmenter is not None:
        store.set_segmenter(segmenter)  # likewise a different segmenter
    roots = [os.fspath(r) for r in roots]
    listing = list_videos(roots)
    refuse_empty_roots(store, roots, listing)
    still_failing = unchanged_by_stat(store, listing)
    if still_failing is None:
        return None
    run_id = store.start_run("index", roots, rec.id)
    report = IndexReport(
        run_id, unchanged=len(listing.files) - len(still_failing), model_loaded=False, not_video=dict(listing.not_video),
        segmenter=store.segmenter(),
    )  # fmt: skip
    report.failed = [(p, f"{reason} (unchanged since; not retried)") for p, reason in still_failing]
    store.prune_failures(listing.roots, {f.path for f in listing.files})
    report.seconds = time.perf_counter() - t_start
    report.timings = {"total": round(report.seconds, 3)}
    store.finish_run(run_id, "completed", report.counts(), report.timings)
    return report


#: Meta key set while ``index --resegment`` has stored videos left to re-plan (an interrupted
#: run is finished by the next ``index``, with or without the flag).
RESEGMENT_KEY = "resegment"


def resegment_pending(store: Store) -> bool:
    return store.get_setting(RESEGMENT_KEY) == "pending"


@dataclass
class Replan:
    """A stored video to plan again with the store's segmenter: its identity as stored, and its
    segments as ``(start_frame, end_frame)`` to compare the new plan with."""

    file: FoundFile
    content_hash: str
    video_id: int
    plans: tuple[tuple[int, int], ...]


def replans(store: Store, changes: Changes) -> tuple[list[Replan], list[tuple[str, str]]]:
    """The stored videos ``--resegment`` plans again (every one whose file is still there as
    stored, except those this run re-indexes anyway), and warnings for those it cannot."""
    busy = {f.path for f, _h in changes.todo} | set(changes.missing)
    out: list[Replan] = []
    skipped: list[tuple[str, str]] = []
    for known, path, plans in store.stored_plans():
        if path in busy:
            continue
        try:
            st = os.stat(path)
        except OSError:
            skipped.append((path, "file not found: its segments were not re-planned (index its folder to drop it)"))
            continue
        if st.st_size != known.size or st.st_mtime_ns != known.mtime_ns:
            skipped.append((path, "file changed since it was indexed: its segments were not re-planned (index its folder)"))
            continue
        out.append(Replan(FoundFile(path, known.size, known.mtime_ns), known.content_hash, known.id, plans))
    return out, skipped
