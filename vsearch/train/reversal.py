"""Time reversal as training signal (Test of Time / TACT, Bagad et al. CVPR 2023).

A contrastive batch rarely holds a clip's minimal pair (same content, opposite direction), so
plain InfoNCE teaches colour, shape and axis but not direction. Reversing a clip's frames makes
that pair for free:

- ``twins``: each clip brings its reversed copy, paired with the caption whose direction words
  are swapped ("moving left" ↔ "moving right"; "A before B" ↔ "A after B"). Valid data, and the
  swapped caption is also a positive somewhere, so no wording is only ever a negative.
- ``negatives``: the reversed clip joins the batch as an extra negative video for the original
  caption (any data, MSR-VTT included, where no swapped caption exists).

Clips whose caption has no swappable word fall back to ``negatives`` under ``twins``.
"""

from __future__ import annotations

import re

MODES = ("off", "twins", "negatives")

#: Word pairs whose meaning flips when time runs backwards (whole words, case kept).
SWAPS = {
    "left": "right", "right": "left", "up": "down", "down": "up",
    "before": "after", "after": "before", "leftward": "rightward", "rightward": "leftward",
    "upward": "downward", "downward": "upward", "clockwise": "counterclockwise", "counterclockwise": "clockwise",
}  # fmt: skip
_WORDS = re.compile(r"\b(" + "|".join(sorted(SWAPS, key=len, reverse=True)) + r")\b", re.IGNORECASE)


def swap_direction(caption: str) -> str | None:
    """The caption of the time-reversed clip, or None when nothing in it names a direction."""
    if not _WORDS.search(caption):
        return None

    def repl(m: re.Match) -> str:
        word = m.group(0)
        out = SWAPS[word.lower()]
        return out.capitalize() if word[0].isupper() else out

    return _WORDS.sub(repl, caption)
