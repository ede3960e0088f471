"""Evaluation embeddings cached on disk: re-running an eval does not decode again.

Key: the model's fingerprint (its own SQLite file), and per video a digest of (real path, size,
mtime, sampling: frame count, sampler, pixel spec). Change the model, the file or the sampling
and the entry is simply not found. Safe to delete (``~/.cache/vsearch/embeddings``).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..config import cache_dir


class EmbeddingCache:
    def __init__(self, fingerprint: str, directory: str | os.PathLike[str] | None = None):
        base = Path(directory) if directory else cache_dir() / "embeddings"
        base.mkdir(parents=True, exist_ok=True)
        self.path = base / f"{fingerprint}.sqlite"
        self._db = sqlite3.connect(self.path, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, vector BLOB NOT NULL)")

    @staticmethod
    def key(path: str, sampling: dict) -> str | None:
        try:
            st = os.stat(path)
        except OSError:
            return None
        ident = [os.path.realpath(path), st.st_size, st.st_mtime_ns, sampling]
        return hashlib.blake2b(json.dumps(ident, sort_keys=True).encode(), digest_size=16).hexdigest()

    def get_many(self, keys: Iterable[str]) -> dict[str, np.ndarray]:
        keys = [k for k in keys if k]
        out = {}
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            q = f"SELECT key, vector FROM vectors WHERE key IN ({','.join('?' * len(chunk))})"
            for k, blob in self._db.execute(q, chunk):
                out[k] = np.frombuffer(blob, dtype=np.float32)
        return out

    def put_many(self, items: Iterable[tuple[str, np.ndarray]]) -> None:
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO vectors VALUES (?, ?)", [(k, np.asarray(v, np.float32).tobytes()) for k, v in items if k]
            )

    def close(self) -> None:
        self._db.close()
