"""Where things live and which device runs them, resolved in one place.

The store location follows llm's ``user_dir()`` pattern: an explicit argument, then
``$VSEARCH_HOME``, then the XDG data directory. Tests point ``VSEARCH_HOME`` at a temporary
directory so nothing touches the user's home.
"""

from __future__ import annotations

import os
from pathlib import Path

APP_NAME = "vsearch"
ENV_HOME = "VSEARCH_HOME"
ENV_DEVICE = "VSEARCH_DEVICE"

#: Default segment length in seconds. A segment is the unit that gets one embedding.
DEFAULT_SEGMENT_SECONDS = 10.0
#: A trailing piece shorter than this is merged into the previous segment instead of standing alone.
DEFAULT_MIN_TAIL_SECONDS = 1.0

#: Model used when a new store is created without --model (needs the hub or a warm cache).
DEFAULT_MODEL = "clip-b32"

VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mkv", ".webm", ".avi", ".mov", ".mpg", ".mpeg", ".wmv", ".flv", ".ts", ".3gp", ".ogv"}
)


def default_store_dir() -> Path:
    """``$VSEARCH_HOME`` if set, else ``$XDG_DATA_HOME/vsearch`` (``~/.local/share/vsearch``)."""
    env = os.environ.get(ENV_HOME)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return base / APP_NAME


def store_dir(root: str | os.PathLike[str] | None = None) -> Path:
    """The store folder a command means: ``root`` as given (``~`` expanded), else the default."""
    return Path(root).expanduser() if root is not None else default_store_dir()


def cache_dir() -> Path:
    """Per-user cache (fingerprints, evaluation embeddings); safe to delete at any time."""
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    env = os.environ.get(ENV_HOME)
    if env:  # keep tests and isolated setups self-contained
        return Path(env).expanduser() / "cache"
    return base / APP_NAME


def resolve_device(device: str | None = None) -> str:
    """``auto`` (the default) picks CUDA when torch sees a GPU, else CPU."""
    choice = device or os.environ.get(ENV_DEVICE) or "auto"
    if choice != "auto":
        return choice
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
