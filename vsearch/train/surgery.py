"""Changes made to a model before training starts: temporal tables redrawn, lower layers frozen.

Kept out of the loop (``loop.Trainer`` calls them once, from the options of ``TrainConfig``),
so that the loop holds only the loop. Each returns a line for the training log saying what it did.
"""

from __future__ import annotations

import re

import torch

from ..errors import ConfigError


def init_temporal(encoder: torch.nn.Module, std: float, seed: int) -> str:
    """Draw every temporal table (CLIP-ViP's and STAN's temporal embeddings, X-CLIP's MIT
    positions) from N(0, std²); returns what was drawn, for the log."""
    g = torch.Generator().manual_seed(seed)
    names = []
    for name, p in encoder.named_parameters():
        low = name.lower()
        if "temporal_embed" in low or low.endswith("time_embed") or ("mit" in low and "position_embedding" in low):
            with torch.no_grad():
                p.copy_(torch.randn(p.shape, generator=g) * std)
            names.append(name.rsplit(".", 1)[-1])
    if not names:
        raise ConfigError(f"temporal_init_std: a {encoder.family} model has no temporal table")
    return f"{', '.join(names)} ~ N(0, {std}^2)"


def freeze_lower_layers(encoder: torch.nn.Module, n: int) -> str:
    """Fix token/patch/position embeddings and layers ``0..n-1`` of every transformer tower in
    ``encoder`` (capped so each tower's last layer trains); returns what was frozen, for the log.
    Parts a family adds (``added_to_clip``: temporal tables, proxies, branches) always train."""
    added = type(encoder).added_to_clip
    towers: dict[str, int] = {}
    for name, _p in encoder.named_parameters():
        m = re.search(r"(^|\.)((?:text|vision)_model)\.encoder\.layers\.(\d+)\.", name)
        if m:
            towers[m.group(2)] = max(towers.get(m.group(2), 0), int(m.group(3)) + 1)
    if not towers:
        raise ConfigError(f"freeze_layers: a {encoder.family} model has no CLIP towers to freeze")
    keep = {t: min(n, depth - 1) for t, depth in towers.items()}
    for name, p in encoder.named_parameters():
        if any(a in name for a in added):
            continue
        m = re.search(r"(^|\.)((?:text|vision)_model)\.(.*)", name)
        if not m:
            continue
        tower, rest = m.group(2), m.group(3)
        layer = re.match(r"encoder\.layers\.(\d+)\.", rest)
        if (layer and int(layer.group(1)) < keep[tower]) or rest.startswith("embeddings."):
            p.requires_grad_(False)
    return ", ".join(f"{t.split('_')[0]} embeddings + layers 0-{k - 1} of {towers[t]}" for t, k in sorted(keep.items()) if k)
