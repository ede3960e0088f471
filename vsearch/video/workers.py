"""Decoding in worker processes that may crash or hang without taking the run with them.

A decoder bug can segfault or spin forever on one hostile file. Each worker is a separate
process with its own pair of pipes, and the parent watches them:

- a worker that dies mid-file (any signal) fails that file only and is replaced;
- a worker that makes no progress for ``timeout`` seconds is killed, same outcome;
- a worker blocks on its pipe when the parent is busy, so decoded frames never pile up
  (backpressure without a shared queue a dying process could corrupt).

Workers are fresh interpreters, not forks: a decord reader must not cross a fork, and forking
a process that holds torch threads is unsafe. ``workers=0`` decodes in the calling thread.

This module must not import torch.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import replace
from multiprocessing.connection import Connection
from multiprocessing.connection import wait as mp_wait

from ..perf import trace
from .jobs import FINAL, DecodeJob, decode_job, decoder_threads, default_workers, parking

__all__ = ["FINAL", "DecodeJob", "DecodePool", "decode_job", "decoder_threads", "default_workers", "prestart", "release_spares"]


def _worker_main(task_fd: int, result_fd: int) -> None:
    """Worker process loop: receive jobs, send their messages, until told to stop (None) or orphaned."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    trace("worker: up")
    tasks = Connection(task_fd, writable=False)
    results = Connection(result_fd, readable=False)
    while True:
        try:
            job = tasks.recv()
        except (EOFError, OSError):
            return  # the parent is gone
        if job is None:
            return
        if job.fault == "segfault":
            os.kill(os.getpid(), signal.SIGSEGV)
        elif job.fault == "hang":
            time.sleep(10**6)
        for msg in parking(decode_job(job)):
            try:
                results.send(msg)
            except (BrokenPipeError, OSError):
                return


class _Worker:
    """A decoder process started fresh with ``python -m vsearch.video.workers``.

    A fresh interpreter (not a fork) because a process holding torch threads or open decord
    readers must not be forked, and because multiprocessing's spawn would re-run the caller's
    ``__main__``. stdout/stderr go to /dev/null: decord and FFmpeg log straight to fd 2.
    """

    def __init__(self):
        task_r, task_w = os.pipe()
        res_r, res_w = os.pipe()
        env = dict(os.environ)
        package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "vsearch.video.workers", str(task_r), str(res_w)],
                pass_fds=(task_r, res_w),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=env,
                start_new_session=True,  # Ctrl-C in the terminal reaches the parent only
            )
        finally:
            os.close(task_r)
            os.close(res_w)
        self.tasks_w = Connection(task_w, readable=False)
        self.results_r = Connection(res_r, writable=False)
        self.job: DecodeJob | None = None
        self.last_progress = time.monotonic()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def assign(self, job: DecodeJob) -> None:
        self.job = job
        self.last_progress = time.monotonic()
        self.tasks_w.send(job)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        for conn in (self.tasks_w, self.results_r):
            try:
                conn.close()
            except OSError:
                pass

    def stop(self) -> None:
        try:
            self.tasks_w.send(None)
        except (BrokenPipeError, OSError):
            pass


_spares: list[_Worker] = []
_spares_lock = threading.Lock()


def prestart(n: int) -> None:
    """Start ``n`` decoder processes now for this process's next ``DecodePool`` to take.

    A worker's interpreter takes about 0.3 s of CPU to start (numpy, PyAV, decord). Started
    when a command knows it will decode, they come up while it still opens the store, lists the
    folders and starts loading a model, on a core that is otherwise idle then. Call
    ``release_spares`` when done: a spare no pool took is stopped there.
    """
    with _spares_lock:
        while len(_spares) < n:
            _spares.append(_Worker())


def release_spares() -> None:
    """Stop the prestarted decoder processes that no pool took."""
    with _spares_lock:
        spares = list(_spares)
        _spares.clear()
    for w in spares:
        w.stop()
    for w in spares:
        try:
            w.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        w.kill()


def _take_worker() -> _Worker:
    """A prestarted worker that is still alive, else a new one."""
    with _spares_lock:
        while _spares:
            w = _spares.pop(0)
            if w.alive():
                return w
            w.kill()
    return _Worker()


class DecodePool:
    """Run ``DecodeJob``s on ``workers`` processes and yield their messages as they arrive.

    ``messages(jobs)`` yields at most ``max_buffered`` messages ahead of the consumer. Call
    ``stop_submitting()`` (e.g. on Ctrl-C) to finish the files in progress and start no more.
    """

    def __init__(self, workers: int = 2, timeout: float | None = 120.0, max_buffered: int = 16):
        self.n_workers = max(0, int(workers))
        self.timeout = timeout
        self.max_buffered = max_buffered
        self._stop = threading.Event()
        self.crashes = 0
        #: ``time.perf_counter()`` when the first decoded segment arrived (start-up is measured by it).
        self.first_segment_at: float | None = None
        self.timeouts = 0

    def stop_submitting(self) -> None:
        self._stop.set()

    def messages(self, jobs: Iterable[DecodeJob]) -> Iterator[tuple]:
        """The messages of ``jobs`` as they arrive. Worker processes start now, not at the first
        ``next()``: a caller can decode while it loads a model. A stream dropped unread stops its
        workers when it is garbage-collected."""
        threads = decoder_threads(self.n_workers)
        jobs = (job if job.threads else replace(job, threads=threads) for job in jobs)
        if self.n_workers == 0:
            return self._inline(jobs)
        out: queue.Queue = queue.Queue(maxsize=self.max_buffered)
        done = object()
        failure: list[BaseException] = []
        abort = threading.Event()

        def manage() -> None:
            try:
                self._manage(iter(jobs), out, abort)
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer thread below
                failure.append(exc)
            finally:
                _put(out, done, abort)

        thread = threading.Thread(target=manage, name="vsearch-decode", daemon=True)
        thread.start()
        stream = self._drain(out, done, failure, abort, thread)
        weakref.finalize(stream, abort.set)
        return stream

    def _inline(self, jobs: Iterable[DecodeJob]) -> Iterator[tuple]:
        for job in jobs:
            if self._stop.is_set():
                return
            for msg in parking(decode_job(job)):
                if msg[0] == "segment" and self.first_segment_at is None:
                    self.first_segment_at = time.perf_counter()
                yield msg

    @staticmethod
    def _drain(out: queue.Queue, done: object, failure: list, abort: threading.Event, thread: threading.Thread):
        try:
            while True:
                msg = out.get()
                if msg is done:
                    break
                yield msg
        finally:
            abort.set()
            thread.join(timeout=30)
        if failure:
            raise failure[0]

    def _manage(self, jobs: Iterator[DecodeJob], out: queue.Queue, abort: threading.Event) -> None:
        workers = [_take_worker() for _ in range(self.n_workers)]
        exhausted = False
        try:
            while not abort.is_set():
                for i, w in enumerate(workers):
                    if w.job is None and not exhausted and not self._stop.is_set():
                        job = next(jobs, None)
                        if job is None:
                            exhausted = True
                            continue
                        if not w.alive():  # died while idle (OOM killer, a stray kill)
                            w.kill()
                            w = workers[i] = _Worker()
                        w.assign(job)
                busy = [w for w in workers if w.job is not None]
                if not busy:
                    if exhausted or self._stop.is_set():
                        return
                    continue
                ready = mp_wait([w.results_r for w in busy], timeout=0.5)
                now = time.monotonic()
                for i, w in enumerate(workers):
                    if w.job is None:
                        continue
                    if w.results_r in ready:
                        try:
                            msg = w.results_r.recv()
                        except (EOFError, OSError):
                            workers[i] = self._replace(w, out, abort, _death_reason(w), crashed=True)
                            continue
                        w.last_progress = time.monotonic()
                        blocked_from = time.monotonic()
                        if not _put(out, msg, abort):
                            return
                        if time.monotonic() - blocked_from > 1.0:
                            # We were the bottleneck, not the workers: do not count it against them.
                            for other in workers:
                                other.last_progress = time.monotonic()
                        if msg[0] == "segment" and self.first_segment_at is None:
                            self.first_segment_at = time.perf_counter()
                            trace("pool: first segment received")
                        if msg[0] in FINAL:
                            w.job = None
                    elif self.timeout and now - w.last_progress > self.timeout:
                        reason = f"decoding made no progress for {self.timeout:g} s (--decode-timeout); abandoned"
                        workers[i] = self._replace(w, out, abort, reason, crashed=False)
        finally:
            for w in workers:
                w.stop()
            deadline = time.monotonic() + 5
            for w in workers:
                try:
                    w.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    pass
                w.kill()

    def _replace(self, w: _Worker, out: queue.Queue, abort: threading.Event, reason: str, crashed: bool) -> _Worker:
        """Kill ``w``, fail its file with ``reason``, and return a fresh worker in its place."""
        job = w.job
        w.kill()
        if crashed:
            self.crashes += 1
        else:
            self.timeouts += 1
        if job is not None:
            _put(out, ("error", job.id, reason), abort)
        return _Worker()


def _death_reason(w: _Worker) -> str:
    try:
        code = w.proc.wait(timeout=2)
    except subprocess.TimeoutExpired:
        code = None
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = str(-code)
        return f"decoder process crashed ({name}); the file may be malformed"
    return f"decoder process exited unexpectedly (exit code {code})"


def _put(q: queue.Queue, item, abort: threading.Event) -> bool:
    while not abort.is_set():
        try:
            q.put(item, timeout=0.2)
            return True
        except queue.Full:
            continue
    return False


if __name__ == "__main__":
    _worker_main(int(sys.argv[1]), int(sys.argv[2]))
