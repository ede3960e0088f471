"""Process-level performance settings, applied by long-running commands (``vsearch train``), never by a library call.

glibc returns every large freed block (over 128 KiB, i.e. every activation tensor of a training
step) to the kernel with munmap and gets it back with mmap and page faults on the next step.
Raising the thresholds lets the heap keep and reuse them: on the 2-core CI machine a tiny-model
training step went from ~2.5 s to ~1.5 s, most of it system time (measured with
/tmp/prof2.py-style loops; see bench/train.py for the figure in a benchmark).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3


@functools.cache
def tune_malloc(threshold: int = 1 << 30) -> bool:
    """Keep large freed blocks in the heap (glibc only; a no-op elsewhere). Returns whether applied."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, threshold)) and bool(libc.mallopt(M_TRIM_THRESHOLD, threshold))
    except (OSError, AttributeError):  # not glibc (musl, macOS)
        return False
