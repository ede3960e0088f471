"""What `vsearch index` has to do, decided before anything heavy is loaded.

Diffing a folder against the store needs only SQLite and ``stat``: this module imports neither
torch nor faiss, so re-running ``index`` on a folder where nothing changed answers in the time
it takes to list the folder (issue 24: the old command imported torch and loaded the model
first, 8-9 s for nothing). It also holds the command's policy, so the CLI only parses and
prints: which store to create and when, which model to load, re-embed before indexing.
``vsearch.ingest`` (torch) is imported only once there is something to encode.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from .config import DEFAULT_MODEL, default_store_dir
from .errors import MissingRootError, StoreNotFound
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
            "model_loaded": self.model_loaded,
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
        try:
            self._value = self._load()
        except BaseException as exc:  # noqa: BLE001 - re-raised by get() in the caller's thread
            self._error = exc

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


def index_if_unchanged(store: Store, roots: Sequence[str], segment_seconds: float | None = None) -> IndexReport | None:
    """The whole run when nothing under ``roots`` changed (by size and mtime), else None.

    Lists the folders and compares with SQLite only: no model, no FAISS. A file that failed
    before and is byte-for-byte unchanged (size, mtime) is reported failed again, not retried:
    one broken file must not cost every re-run a model load. The run is recorded like any
    other, so ``status`` shows when the folder was last checked.
    """
    t_start = time.perf_counter()
    rec = store.encoder()
    if rec is None:
        return None
    if segment_seconds is not None:
        store.set_segmenting(segment_seconds)  # refuses a different length, as a full run would
    roots = [os.fspath(r) for r in roots]
    listing = list_videos(roots)
    refuse_empty_roots(store, roots, listing)
    still_failing = unchanged_by_stat(store, listing)
    if still_failing is None:
        return None
    run_id = store.start_run("index", roots, rec.id)
    report = IndexReport(run_id, unchanged=len(listing.files) - len(still_failing), model_loaded=False)
    report.failed = [(p, f"{reason} (unchanged since; not retried)") for p, reason in still_failing]
    store.prune_failures(listing.roots, {f.path for f in listing.files})
    report.seconds = time.perf_counter() - t_start
    report.timings = {"total": round(report.seconds, 3)}
    store.finish_run(run_id, "completed", report.counts(), report.timings)
    return report


def folder_spec(ref: str) -> dict | None:
    """The spec a model folder declares in its ``vsearch.json`` (frames, pixels), read without
    loading the model; None for anything else (registry names, hub ids, official checkpoints)."""
    path = Path(ref).expanduser() / "vsearch.json"
    try:
        spec = json.loads(path.read_text()).get("spec")
        int(spec["frames"]), int(spec["pixels"]["image_size"]), str(spec["pixels"]["resize"])
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None
    return spec


def _same_source(model: str, source: str | None) -> bool:
    """``--model`` names the store's own model (a folder may be given relative to here)."""
    if source is None:
        return False
    if model == source:
        return True
    return os.path.exists(model) and os.path.abspath(model) == os.path.abspath(source)


def _loader(load: Callable | None) -> Callable:
    """``load``, or ``vsearch.models.load_encoder`` (imported here: torch, only once there is work)."""
    if load is not None:
        return load
    from .models import load_encoder

    return load_encoder


class Feedback(Protocol):
    """How a front end shows the slow steps of ``index_folders`` (both may do nothing)."""

    def loading(self, ref: str) -> AbstractContextManager: ...

    def progress(self, label: str) -> AbstractContextManager[Progress | None]: ...


class Quiet:
    """Feedback that shows nothing (library use, scripts)."""

    def loading(self, ref: str) -> AbstractContextManager:
        return contextlib.nullcontext()

    def progress(self, label: str) -> AbstractContextManager[Progress | None]:
        return contextlib.nullcontext()


def index_folders(
    store_dir: str | os.PathLike[str] | None,
    roots: Sequence[str | os.PathLike[str]],
    *,
    model: str | None = None,
    base: str | None = None,
    device: str = "auto",
    reembed: bool = False,
    sampling: str = DEFAULT_INDEX_SAMPLING,
    wait: bool = False,
    stop: threading.Event | None = None,
    feedback: Feedback | None = None,
    load: Callable | None = None,
    **options,
) -> IndexReport:
    """`vsearch index` as a function: open or create the store, choose and load the model only
    when there is something to encode, re-embed first when asked, then index.

    ``model``: None keeps the store's model (or the default for a new store). A new store is
    created once the model has loaded, or, for a model folder that declares its spec, while it
    loads (its first files decode meanwhile) and removed again if the load fails: a refused run
    leaves nothing behind. ``options``
    go to ``vsearch.ingest.index`` (workers, batch_size, decode_timeout, segment_seconds,
    thumbnails, ray). ``load`` replaces ``vsearch.models.load_encoder`` (tests count loads).
    An interrupted re-embedding returns a report with ``interrupted`` set and nothing indexed.
    """
    if sampling not in SAMPLING_MODES:
        from .errors import ConfigError

        raise ConfigError(f"unknown sampling {sampling!r}: use one of {', '.join(SAMPLING_MODES)}")
    feedback = feedback or Quiet()
    roots = [os.fspath(r) for r in roots]
    try:
        existing = Store.open(store_dir, create=False)
    except StoreNotFound:
        existing = None
    check_roots(roots, existing)  # a missing folder: one line, nothing created, nothing removed

    def load_model(ref: str, family: str | None = None):
        with feedback.loading(ref):
            return _loader(load)(ref, family=family, device=device, base=base)

    made_root: Path | None = None  # a store folder this call creates (removed if its model fails)
    encoder = None  # an existing store's model is chosen once the store is locked
    if existing is None:
        ref = model or DEFAULT_MODEL
        spec = folder_spec(ref)
        if spec is not None and not reembed and not options.get("ray"):
            # A model folder says what decoding needs: create the store, decode while it loads.
            root = Path(store_dir).expanduser() if store_dir is not None else default_store_dir()
            made_root = None if root.exists() else root
            encoder = LazyEncoder(lambda: _loader(load)(ref, family=None, device=device, base=base), spec)
        else:
            encoder = load_model(ref)
        store = Store.open(store_dir)
    else:
        store = existing
    try:
        return _index_open_store(
            store, existing is None, roots, encoder, model=model, load_model=load_model, load=load, device=device,
            base=base, reembed=reembed, sampling=sampling, wait=wait, stop=stop, feedback=feedback, **options,
        )  # fmt: skip
    except BaseException:
        if made_root is not None and isinstance(encoder, LazyEncoder) and encoder.failed:
            # The model did not load: leave no half-made store behind (as when loading came first).
            store.close()
            shutil.rmtree(made_root, ignore_errors=True)
        raise


def _index_open_store(
    store: Store, new: bool, roots: list[str], encoder, *, model, load_model, load, device, base, reembed, sampling,
    wait, stop, feedback, **options,
) -> IndexReport:  # fmt: skip
    """The rest of ``index_folders`` once the store is open (and, if new, its model chosen)."""
    with store, store.lock("index", wait=wait):  # refuse (or wait) before loading a model
        rec = store.encoder()
        if rec is not None and (model is None or _same_source(model, rec.source)):
            quick = index_if_unchanged(store, roots, options.get("segment_seconds"))
            if quick is not None:
                return quick
        if not new:
            ref = model or (rec.source if rec else DEFAULT_MODEL)
            family = rec.spec.get("family") if (rec and not model) else None
            if rec is not None and not reembed and not options.get("ray") and _same_source(ref, rec.source):
                # The store's own model: load it while the first files decode.
                encoder = LazyEncoder(lambda: _loader(load)(ref, family=family, device=device, base=base), rec.spec)
            else:
                encoder = load_model(ref, family)
        from .ingest import index as run_index

        if reembed and rec is not None and rec.fingerprint != encoder.fingerprint:
            from .reembed import reembed as run_reembed

            with feedback.progress("re-embedding") as bar:
                rr = run_reembed(
                    store, encoder, workers=options.get("workers"), batch_size=options.get("batch_size"),
                    decode_timeout=options.get("decode_timeout", 120.0), wait=wait, stop=stop, progress=bar,
                )  # fmt: skip
            if not rr.swapped:
                return IndexReport(None, interrupted=True, failed=list(rr.failed))
        try:
            with feedback.progress("indexing") as bar:
                return run_index(store, roots, encoder, progress=bar, wait=wait, stop=stop, sampling=sampling, **options)
        finally:
            if isinstance(encoder, LazyEncoder):
                encoder.settle()  # (only removals or renames: the model was never needed)
