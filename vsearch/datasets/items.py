"""The rows a dataset reader returns: one video with its text (or label).

Kept apart from the readers so that a layout reader (``msrvtt``) and the generic one
(``captions``, which dispatches ``msrvtt:`` references to it) both build the same type without
importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CaptionedVideo:
    """A video file and every caption written for it (evaluation queries each one)."""

    path: str
    captions: tuple[str, ...]


@dataclass(frozen=True)
class PretrainRow:
    """A clip with its subtitle-like text and an auxiliary caption (either may be absent)."""

    path: str
    subtitle: str | None
    caption: str | None
