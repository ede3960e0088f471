"""Tiny models built in code: the configs and seeded builders behind ``tiny-clip`` and its kin.

Every tiny family (``tiny-clip``, ``-clip-vip``, ``-stan``, ``-xclip``) shares the same two
towers so that the motion benchmark compares methods at one size. They are what tests and
from-scratch training use instead of a downloaded checkpoint. The registry names them; the
X-CLIP config sits here beside the CLIP one rather than in ``xclip.py`` so that no model file
has to reach back up into the registry for the tower sizes.

transformers and the encoder classes are imported inside the builders: the registry imports
this module, and listing models must not import torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from ..errors import EncoderLoadError

if TYPE_CHECKING:
    from transformers import CLIPConfig, XCLIPConfig

    from .encoder import VideoTextEncoder

#: The text tower keeps CLIP's full 49,408-token vocabulary so the real tokenizer works; its
#: width is 32 to keep that embedding table (most of the parameters) small.
TINY_TEXT_TOWER = {
    "hidden_size": 32,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "max_position_embeddings": 77,
}
TINY_VISION_TOWER = {"hidden_size": 64, "intermediate_size": 256, "num_hidden_layers": 4, "num_attention_heads": 4}
#: The patch every tiny model uses; a ``tiny-...:SIZE`` frame size must be a multiple of it.
TINY_PATCH = 8


def tiny_clip_config(
    image_size: int = 64,
    patch_size: int = TINY_PATCH,
    projection_dim: int = 64,
    *,
    vision: dict | None = None,
    text: dict | None = None,
) -> CLIPConfig:
    """A CLIP small enough to train on two CPU cores in minutes (about 1.8M parameters).
    ``vision`` / ``text`` override entries of one tower (``tools/tiny_clip.py`` widens one to
    measure what capacity buys, everything else equal)."""
    from transformers import CLIPConfig

    return CLIPConfig(
        text_config={**TINY_TEXT_TOWER, **(text or {})},
        vision_config={**TINY_VISION_TOWER, **(vision or {}), "image_size": image_size, "patch_size": patch_size},
        projection_dim=projection_dim,
    )


def tiny_xclip_config(
    image_size: int = 64, patch_size: int = TINY_PATCH, frames: int = 8, projection_dim: int = 64
) -> XCLIPConfig:
    """A tiny X-CLIP built in code (tests, from-scratch training on the synthetic benchmark): the
    towers of ``tiny_clip_config``, plus X-CLIP's cross-frame and prompt modules at that size."""
    from transformers import XCLIPConfig

    return XCLIPConfig(
        text_config=dict(TINY_TEXT_TOWER),
        vision_config={
            **TINY_VISION_TOWER,
            "image_size": image_size,
            "patch_size": patch_size,
            "num_frames": frames,
            "mit_hidden_size": projection_dim,
            "mit_intermediate_size": 4 * projection_dim,
            "mit_num_attention_heads": 4,
        },
        projection_dim=projection_dim,
        prompt_num_attention_heads=4,
    )


def _seeded(build: Callable[[], VideoTextEncoder], seed: int = 0) -> VideoTextEncoder:
    """Random weights that are the same in every process (so a store can reload them)."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def tiny_mean_pool(image_size: int = 64, *, vision: dict | None = None, text: dict | None = None) -> VideoTextEncoder:
    """``tiny-clip`` (seeded, so every process builds the same weights), optionally with one tower changed."""
    from .mean_pool import MeanPoolEncoder

    return _seeded(lambda: MeanPoolEncoder.from_config(tiny_clip_config(image_size, vision=vision, text=text), resize="squash"))


def tiny_clip_vip(image_size: int = 64) -> VideoTextEncoder:
    from .clip_vip import ClipVipEncoder

    return _seeded(lambda: ClipVipEncoder.from_config(tiny_clip_config(image_size)))


def tiny_xclip(image_size: int = 64) -> VideoTextEncoder:
    from .xclip import XClipEncoder

    return _seeded(lambda: XClipEncoder.from_config(tiny_xclip_config(image_size)))


def tiny_stan(image_size: int = 64) -> VideoTextEncoder:
    from .stan import StanEncoder

    enc = _seeded(lambda: StanEncoder.from_config(tiny_clip_config(image_size), frames=12))
    enc.spec = replace(enc.spec, pixels=replace(enc.spec.pixels, resize="squash"))
    return enc


#: Tiny models also come at another frame size: ``tiny-clip-vip:32`` (patch 8 stays, so 32 px
#: is 16 patches a frame, 4x less compute than 64 px: the first lever on a CPU).
TINY_BUILDERS: dict[str, Callable[[int], VideoTextEncoder]] = {
    "tiny-clip": tiny_mean_pool,
    "tiny-clip-vip": tiny_clip_vip,
    "tiny-xclip": tiny_xclip,
    "tiny-stan": tiny_stan,
}


def tiny_builder(name: str, image_size: int = 64) -> Callable[[], VideoTextEncoder]:
    """A builder of the tiny model ``name`` at ``image_size`` that records where it came from."""

    def build() -> VideoTextEncoder:
        enc = TINY_BUILDERS[name](image_size)
        enc.source = name if image_size == 64 else f"{name}:{image_size}"
        return enc

    return build


def tiny_variant(ref: str) -> tuple[str, int] | None:
    """``("tiny-clip-vip", 32)`` for ``tiny-clip-vip:32``; None for anything else."""
    name, sep, size = ref.partition(":")
    if not sep or name not in TINY_BUILDERS:
        return None
    if not size.isdigit() or int(size) < TINY_PATCH or int(size) % TINY_PATCH:
        raise EncoderLoadError(f"{ref}: the size after ':' must be a multiple of the 8-px patch, e.g. {name}:32")
    return name, int(size)
