"""Process-level performance settings, applied by long-running commands (``vsearch train``), never by a library call,
and ``trace``: a timeline of a command across its processes (``VSEARCH_TRACE=1``).

glibc returns every large freed block (over 128 KiB, i.e. every activation tensor of a training
step) to the kernel with munmap and gets it back with mmap and page faults on the next step.
Raising the thresholds lets the heap keep and reuse them: on the 2-core CI machine a tiny-model
training step went from ~2.5 s to ~1.5 s, most of it system time (measured with
/tmp/prof2.py-style loops; see bench/train.py for the figure in a benchmark).
"""

from __future__ import annotations

import functools
import os
import sys
import time

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3


@functools.cache
def tune_malloc(threshold: int = 1 << 30) -> bool:
    """Keep large freed blocks in the heap (glibc only; a no-op elsewhere). Returns whether applied."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, threshold)) and bool(libc.mallopt(M_TRIM_THRESHOLD, threshold))
    except (OSError, AttributeError):  # not glibc (musl, macOS)
        return False


def freeze_for_exit() -> None:
    """Call as a command ends: its exit then skips the collector's walks over every object.

    The interpreter's teardown collects garbage over all tracked objects, and after torch and
    transformers are imported there are enough of them for that to take about 1 s (measured:
    `vsearch index` spent 1.0 s between its last atexit handler and its exit; frozen, 0.2 s).
    ``gc.freeze`` moves them out of the collector's sight; reference counting still frees them,
    atexit handlers and finalizers still run, nothing is skipped but the walks.
    """
    import gc

    gc.freeze()


# -- VSEARCH_TRACE: a timeline of one command across its processes ------------------------------

_T0_KEY = "VSEARCH_TRACE_T0"


def _process_start() -> float:
    """This process's start on CLOCK_BOOTTIME (Linux ``/proc/self/stat``), else now."""
    try:
        with open("/proc/self/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return _now()


def _now() -> float:
    return time.clock_gettime(time.CLOCK_BOOTTIME) if hasattr(time, "CLOCK_BOOTTIME") else time.monotonic()


def trace(event: str) -> None:
    """With ``VSEARCH_TRACE`` set, write ``vsearch-trace SECONDS PID CPU EVENT``: seconds since the
    command's process started (clock ticks: 10 ms), in its decode workers too, and the CPU
    seconds this process has used so far (on a shared machine wall time says little alone).
    Where does a run's time go: imports, the model load, the first decoded frame, the writes
    (issue 24).
    ``VSEARCH_TRACE=1``: to stderr (the command's process only: decode workers' stderr is
    closed); ``VSEARCH_TRACE=FILE``: appended to FILE by every process. Free when unset."""
    target = os.environ.get("VSEARCH_TRACE")
    if not target:
        return
    if _T0_KEY not in os.environ:
        # The first traced process (the command) sets the origin; decode workers inherit it.
        os.environ[_T0_KEY] = repr(_process_start())
        import atexit

        atexit.register(trace, "exit (atexit)")
    t = _now() - float(os.environ[_T0_KEY])
    line = f"vsearch-trace {t:8.3f} {os.getpid()} {time.process_time():7.3f} {event}\n"
    if target == "1":
        sys.stderr.write(line)
        sys.stderr.flush()
        return
    fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())  # one write per line: O_APPEND keeps processes' lines whole
    finally:
        os.close(fd)
