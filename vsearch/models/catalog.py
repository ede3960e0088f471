"""What models vsearch knows by name: families, registry entries and their facts, aliases.

Plain data, so that ``vsearch models`` lists everything without importing torch. Turning a
reference into an encoder is ``resolve`` (which plan) and ``registry`` (follow it).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import EncoderLoadError

if TYPE_CHECKING:
    from .encoder import VideoTextEncoder

#: family name -> "module:Class"
FAMILIES: dict[str, str] = {
    "clip-vip": "vsearch.models.clip_vip:ClipVipEncoder",
    "mean-pool": "vsearch.models.mean_pool:MeanPoolEncoder",
    "stan": "vsearch.models.stan:StanEncoder",
    "xclip": "vsearch.models.xclip:XClipEncoder",
}

FAMILY_SUMMARY: dict[str, str] = {
    "clip-vip": "CLIP + video proxy tokens with proxy-guided attention and a temporal embedding (CLIP-ViP); "
    "frames: any (12 default, temporal table resampled); 224 px squash; CLIP mean/std; "
    "image query: a 1-frame video (the temporal table's interpolated middle)",
    "mean-pool": "frame CLIP + temporal mean (zero-shot CLIP, CLIP4Clip meanP, ViFi-CLIP checkpoints); blind to temporal order; "
    "frames: any (12 default); short side + centre crop; CLIP mean/std (ViFi-CLIP: ImageNet mean/std, no per-frame norm); "
    "image query: CLIP's image features (a 1-frame mean)",
    "stan": "CLIP + a spatial-temporal side branch on its last 4 layers, fused into the frame CLS (STAN); "
    "frames: any up to 64 (12 default); short side + centre crop; CLIP mean/std; "
    "image query: a 1-frame video through the branch; official checkpoints load with --base",
    "xclip": "X-CLIP (cross-frame message tokens + multi-frame integration transformer), transformers' XCLIPModel; "
    "frames: exactly the checkpoint's (8 or 16 or 32); short side + centre crop; ImageNet mean/std; optional prompted re-ranking; "
    "image query: the image repeated to the frame count (a still video)",
}

#: Families built on top of a plain CLIP (its weights load; only the family's additions are new).
ON_CLIP = ("clip-vip", "stan", "xclip")

#: A config.json's ``model_type`` -> the family that embeds with that network. ``clip_vip`` and
#: ``stan`` are the ``model_type`` of ``ClipVipModelConfig`` / ``StanModelConfig``, which vsearch
#: writes; a folder whose config says ``clip`` is a plain CLIP unless its vsearch.json says more
#: (folders saved before those configs existed).
MODEL_TYPES = {"clip": "mean-pool", "xclip": "xclip", "clip_vip": "clip-vip", "stan": "stan"}


@dataclass(frozen=True)
class ModelEntry:
    """A registry name: which family, where its weights come from, and what ``vsearch models`` shows."""

    name: str
    family: str
    summary: str
    #: The Hugging Face hub id of the weights; None for the tiny models built in code (``tiny.py``).
    hub_id: str | None
    #: Facts shown by ``vsearch models`` without building the model (a test holds "params" to
    #: the built model's ``num_parameters``).
    facts: dict = field(default_factory=dict)


def family_class(family: str) -> type[VideoTextEncoder]:
    """The encoder class of ``family``, imported only now (it imports torch)."""
    try:
        target = FAMILIES[family]
    except KeyError:
        known = ", ".join(sorted(FAMILIES))
        raise EncoderLoadError(f"unknown encoder family {family!r} (known: {known})") from None
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)


_CROP, _SQUASH = "224, short side + centre crop", "224, squash"


def _b32_b16(
    name: str, family: str, summary: str, hub_id: str, params: tuple[str, str], **facts: str
) -> tuple[ModelEntry, ModelEntry]:
    """One method on the two OpenAI CLIP sizes: ``{p}`` in ``summary`` and ``hub_id`` becomes the
    patch size, ``{hub}`` the hub id; ``params`` are the B/32 and B/16 counts; the rest is shared."""
    return tuple(
        ModelEntry(
            f"{name}-b{p}", family, summary.format(p=p, hub=hub_id.format(p=p)), hub_id.format(p=p), {"params": n, **facts}
        )
        for p, n in zip((32, 16), params, strict=True)
    )


REGISTRY: dict[str, ModelEntry] = {
    e.name: e
    for e in (
        *_b32_b16(
            "clip", "mean-pool", "OpenAI CLIP ViT-B/{p} ({hub}), zero-shot, frame mean", "openai/clip-vit-base-patch{p}",
            ("151.3M", "149.6M"), frames="12 (any)", resolution=_CROP, norm="CLIP",
        ),
        *_b32_b16(
            "clip-vip", "clip-vip",
            "CLIP-ViP on OpenAI CLIP ViT-B/{p}: proxies and temporal embedding new (train, or convert the official checkpoint)",
            "openai/clip-vit-base-patch{p}", ("151.3M", "149.6M"), frames="12 (any)", resolution=_SQUASH, norm="CLIP",
        ),
        ModelEntry(
            "tiny-clip-vip", "clip-vip",
            "tiny random CLIP-ViP (64 px, 4 proxies, 12 temporal slots), for tests and from-scratch training",
            None,
            {"params": "1.8M", "frames": "12 (any)", "resolution": "64, squash", "norm": "CLIP"},
        ),
        *_b32_b16(
            "xclip", "xclip", "Microsoft X-CLIP ViT-B/{p}, Kinetics-400 ({hub})", "microsoft/xclip-base-patch{p}",
            ("196.6M", "194.9M"), frames="exactly 8", resolution=_CROP, norm="ImageNet",
        ),
        ModelEntry(
            "stan-b32", "stan",
            "STAN on OpenAI CLIP ViT-B/32: branch new (spatial levels from CLIP's last 4 layers); train before use",
            "openai/clip-vit-base-patch32",
            {"params": "193.3M", "frames": "12 (any, up to 64)", "resolution": _CROP, "norm": "CLIP"},
        ),
        ModelEntry(
            "tiny-xclip", "xclip", "tiny random X-CLIP (64 px, 8 frames), for tests and from-scratch training",
            None,
            {"params": "2.1M", "frames": "exactly 8", "resolution": "64, short side + centre crop", "norm": "ImageNet"},
        ),
        ModelEntry(
            "tiny-stan", "stan", "tiny random CLIP + STAN branch (64 px, 4 levels), for tests and from-scratch training",
            None,
            {"params": "2.1M", "frames": "12 (any, up to 64)", "resolution": "64, squash", "norm": "CLIP"},
        ),
        ModelEntry(
            "tiny-clip", "mean-pool",
            "tiny random CLIP (64 px, 4+2 layers), for tests and as a from-scratch start for `vsearch train`",
            None,
            {"params": "1.8M", "frames": "12 (any)", "resolution": "64, squash", "norm": "CLIP"},
        ),
    )
}  # fmt: skip

#: Short names that stand for a registry entry.
ALIASES = {"clip-vip": "clip-vip-b32", "clip": "clip-b32"}
