"""Persistence: SQLite (schema, engine, migrations) as the truth, FAISS index files as a cache."""

from .damage import SalvageReport, database_problem, recover_locked
from .store import EncoderRecord, SegmentWrite, Store, VideoWrite

__all__ = ["EncoderRecord", "SalvageReport", "SegmentWrite", "Store", "VideoWrite", "database_problem", "recover_locked"]
