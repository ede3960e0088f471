"""`vsearch index` as a function: which store, which model, when to load it, re-embed first.

The command's policy lives here, so the CLI only parses and prints (issue 27). Nothing heavy is
imported until there is work: an unchanged folder is answered from SQLite alone
(``ingest_plan.index_if_unchanged``), and a changed one starts decoding while the model loads
(``ingest_plan.LazyEncoder``). ``vsearch.ingest`` (torch) is imported only then.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from functools import partial
from pathlib import Path
from typing import Protocol

from .config import DEFAULT_MODEL
from .config import store_dir as config_store_dir
from .errors import ConfigError, StoreNotFound
from .ingest_plan import (
    DEFAULT_INDEX_SAMPLING,
    SAMPLING_MODES,
    IndexReport,
    LazyEncoder,
    Progress,
    check_roots,
    index_if_unchanged,
)
from .models import load_encoder
from .perf import trace
from .store.store import Store
from .video.segmenting import DEFAULT_SEGMENTER, SEGMENTERS


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
    """``load``, or ``vsearch.models.load_encoder`` (which imports torch when it is called)."""
    return load if load is not None else load_encoder


def _indexing_model(
    load: Callable | None, ref: str, *, family: str | None, fingerprint: str | None, device: str, base: str | None,
    video_path: bool,
) -> Callable[[], object]:  # fmt: skip
    """How a lazy load gets the model that indexes: with ``video_path``, the plain-torch video
    tower (``models.video_path``: mean-pool, CLIP-ViP) when the user's cache vouches for ``ref``
    (and for ``fingerprint``, an existing store's), else the full model."""

    def run():
        if video_path and base is None:
            from .models import video_path as fast_path

            fast = fast_path.load(ref, fingerprint=fingerprint, device=device)
            if fast is not None:
                trace("model: video path")
                return fast
        return _loader(load)(ref, family=family, device=device, base=base)

    return run


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
    segmenter: str | None = None,
    resegment: bool = False,
    wait: bool = False,
    stop: threading.Event | None = None,
    feedback: Feedback | None = None,
    load: Callable | None = None,
    user_cache: bool = False,
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
    ``segmenter``: "shots" or "fixed"; None keeps an existing store's and gives a new store
    ``DEFAULT_SEGMENTER``. ``resegment``: plan the stored videos again with the store's (or the
    given) segmenter and segment length, and re-embed those whose segments change.
    ``user_cache`` (the command line's choice; a library call writes no user cache unasked): a
    full load records the model in the user's cache, and a model that cache vouches for indexes
    through the plain-torch video path (``models.video_path``: no transformers import).
    """
    trace("index: start")
    if sampling not in SAMPLING_MODES:
        raise ConfigError(f"unknown sampling {sampling!r}: use one of {', '.join(SAMPLING_MODES)}")
    if segmenter is not None and segmenter not in SEGMENTERS:
        raise ConfigError(f"unknown segmenter {segmenter!r}: use one of {', '.join(SEGMENTERS)}")
    feedback = feedback or Quiet()
    roots = [os.fspath(r) for r in roots]
    try:
        existing = Store.open(store_dir, create=False)
    except StoreNotFound:
        if resegment:  # nothing stored to plan again: say so, create nothing
            raise StoreNotFound(
                f"no vsearch store at {config_store_dir(store_dir)} to re-segment: index the folder first "
                "(--segments chooses how), or give --store"
            ) from None
        existing = None
        Store.check_creatable(store_dir)  # a file or an unwritable place: refused before any model load
    check_roots(roots, existing)  # a missing folder: one line, nothing created, nothing removed
    if user_cache and load is None:
        load = partial(load_encoder, remember=True)  # later searches may skip the full model (query_path)
    try:
        if existing is None:
            _prestart_decoders(options)  # a new store has everything to decode
        return _index_folders(
            store_dir, existing, roots, model=model, base=base, device=device, reembed=reembed, sampling=sampling,
            segmenter=segmenter, resegment=resegment, wait=wait, stop=stop, feedback=feedback, load=load,
            video_path=user_cache, **options,
        )  # fmt: skip
    finally:
        _release_decoders()


def _prestart_decoders(options: dict) -> None:
    """Start the decode worker processes now (``video.workers.prestart``): their interpreters
    come up while the store opens and the model starts loading, instead of after."""
    if options.get("ray") or options.get("workers") == 0:
        return
    from .video.workers import default_workers, prestart

    prestart(options.get("workers") or default_workers())


def _release_decoders() -> None:
    if "vsearch.video.workers" in sys.modules:
        from .video.workers import release_spares

        release_spares()


def _index_folders(
    store_dir, existing: Store | None, roots: list[str], *, model, base, device, reembed, sampling, segmenter, resegment,
    wait, stop, feedback, load, video_path, **options,
) -> IndexReport:  # fmt: skip
    """``index_folders`` once the roots are checked (and a new store's decoders started)."""

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
            root = config_store_dir(store_dir)
            made_root = None if root.exists() else root
            run = _indexing_model(load, ref, family=None, fingerprint=None, device=device, base=base, video_path=video_path)
            encoder = LazyEncoder(run, spec)
        else:
            encoder = load_model(ref)
        store = Store.open(store_dir)
    else:
        store = existing
    if existing is None and segmenter is None:
        segmenter = DEFAULT_SEGMENTER
    try:
        return _index_open_store(
            store, existing is None, roots, encoder, model=model, load_model=load_model, load=load, device=device,
            base=base, reembed=reembed, sampling=sampling, segmenter=segmenter, resegment=resegment, wait=wait,
            stop=stop, feedback=feedback, video_path=video_path, **options,
        )  # fmt: skip
    except BaseException:
        if made_root is not None and isinstance(encoder, LazyEncoder) and encoder.failed:
            # The model did not load: leave no half-made store behind (as when loading came first).
            store.close()
            shutil.rmtree(made_root, ignore_errors=True)
        raise


def _index_open_store(
    store: Store, new: bool, roots: list[str], encoder, *, model, load_model, load, device, base, reembed, sampling,
    segmenter, resegment, wait, stop, feedback, video_path, **options,
) -> IndexReport:  # fmt: skip
    """The rest of ``index_folders`` once the store is open (and, if new, its model chosen)."""
    with store, store.lock("index", wait=wait):  # refuse (or wait) before loading a model
        rec = store.encoder()
        if not resegment:
            # A different segmenter or length is refused here, before a model loads.
            if options.get("segment_seconds") is not None:
                store.set_segmenting(options["segment_seconds"])
            if segmenter is not None:
                store.set_segmenter(segmenter)
        if rec is not None and not resegment and (model is None or _same_source(model, rec.source)):
            quick = index_if_unchanged(store, roots, options.get("segment_seconds"), segmenter)
            if quick is not None:
                return quick
        if not new:
            _prestart_decoders(options)  # something changed: decoders come up while the model loads
        if not new:
            ref = model or (rec.source if rec else DEFAULT_MODEL)
            family = rec.spec.get("family") if (rec and not model) else None
            if rec is not None and not reembed and not options.get("ray") and _same_source(ref, rec.source):
                # The store's own model: load it while the first files decode.
                run = _indexing_model(
                    load, ref, family=family, fingerprint=rec.fingerprint, device=device, base=base, video_path=video_path
                )
                encoder = LazyEncoder(run, rec.spec)
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
                return run_index(
                    store, roots, encoder, progress=bar, wait=wait, stop=stop, sampling=sampling, segmenter=segmenter,
                    resegment=resegment, **options,
                )  # fmt: skip
        finally:
            if isinstance(encoder, LazyEncoder):
                encoder.settle()  # (only removals or renames: the model was never needed)
