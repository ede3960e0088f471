"""One atomic write for every file vsearch produces.

A reader (another process, or this one after a crash or power cut) must see either the whole
old file or the whole new one, never a torn mix. The recipe is the usual one, in one place so
that no call site forgets a step: write under a temporary name in the same folder (a rename
is only atomic within one file system), flush and fsync the file, rename it over the target,
then fsync the folder so that the rename itself is durable.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["atomic_write", "atomic_write_bytes", "atomic_write_text", "fsync_dir"]


def fsync_dir(directory: str | os.PathLike[str]) -> None:
    """Make a rename or create inside `directory` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_tree(path: Path) -> None:
    if path.is_dir():
        for child in path.rglob("*"):
            if child.is_file():
                with open(child, "rb") as f:
                    os.fsync(f.fileno())
        fsync_dir(path)
    else:
        with open(path, "rb") as f:
            os.fsync(f.fileno())


def atomic_write(target: str | os.PathLike[str], write: Callable[[str], None], *, mode: int = 0o644, folder: bool = False) -> Path:
    """Run `write(tmp_path)` and move the result onto `target` atomically and durably.

    `write` receives a path in the target's folder and must create a file there (or, with
    `folder=True`, fill the folder that already exists at that path). On any error, the
    temporary file or folder is removed and `target` is left as it was.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if folder:
        tmp = tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent)
    else:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        os.close(fd)
    try:
        write(tmp)
        _fsync_tree(Path(tmp))
        if not folder:
            os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
        elif os.path.exists(tmp):
            os.unlink(tmp)
        raise
    fsync_dir(target.parent)
    return target


def atomic_write_bytes(target: str | os.PathLike[str], data: bytes, *, mode: int = 0o644) -> Path:
    """`atomic_write` for a bytes payload."""
    return atomic_write(target, lambda tmp: Path(tmp).write_bytes(data), mode=mode)


def atomic_write_text(target: str | os.PathLike[str], text: str, *, mode: int = 0o644) -> Path:
    """`atomic_write` for a text payload (UTF-8)."""
    return atomic_write(target, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"), mode=mode)
