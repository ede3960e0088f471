"""Finding video files under folders, and the cheap facts used to skip unchanged ones.

Nothing here decodes: listing has to stay fast on folders with tens of thousands of files.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..config import VIDEO_EXTENSIONS

#: Files up to this size are hashed whole; larger ones by size + sampled blocks.
FULL_HASH_LIMIT = 8 << 20
HASH_BLOCK = 64 << 10
HASH_SAMPLES = 16


@dataclass(frozen=True)
class FoundFile:
    path: str  # absolute, not symlink-resolved: the path the user knows
    size: int
    mtime_ns: int


@dataclass
class Listing:
    files: list[FoundFile] = field(default_factory=list)
    #: (path, reason) for things that could not be listed: unreadable folders, symlink loops, ...
    problems: list[tuple[str, str]] = field(default_factory=list)
    roots: list[str] = field(default_factory=list)
    #: Regular files skipped because their extension is not a video's, counted by extension
    #: (".m4a": 3, "": 1): a folder of audio or pictures is reported, never silently passed over.
    not_video: dict[str, int] = field(default_factory=dict)


def is_video_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in VIDEO_EXTENSIONS


def display_path(path: str) -> str:
    """A printable form of a path whose name may hold bytes that are not UTF-8."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def list_videos(roots: Iterable[str | os.PathLike[str]]) -> Listing:
    """Walk ``roots`` recursively and return every video file once.

    Symlinks are followed, but each directory and file is visited once (by device and inode),
    so a symlink loop or two links to one file cannot produce duplicates. A root may also be a
    single file.
    """
    listing = Listing()
    seen_dirs: set[tuple[int, int]] = set()
    seen_files: set[tuple[int, int]] = set()

    def add_file(path: str, st: os.stat_result) -> None:
        key = (st.st_dev, st.st_ino)
        if key in seen_files:
            return
        seen_files.add(key)
        listing.files.append(FoundFile(path, st.st_size, st.st_mtime_ns))

    def walk(directory: str) -> None:
        try:
            st = os.stat(directory)
        except OSError as exc:
            listing.problems.append((directory, _os_reason(exc)))
            return
        key = (st.st_dev, st.st_ino)
        if key in seen_dirs:
            if os.path.islink(directory):
                listing.problems.append((directory, "symlink loop (directory already visited)"))
            return
        seen_dirs.add(key)
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as exc:
            listing.problems.append((directory, _os_reason(exc)))
            return
        for entry in entries:
            path = entry.path
            try:
                st = entry.stat(follow_symlinks=True)
            except OSError as exc:
                if entry.is_symlink():
                    reason = "broken symlink" if isinstance(exc, FileNotFoundError) else _os_reason(exc)
                    listing.problems.append((path, reason))
                elif is_video_name(entry.name):
                    listing.problems.append((path, _os_reason(exc)))
                continue
            if stat.S_ISDIR(st.st_mode):
                walk(path)
            elif stat.S_ISREG(st.st_mode) and is_video_name(entry.name):
                add_file(path, st)
            elif stat.S_ISREG(st.st_mode) and not entry.name.startswith("."):
                ext = os.path.splitext(entry.name)[1].lower()
                listing.not_video[ext] = listing.not_video.get(ext, 0) + 1

    for root in roots:
        root = os.path.abspath(os.fspath(root))
        listing.roots.append(root)
        try:
            st = os.stat(root)
        except OSError as exc:
            listing.problems.append((root, _os_reason(exc)))
            continue
        if stat.S_ISDIR(st.st_mode):
            walk(root)
        elif stat.S_ISREG(st.st_mode):
            add_file(root, st)
        else:
            listing.problems.append((root, "not a regular file or folder"))
    return listing


def content_hash(path: str, size: int | None = None) -> str:
    """A content fingerprint that does not read whole multi-GB files.

    Small files are hashed whole. Larger ones hash their size plus 16 blocks of 64 KiB spread
    evenly (first and last included): about 1 MiB read per file, whatever its size. Any
    re-encode, trim or append changes it; an in-place edit of the same length that touches
    none of the sampled blocks would not (the mtime check catches those in practice).
    """
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        if size is None:
            size = os.fstat(f.fileno()).st_size
        h.update(size.to_bytes(8, "little"))
        if size <= FULL_HASH_LIMIT:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        else:
            last = size - HASH_BLOCK
            for i in range(HASH_SAMPLES):
                f.seek(last * i // (HASH_SAMPLES - 1))
                h.update(f.read(HASH_BLOCK))
    return h.hexdigest()


def _os_reason(exc: OSError) -> str:
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, FileNotFoundError):
        return "no such file or folder"
    if exc.errno == 40:  # ELOOP
        return "symlink loop"
    return exc.strerror or str(exc)
