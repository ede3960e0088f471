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

    Single process: the local batch, offset 0. Under torchrun: every rank's rows, all-gathered
    with gradients (``distributed.all_gather_with_grad``), and this rank's offset among them.
    Integer tensors (caption ids) are gathered too, without gradients.
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return features, 0
    from .distributed import all_gather_with_grad

    gathered, offset = [], 0
    for f in features:
        g, offset = all_gather_with_grad(f)
        gathered.append(g)
    return tuple(gathered), offset


def caption_id(text: str) -> int:
    """A caption's id, equal for equal texts in every process (so duplicate captions are shared
    positives across ranks too); 62 bits of BLAKE2b, never negative."""
    import hashlib

    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little") >> 2


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


def _ce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, target)


def omnisource_loss(
    video: torch.Tensor,
    subtitle: torch.Tensor | None,
    caption: torch.Tensor | None,
    frame: torch.Tensor | None,
    logit_scale: torch.Tensor,
) -> tuple[torch.Tensor, list[str]]:
    """CLIP-ViP's omnisource cross-modal loss, L_{V<->S,C} + L_{F<->C} (paper variant d).

    With A = s·V·Sᵀ and A' = s·V·Cᵀ (s = exp(logit_scale), one temperature for all terms):

    - text→video: CE(Aᵀ) + CE(A'ᵀ): each subtitle and each caption finds its video;
    - video→text over a **joint negative pool**: video i solves two problems with 2B-1 logits,
      ``[A_ii, A_i,j≠i, A'_i,j≠i]`` and ``[A'_ii, A_i,j≠i, A'_i,j≠i]``: the other positive of the
      same video is excluded from the negatives;
    - frame↔caption: CE(s·F·Cᵀ) + CE(s·C·Fᵀ), F = the middle frame as a one-frame video.

    The total is the plain sum of the six mean cross-entropies (no weights). Returns the loss
    and the names of the terms used: a missing input (no subtitles, no captions, no frame)
    degrades to the terms that remain, and with one text stream to the plain two-term loss.
    """
    feats = [x for x in (video, subtitle, caption, frame) if x is not None]
    (*gathered,), offset = batch_global_view(*feats)
    it = iter(gathered)
    v_all = next(it)
    s_all = next(it) if subtitle is not None else None
    c_all = next(it) if caption is not None else None
    f_all = next(it) if frame is not None else None
    scale = logit_scale.exp()
    b = video.shape[0]
    rows = torch.arange(b, device=video.device) + offset
    terms: dict[str, torch.Tensor] = {}
    texts = [(n, t, ta) for n, t, ta in (("S", subtitle, s_all), ("C", caption, c_all)) if t is not None]
    if not texts:
        raise ValueError("the omnisource loss needs subtitles or captions")
    for name, text, _t_all in texts:
        terms[f"{name}->V"] = _ce(scale * text @ v_all.T, rows)  # text i finds video i among all videos
    if len(texts) == 1:
        name, _t, t_all = texts[0]
        terms[f"V->{name}"] = _ce(scale * video @ t_all.T, rows)
    else:
        a = scale * video @ s_all.T  # (b, B)
        a2 = scale * video @ c_all.T  # (b, B)
        own = torch.zeros_like(a, dtype=torch.bool)
        own[torch.arange(b), rows] = True
        big = a.shape[1]
        # Subtitle problem: the caption of the same video is not a negative (and vice versa).
        terms["V->S|C"] = _ce(torch.cat([a, a2.masked_fill(own, float("-inf"))], 1), rows)
        terms["V->C|S"] = _ce(torch.cat([a.masked_fill(own, float("-inf")), a2], 1), rows + big)
    if frame is not None and caption is not None:
        terms["F->C"] = _ce(scale * frame @ c_all.T, rows)
        terms["C->F"] = _ce(scale * caption @ f_all.T, rows)
    return sum(terms.values()), sorted(terms)


def recognition_loss(
    video: torch.Tensor, class_text: torch.Tensor, labels: torch.Tensor, logit_scale: torch.Tensor
) -> torch.Tensor:
    """ViFi-CLIP style: each video against every class prompt, cross-entropy on its label."""
    return F.cross_entropy(logit_scale.exp() * video @ class_text.T, labels)


def multi_positive_loss(
    video: torch.Tensor,
    text: torch.Tensor,
    video_label: torch.Tensor,
    text_label: torch.Tensor,
    logit_scale: torch.Tensor,
) -> torch.Tensor:
    """Symmetric InfoNCE where text k and video j are positives iff their labels are equal.

    ``video`` (Nv, D) and ``text`` (Nt, D) may differ in length. A label is a caption id; a
    video labelled -1 has no positive (a time-reversed clip whose caption cannot be swapped):
    it only ever appears as a negative column, never as a target. text→video: each caption
    spreads its target over every video with its caption; video→text likewise, over the videos
    that have a positive. With one video per caption and equal lengths this is
    ``contrastive_loss``.
    """
    (v_all, t_all, vl_all, tl_all), _offset = batch_global_view(video, text, video_label, text_label)
    scale = logit_scale.exp()
    logits = scale * t_all @ v_all.T  # (Nt, Nv)
    pos = (tl_all[:, None] == vl_all[None, :]) & (vl_all[None, :] >= 0)
    if not bool(pos.any(dim=1).all()):
        raise ValueError("every text needs a positive video in the batch")
    t2v = F.cross_entropy(logits, pos.float() / pos.sum(1, keepdim=True))
    has = pos.any(dim=0)
    cols = pos[:, has].T.float()
    v2t = F.cross_entropy(logits.T[has], cols / cols.sum(1, keepdim=True))
    return t2v + v2t


def pair_loss(
    video: torch.Tensor,
    video_rev: torch.Tensor,
    text: torch.Tensor,
    text_rev: torch.Tensor | None,
    logit_scale: torch.Tensor,
    swapped: torch.Tensor | None = None,
    ordered: torch.Tensor | None = None,
) -> torch.Tensor:
    """The direction decision itself, per sample: 2-way cross-entropies inside {v, ṽ} × {c, c̃}.

    Text side: the caption c picks v over ṽ (and c̃ picks ṽ over v). With ``text_rev`` (twins),
    also the video side: v picks c over c̃, ṽ picks c̃ over c. ``swapped`` (B,) bool marks the
    samples whose caption has a swapped form; the others contribute only c → {v, ṽ}. ``ordered``
    (B,) bool marks the samples that have a direction at all (not a still, not a timeless
    caption); the others are left out, as c fits v and ṽ equally. None: every sample.
    """
    s = logit_scale.exp()
    if ordered is not None:
        if not bool(ordered.any()):
            return video.sum() * 0.0  # nothing to decide in this batch (every item a still)
        video, video_rev, text = video[ordered], video_rev[ordered], text[ordered]
        text_rev = text_rev[ordered] if text_rev is not None else None
        swapped = swapped[ordered] if swapped is not None else None
    zero = torch.zeros(video.shape[0], dtype=torch.long, device=video.device)
    terms = [F.cross_entropy(s * torch.stack([(text * video).sum(1), (text * video_rev).sum(1)], 1), zero)]
    if text_rev is not None:
        m = swapped if swapped is not None else torch.ones_like(zero, dtype=torch.bool)
        if bool(m.any()):
            v, vr, t, tr, z = video[m], video_rev[m], text[m], text_rev[m], zero[m]
            terms.append(F.cross_entropy(s * torch.stack([(tr * vr).sum(1), (tr * v).sum(1)], 1), z))
            terms.append(F.cross_entropy(s * torch.stack([(v * t).sum(1), (v * tr).sum(1)], 1), z))
            terms.append(F.cross_entropy(s * torch.stack([(vr * tr).sum(1), (vr * t).sum(1)], 1), z))
    return sum(terms) / len(terms)


def reversal_sensitivity(video: torch.Tensor, video_rev: torch.Tensor) -> float:
    """Mean 1 - cos(f(v), f(reverse v)) of unit vectors: 0 means the encoder is order-blind."""
    return float((1 - (video.detach() * video_rev.detach()).sum(1)).mean())


def view_drift(video: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """Mean 1 - cos between each clip's embedding and its other view's (0 when they agree).

    Both sides carry gradient: neither view is the reference, as neither a clean render nor a
    degraded one is what indexing will see."""
    return (1.0 - F.cosine_similarity(video.float(), other.float(), dim=-1)).mean()
