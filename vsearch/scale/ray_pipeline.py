"""Decode and encode on a Ray cluster; every write stays with the single writer on the driver.

``vsearch index DIR --ray`` swaps two parts of the local pipeline and keeps the rest (discovery,
the diff against the store, commits, crash safety) exactly as it is:

- **Decoding** runs as Ray CPU tasks over *segment batches*, not frames (Ray Data's
  ``read_videos`` yields a row per frame: far too fine for clips of 12 frames): a file's first task
  plans its segments and decodes the first ``SEGMENTS_PER_TASK`` (a short clip is one task), then
  each further task decodes ``SEGMENTS_PER_TASK`` more at the encoder's size.
  A task whose worker dies is retried by Ray (``max_retries``); after that the file is recorded as
  failed and the run goes on.
- **Encoding** runs in an actor pool, the model loaded once per actor (``num_gpus=1`` per actor
  when the cluster has GPUs, one CPU actor otherwise); batches are dispatched asynchronously and
  at most ``2 x actors`` are in flight.

Both speak the local pipeline's message protocol (``video.workers``) and batcher interface
(``embedding.SegmentBatcher``), so ``embedding.encode_stream`` assembles videos and
``ingest`` writes them unchanged. Memory is bounded: at most ``2 x decode CPUs`` decode tasks
and ``2 x actors`` encode batches hold frames at any time.

Ray is imported only here, only when ``--ray`` is used.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Hashable, Iterable, Iterator

import numpy as np

from ..errors import ConfigError, EncoderMismatch

SEGMENTS_PER_TASK = 16


def segments_per_task() -> int:
    """``VSEARCH_RAY_SEGMENTS_PER_TASK`` (default 16): larger tasks for long videos on a cluster
    where per-task overhead shows, smaller ones to spread a few long files over many CPUs."""
    raw = os.environ.get("VSEARCH_RAY_SEGMENTS_PER_TASK", "")
    if not raw:
        return SEGMENTS_PER_TASK
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigError(f"VSEARCH_RAY_SEGMENTS_PER_TASK must be a whole number >= 1, not {raw!r}")
    return int(raw)


def connect(address: str | None = None, num_cpus: int | None = None):
    """``ray.init``: a local Ray when no address is given (nor ``RAY_ADDRESS``), else join that cluster."""
    try:
        import ray
    except ImportError:
        raise ConfigError("--ray needs Ray: pip install 'ray>=2.9' (the README's install includes it)") from None
    if not ray.is_initialized():
        import logging

        kwargs = {"include_dashboard": False, "log_to_driver": False, "ignore_reinit_error": True, "logging_level": logging.ERROR}
        address = address or os.environ.get("RAY_ADDRESS")
        if address and address != "local":
            ray.init(address=address, **kwargs)
        else:
            ray.init(num_cpus=num_cpus, **kwargs)
    return ray


def _remote_functions(ray):
    from ..video.workers import DecodeJob, decode_job

    @ray.remote(num_cpus=1, max_retries=2)
    def first(job: DecodeJob, per_task: int) -> tuple[list[tuple], bool]:
        """Open the file, plan its segments and decode the first ``per_task`` of them in one task
        (a short clip is then one task, opened once). Returns (messages, complete)."""
        if job.fault == "segfault":  # tests: a worker that dies (Ray retries it, then gives up)
            import signal

            os.kill(os.getpid(), signal.SIGSEGV)
        msgs: list[tuple] = []
        fits, decoded = True, 0
        gen = decode_job(job)
        for msg in gen:
            msgs.append(msg)
            if msg[0] in ("error", "done"):
                return msgs, True
            if msg[0] == "info":
                fits = len(msg[3]) <= per_task  # else decode the first per_task segments here
            decoded += msg[0] in ("segment", "segment_error")
            if not fits and decoded == per_task:
                gen.close()  # the rest goes out as `decode` tasks
                return msgs, False
        return msgs or [("error", job.id, "no video frames")], True

    @ray.remote(num_cpus=1, max_retries=2)
    def decode(job: DecodeJob) -> list[tuple]:
        """Messages for the explicit segments of ``job`` (frames included)."""
        return [m for m in decode_job(job) if m[0] in ("segment", "segment_error", "note", "error")]

    @ray.remote
    class EncoderActor:
        def __init__(self, ref: str, family: str | None, device: str | None):
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
            from ..models.registry import load_encoder

            self.encoder = load_encoder(ref, family=family, device=device, cache=False)

        def fingerprint(self) -> str:
            return self.encoder.fingerprint

        def encode(self, frames: np.ndarray) -> np.ndarray:
            import torch

            from ..video.transforms import to_pixels

            pixels = to_pixels(torch.from_numpy(frames), self.encoder.spec.pixels, device=self.encoder.device)
            return self.encoder.encode_videos(pixels).numpy()

    return first, decode, EncoderActor


def ray_messages(ray, jobs: Iterable, *, max_inflight: int) -> Iterator[tuple]:
    """The local pool's messages (``video.workers``), produced by Ray tasks; files in parallel,
    each file's segments in batches of ``SEGMENTS_PER_TASK``."""
    from dataclasses import replace

    first, decode, _actor = _remote_functions(ray)
    per_task = segments_per_task()
    pending = iter(jobs)
    firsts: dict = {}  # ref -> job
    chunks: dict = {}  # ref -> job id
    left: dict[int, int] = {}  # job id -> chunks not yet back
    failed: set[int] = set()

    def refill() -> None:
        while len(firsts) + len(chunks) < max_inflight:
            job = next(pending, None)
            if job is None:
                return
            firsts[first.remote(job, per_task)] = job

    def relay(job_id: int, msgs: list[tuple]) -> Iterator[tuple]:
        for m in msgs:
            yield m
            if m[0] == "error":
                failed.add(job_id)
                return

    refill()
    while firsts or chunks:
        ready, _ = ray.wait(list(firsts) + list(chunks), num_returns=1)
        ref = ready[0]
        if ref in firsts:
            job = firsts.pop(ref)
            try:
                msgs, complete = ray.get(ref)
            except Exception as exc:  # noqa: BLE001 - a dead worker, after Ray's retries
                msgs, complete = [("error", job.id, f"decode worker failed ({type(exc).__name__})")], True
            yield from relay(job.id, msgs)
            if not complete and job.id not in failed:
                plans = [tuple(p) for p in msgs[0][3]][per_task:]
                parts = [plans[i : i + per_task] for i in range(0, len(plans), per_task)]
                left[job.id] = len(parts)
                cuts = msgs[0][2].get("cuts")  # (the tasks sample the frames the local pool would)
                cuts = None if cuts is None else tuple(cuts)
                for part in parts:
                    chunks[decode.remote(replace(job, segments=tuple(part), cuts=cuts))] = job.id
        else:
            job_id = chunks.pop(ref)
            try:
                msgs = ray.get(ref)
            except Exception as exc:  # noqa: BLE001
                msgs = [("error", job_id, f"decode worker failed ({type(exc).__name__})")]
            if job_id not in failed:
                yield from relay(job_id, msgs)
                if job_id not in failed:
                    left[job_id] -= 1
                    if left[job_id] == 0:
                        yield ("done", job_id)
        refill()


class RayBatcher:
    """``SegmentBatcher``'s interface over an actor pool: batches go out asynchronously, vectors
    come back as they finish (``add`` returns whatever is ready), at most ``2 x actors`` in flight."""

    def __init__(self, ray, actors: list, batch_size: int):
        self.ray, self.actors, self.batch_size = ray, actors, max(1, batch_size)
        self._keys: list[Hashable] = []
        self._frames: list[np.ndarray] = []
        self._inflight: dict = {}  # ref -> keys
        self._turn = 0
        self._queue: deque = deque()

    def __len__(self) -> int:
        return len(self._keys)

    def _submit(self) -> None:
        if not self._keys:
            return
        actor = self.actors[self._turn % len(self.actors)]
        self._turn += 1
        self._inflight[actor.encode.remote(np.stack(self._frames))] = self._keys
        self._keys, self._frames = [], []

    def _collect(self, block: bool) -> list[tuple[Hashable, np.ndarray]]:
        out = []
        while self._inflight:
            ready, _ = self.ray.wait(list(self._inflight), num_returns=1, timeout=None if block else 0)
            if not ready:
                break
            keys = self._inflight.pop(ready[0])
            out += list(zip(keys, self.ray.get(ready[0])))
            if not block:
                continue
            if len(self._inflight) < 2 * len(self.actors):
                break
        return out

    def add(self, key: Hashable, frames: np.ndarray) -> list[tuple[Hashable, np.ndarray]]:
        self._keys.append(key)
        self._frames.append(frames)
        if len(self._keys) < self.batch_size:
            return self._collect(block=False)
        self._submit()
        out = self._collect(block=False)
        if len(self._inflight) >= 2 * len(self.actors):
            out += self._collect(block=True)
        return out

    def discard(self, predicate) -> None:
        keep = [(k, f) for k, f in zip(self._keys, self._frames) if not predicate(k)]
        self._keys = [k for k, _ in keep]
        self._frames = [f for _, f in keep]

    def flush(self) -> list[tuple[Hashable, np.ndarray]]:
        self._submit()
        out = []
        while self._inflight:
            ready, _ = self.ray.wait(list(self._inflight), num_returns=1)
            keys = self._inflight.pop(ready[0])
            out += list(zip(keys, self.ray.get(ready[0])))
        return out


#: Actor pools already started in this Ray session, by (job, model source, family, fingerprint, n):
#: a process that indexes several folders (or a benchmark that times start-up apart) loads the
#: model into its actors once.
_POOLS: dict[tuple, list] = {}


def start_actors(ray, encoder, *, actors: int | None = None) -> list:
    """Encoder actors that load the driver's model (checked by fingerprint): one per GPU in the
    cluster, else one CPU actor. Started once per Ray session and model."""
    if not encoder.source:
        raise ConfigError("--ray needs a model the workers can load by name, folder or hub id (not an in-memory one)")
    key = (ray.get_runtime_context().get_job_id(), encoder.source, encoder.family, encoder.fingerprint, actors)
    if key not in _POOLS:
        _POOLS[key] = _start_actors(ray, encoder, actors)
    return _POOLS[key]


def _start_actors(ray, encoder, actors: int | None) -> list:
    _first, _decode, actor_cls = _remote_functions(ray)
    gpus = int(ray.cluster_resources().get("GPU", 0))
    n = actors or max(1, gpus)
    opts = {"num_gpus": 1} if gpus else {"num_cpus": 1}
    device = "cuda" if gpus else "cpu"
    pool = [actor_cls.options(**opts).remote(encoder.source, encoder.family, device) for _ in range(n)]
    for fp in ray.get([a.fingerprint.remote() for a in pool]):
        if fp != encoder.fingerprint:
            raise EncoderMismatch(f"a Ray worker loaded {encoder.source} as a different model (fingerprint {fp[:12]})")
    return pool
