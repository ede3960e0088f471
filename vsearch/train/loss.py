"""Contrastive losses: symmetric InfoNCE (fine-tuning) and CLIP-ViP's omnisource loss.

Everything that looks at the whole batch goes through ``batch_global_view``; with data parallel
training it is the one place to all-gather features (with gradients) from other ranks.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

#: CLIP-ViP clamps the learnable logit scale to [0, ln 200] (temperature >= 1/200).
LOGIT_SCALE_MAX = math.log(200.0)


def batch_global_view(*features: torch.Tensor) -> tuple[tuple[torch.Tensor, ...], int]:
    """The features of the whole (global) batch, and where this rank's rows start.

    Single process: the local batch, offset 0. Under DDP this becomes
    ``torch.distributed.nn.all_gather`` (keeps gradients) and ``offset = rank * local_batch``.
    """
    return features, 0


def _targets(logits: torch.Tensor, offset: int, groups: torch.Tensor | None) -> torch.Tensor:
    """Row i's positives: its own column, or every column sharing its group (duplicate captions)."""
    n_rows, n_cols = logits.shape
    if groups is None:
        return torch.arange(n_rows, device=logits.device) + offset
    same = (groups[offset : offset + n_rows, None] == groups[None, :n_cols]).float()
    return same / same.sum(dim=1, keepdim=True)


def contrastive_loss(
    video: torch.Tensor,
    text: torch.Tensor,
    logit_scale: torch.Tensor,
    groups: torch.Tensor | None = None,
) -> torch.Tensor:
    """CE(video→text) + CE(text→video) on ``exp(logit_scale) * cos``, summed as CLIP-ViP does.

    ``video`` and ``text`` are (B, D) unit vectors, row i of each a positive pair. ``groups``
    (B,) marks pairs with identical captions: they are positives of each other rather than
    false negatives (multi-positive soft targets). Without duplicates it is the plain loss.
    """
    (v_all, t_all, *g_all), offset = batch_global_view(video, text, *(() if groups is None else (groups,)))
    g = g_all[0] if g_all else None
    scale = logit_scale.exp()
    logits_vt = scale * video @ t_all.T  # (b, B): local videos against every text
    logits_tv = scale * text @ v_all.T  # (b, B): local texts against every video
    return F.cross_entropy(logits_vt, _targets(logits_vt, offset, g)) + F.cross_entropy(logits_tv, _targets(logits_tv, offset, g))


def clamp_logit_scale(logit_scale: torch.nn.Parameter) -> None:
    with torch.no_grad():
        logit_scale.clamp_(0.0, LOGIT_SCALE_MAX)
