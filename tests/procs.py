"""Child processes for tests that cannot outlive their test.

`subprocess.run(..., timeout=)` kills only the direct child: a `torchrun` launcher's ranks, a
server's workers or a Ray raylet would stay behind, holding cores and ports for every later
test. Here each child leads a process group of its own, and a timeout or a test's end kills
the whole group.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

VSEARCH = Path(sys.executable).parent / "vsearch"


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL every process in `proc`'s group and reap `proc` (safe to call twice)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.communicate(timeout=10)
    except (subprocess.TimeoutExpired, ValueError):
        pass


def spawn(cmd: Sequence[object], **kw) -> subprocess.Popen:
    """Popen in a new process group, text pipes for stdout and stderr unless given."""
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    kw.setdefault("text", True)
    return subprocess.Popen([str(c) for c in cmd], start_new_session=True, **kw)


def run(cmd: Sequence[object], *, timeout: float, **kw) -> subprocess.CompletedProcess:
    """Like `subprocess.run(capture_output=True, text=True)`, killing the whole group on timeout."""
    proc = spawn(cmd, **kw)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        raise
    finally:
        if proc.poll() is None:
            kill_group(proc)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def communicate(proc: subprocess.Popen, timeout: float) -> tuple[str, str]:
    """`proc.communicate(timeout)`, killing its group first when the deadline passes."""
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        raise
