"""The errors vsearch raises on purpose.

Every error a user can cause (bad input, a wrong model, a busy store) is a ``VsearchError``
subclass with a message that says what happened and what to do. ``vsearch_cli`` turns them into
one red line and an exit code; anything else escaping is a bug and keeps its traceback.
"""

from __future__ import annotations


class VsearchError(Exception):
    """Base class: a problem the user can act on, reported without a traceback."""

    exit_code = 1


class ConfigError(VsearchError):
    """Invalid settings or arguments that passed the CLI's own parsing."""


class StoreNotFound(VsearchError):
    """No store at the given location (and creating one was not asked for)."""


class StoreError(VsearchError):
    """The store exists but cannot be used as asked (damaged, read-only, wrong schema)."""


class StoreDamaged(StoreError):
    """The store's database file is damaged or is not a database; ``check --repair`` salvages it."""


class StoreBusy(VsearchError):
    """Another process holds the store's write lock."""


class EmptyStore(VsearchError):
    """A search or export on a store that holds no segments yet."""


class EncoderMismatch(VsearchError):
    """The store was built by one encoder and is being used with another."""


class EncoderLoadError(VsearchError):
    """A model reference could not be resolved or its weights could not be loaded."""


class CheckpointError(EncoderLoadError):
    """A checkpoint file is not what it claims to be (wrong layout, shapes, or unsafe content)."""


class FaissMissing(VsearchError):
    """Neither faiss-cpu nor faiss-gpu is installed."""


class DecodeError(VsearchError):
    """A video could not be probed or decoded. ``reason`` is a one-line explanation."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class QueryError(VsearchError):
    """An unusable query: empty, whitespace only, or a bad ``k``."""


class DatasetError(VsearchError):
    """Training or evaluation data is missing or malformed."""


class TrainingError(VsearchError):
    """Training diverged (a NaN or infinite loss) or cannot continue."""


class MissingRootError(VsearchError):
    """A folder to index is missing or empty while the store holds videos under it."""


class ServeError(VsearchError):
    """The server cannot start: the port is taken or the address unusable."""
