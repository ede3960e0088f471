"""Persistence: SQLite (schema, engine, migrations) as the truth, FAISS index files as a cache."""

from .store import EncoderRecord, SegmentWrite, Store, VideoWrite

__all__ = ["EncoderRecord", "SegmentWrite", "Store", "VideoWrite"]
