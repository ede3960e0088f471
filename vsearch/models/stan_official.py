"""The released STAN checkpoints (farewellthree/STAN, mmaction2 "HF" configs) ↔ ``StanEncoder``.

The official model is an mmengine ``CLIPSimilarity_split``: ``backbone`` is
``VITCLIPPretrained_STAN`` (CLIP's vision parts flattened onto it, plus ``STAN_S_layers``,
``STAN_T_layers`` and ``STAN_time_embed``) and ``text_backbone`` holds CLIP's ``text_model``
and ``text_projection``. Checkpoints are ``{"state_dict": {...}, "meta": ...}``. The
architecture matches ``StanEncoder`` with ``StanConfig(project=False)`` (the public code adds
the CLIP features to the branch without the paper's W_proj), the same per-level temporal
attention (``layer_norm1``, ``self_attn``, zero-initialised ``temporal_fc``), spatial levels
that are CLIP layers, a 64-slot time embedding, and the fusion of the branch CLS into every
frame's CLS before ``post_layernorm``. The temperature is not learned there (``tau = 0.01``):
the loaded model's logit scale is set to ln(100).

``PREFIXES`` is the whole correspondence; ``to_official`` runs it backwards (tests write a
checkpoint in the official layout with it and load it back).
"""

from __future__ import annotations

import math

import torch

from ..errors import CheckpointError
from .checkpoints import strict_load

#: (official prefix, vsearch prefix); vsearch keys are ``clip.`` / ``stan.`` prefixed. Inside the
#: temporal levels two module names differ too (``TEMPORAL_RENAMES``).
PREFIXES: list[tuple[str, str]] = [
    ("backbone.class_embedding", "clip.vision_model.embeddings.class_embedding"),
    ("backbone.patch_embedding.", "clip.vision_model.embeddings.patch_embedding."),
    ("backbone.position_embedding.", "clip.vision_model.embeddings.position_embedding."),
    ("backbone.pre_layrnorm.", "clip.vision_model.pre_layrnorm."),
    ("backbone.post_layernorm.", "clip.vision_model.post_layernorm."),
    ("backbone.layers.", "clip.vision_model.encoder.layers."),
    ("backbone.visual_projection.", "clip.visual_projection."),
    ("backbone.STAN_S_layers.", "stan.spatial."),
    ("backbone.STAN_T_layers.", "stan.temporal."),
    ("backbone.STAN_time_embed.weight", "stan.time_embed"),
    ("text_backbone.text_model.", "clip.text_model."),
    ("text_backbone.text_projection.", "clip.text_projection."),
]
TEMPORAL_RENAMES = [(".layer_norm1.", ".layer_norm."), (".self_attn.", ".attn.")]


def _rename(key: str, pairs, renames) -> str | None:
    for src, dst in pairs:
        if key == src or (src.endswith(".") and key.startswith(src)):
            out = dst + key[len(src) :]
            if dst in ("stan.temporal.", "backbone.STAN_T_layers."):
                for a, b in renames:
                    out = out.replace(a, b, 1)
            return out
    return None


def from_official(sd: dict[str, torch.Tensor], path: str) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], int]:
    """Official state dict → (CLIP state, branch state, branch depth). Keys of no part are errors."""
    clip, branch, unknown = {}, {}, []
    for key, value in sd.items():
        if key.endswith("position_ids"):
            continue  # buffers older transformers saved
        target = _rename(key, PREFIXES, TEMPORAL_RENAMES)
        if target is None:
            unknown.append(key)
            continue
        value = value.float() if value.is_floating_point() else value
        if target.startswith("clip."):
            clip[target[len("clip.") :]] = value
        else:
            branch[target[len("stan.") :]] = value
    if unknown:
        raise CheckpointError(f"{path}: {len(unknown)} keys of no STAN part (e.g. {', '.join(sorted(unknown)[:3])})")
    depth = len({k.split(".")[1] for k in branch if k.startswith("temporal.")})
    if not depth:
        raise CheckpointError(f"{path}: not a STAN checkpoint: no STAN_T_layers")
    return clip, branch, depth


def to_official(encoder) -> dict[str, torch.Tensor]:
    """``StanEncoder`` → the official layout (tests write checkpoints with it; also an export)."""
    ours = {f"clip.{k}": v for k, v in encoder.clip.state_dict().items() if not k.endswith("position_ids") and k != "logit_scale"}
    ours.update({f"stan.{k}": v for k, v in encoder.stan.state_dict().items()})
    if any(k.startswith("stan.proj.") for k in ours):
        raise CheckpointError("the official STAN has no per-level W_proj: only StanConfig(project=False) models map to it")
    back = [(b, a) for a, b in PREFIXES]
    out = {}
    for key, value in ours.items():
        name = _rename(key, back, [(b, a) for a, b in TEMPORAL_RENAMES])
        if name is None:
            raise CheckpointError(f"no official name for {key}")
        out[name] = value
    return out


def load_into(encoder, sd: dict[str, torch.Tensor], path: str) -> None:
    """Strictly load an official checkpoint into ``encoder`` (built with the matching config)."""
    clip, branch, _depth = from_official(sd, path)
    clip["logit_scale"] = torch.tensor(math.log(100.0))  # tau = 0.01 in the official model
    encoder.load_clip_state(clip, path)
    strict_load(encoder.stan, branch, path)
