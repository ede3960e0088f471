"""Time reversal as training signal (Test of Time / TACT, Bagad et al. CVPR 2023).

A contrastive batch rarely holds a clip's minimal pair (same content, opposite direction), so
plain InfoNCE teaches colour, shape and axis but not direction. Reversing a clip's frames makes
that pair for free:

- ``twins``: each clip brings its reversed copy, paired with the caption whose direction words
  are swapped ("moving left" ↔ "moving right"; "A before B" ↔ "A after B"). Valid data, and the
  swapped caption is also a positive somewhere, so no wording is only ever a negative.
- ``negatives``: the reversed clip joins the batch as an extra negative video for the original
  caption (any data, MSR-VTT included, where no swapped caption exists).

Clips whose caption has no swappable word fall back to ``negatives`` under ``twins``. The
caption side (``swap_direction``) is in ``vsearch.datasets.captions``: evaluation uses it too.
"""

from __future__ import annotations

MODES = ("off", "twins", "negatives")
