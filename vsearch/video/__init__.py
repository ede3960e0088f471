"""Finding, probing, hashing and decoding videos; frame sampling; pixel transforms.

``transforms`` imports torch; the rest does not, so decode workers stay light.
"""

from .discover import FoundFile, Listing, content_hash, display_path, list_videos
from .sampling import SegmentPlan, format_range, format_timestamp, jittered_indices, plan_segments, uniform_indices

__all__ = [
    "FoundFile",
    "Listing",
    "SegmentPlan",
    "content_hash",
    "display_path",
    "format_range",
    "format_timestamp",
    "jittered_indices",
    "list_videos",
    "plan_segments",
    "uniform_indices",
]
