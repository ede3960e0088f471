"""``load_encoder``: resolve a reference to a plan (``resolve.py``), then follow it.

The names vsearch knows are in ``catalog.py``, the tiny models built in code in ``tiny.py``,
and the decision of what a reference is and how to build it in ``resolve.py`` (a pure
function, tested without weights). What stays here is the part that loads: one builder per
``LoadPlan.via``, the per-process cache, and ``convert_checkpoint``. Families are imported only
when used, so importing this module does not import torch.
"""

from __future__ import annotations

import os
import threading
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import EncoderLoadError
from .catalog import family_class
from .resolve import CHECKPOINT_SCHEME, LoadPlan, resolve, resolve_alias
from .tiny import tiny_builder

if TYPE_CHECKING:
    from .encoder import VideoTextEncoder

__all__ = ["build", "convert_checkpoint", "load_encoder", "on_clip", "resolve_alias"]

#: (reference as resolved on disk, family, device, frames): one encoder per process for each.
CacheKey = tuple[str, "str | None", str, "int | None"]
_cache: dict[CacheKey, VideoTextEncoder] = {}
_cache_lock = threading.Lock()


def load_encoder(
    ref: str | os.PathLike[str],
    *,
    family: str | None = None,
    device: str | None = None,
    cache: bool = True,
    base: str | None = None,
    frames: int | None = None,
    remember: bool = False,
) -> VideoTextEncoder:
    """Resolve ``ref`` to an encoder in eval mode on ``device`` (auto: CUDA if present).

    ``ref`` is a registry name, a model folder, a hub id, or an official checkpoint file
    (``.pt``) together with ``base``, the CLIP it was trained from. With ``cache`` (the default)
    a process loads each model once; later calls return the same object, so a long-running
    process pays for model loading and query encoding once. ``frames``: the frame count of a
    family built here on a plain CLIP (X-CLIP fixes it when built; the others take any count).
    ``remember``: record the model in the user's query-path cache (``query_path.remember``), so
    that later command-line searches can skip loading it in full; off unless the caller asks,
    as a library call writes no user cache of its own accord.
    """
    from ..config import resolve_device

    ref = resolve_alias(os.fspath(ref))
    plan = resolve(ref, family, base=base, frames=frames)
    dev = resolve_device(device)
    key: CacheKey = (str(Path(plan.ref).resolve()) if os.path.exists(plan.ref) else plan.ref, family, dev, frames)
    if cache:
        with _cache_lock:
            hit = _cache.get(key)
        if hit is not None:
            return hit
    enc = build(plan).to(dev).eval()
    if remember and enc.source and not enc.source.startswith(CHECKPOINT_SCHEME):
        from . import query_path

        query_path.remember(enc)
    if cache:
        with _cache_lock:
            _cache[key] = enc
    return enc


def build(plan: LoadPlan) -> VideoTextEncoder:
    """The encoder ``plan`` describes, on the CPU."""
    if plan.via == "official":
        return _from_checkpoint(plan)
    if plan.via == "encoder":
        start = build(replace(plan, family="mean-pool", via="saved", frames=None))
        return on_clip(plan.family, start, plan.frames)
    if plan.source == "tiny":
        return tiny_builder(plan.location, plan.image_size or 64)()
    cls = family_class(plan.family)
    if plan.via == "clip":
        return cls.from_clip(plan.location, frames=plan.frames) if plan.frames else cls.from_clip(plan.location)
    return cls.from_pretrained(plan.location)


def _from_checkpoint(plan: LoadPlan) -> VideoTextEncoder:
    """An official checkpoint file: its key layout decides the family (read once: such files
    are hundreds of MB, so the loader gets the dict already read)."""
    from .checkpoints import checkpoint_layout, load_state_dict

    path, base = plan.location, plan.base
    state = load_state_dict(path)
    layout = checkpoint_layout(state, path)
    fam = {"clip-vip": "clip-vip", "stan": "stan"}.get(layout, "mean-pool")
    if plan.family not in (None, fam):
        raise EncoderLoadError(f"{path} is a {layout} checkpoint, which loads as {fam}, not {plan.family}")
    if layout == "clip-vip":
        enc = family_class("clip-vip").from_official_checkpoint(path, base, state=state)
    elif layout == "stan":
        enc = family_class("stan").from_official_checkpoint(path, base, state=state)
    else:
        enc = family_class("mean-pool").from_openai_checkpoint(path, base, state=state)
    enc.source = plan.ref
    return enc


def on_clip(family: str, clip_encoder: VideoTextEncoder, frames: int | None = None) -> VideoTextEncoder:
    """``family`` initialised from a mean-pool (plain CLIP) encoder: CLIP-ViP post-pretrained
    from an image CLIP, as in the paper (X-CLIP and STAN start from CLIP in theirs too). Every
    CLIP weight is copied; ``new_parameters`` names what the family adds. The CLIP's pixel
    settings (size, resize, normalisation) are kept."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="vsearch-clip-") as tmp:
        clip_encoder.clip.save_pretrained(tmp)
        enc = family_class(family).from_clip(tmp, frames=frames or clip_encoder.spec.frames)
    enc.spec = replace(enc.spec, pixels=clip_encoder.spec.pixels, max_text_len=clip_encoder.spec.max_text_len)
    enc.tokenizer = clip_encoder.tokenizer
    enc.source = None
    return enc


def convert_checkpoint(
    src: str | os.PathLike[str], out: str | os.PathLike[str], base: str, dtype=None, *, fill_from_base: bool = False
) -> Path:
    """``vsearch convert-checkpoint``: a third-party checkpoint file (official CLIP-ViP, ViFi-CLIP,
    OpenAI CLIP) → a model folder that loads anywhere ``--model`` is accepted. ``base`` needs only
    its config and tokenizer when the file holds every weight; ``fill_from_base`` takes missing
    weights from the base's own (CLIP-ViP files)."""
    import json

    from ..atomic import atomic_write_text

    if fill_from_base:
        from .checkpoints import checkpoint_layout, load_state_dict
        from .clip_vip import ClipVipEncoder

        state = load_state_dict(src)
        if checkpoint_layout(state, src) != "clip-vip":
            raise EncoderLoadError(f"{src}: fill_from_base applies to official CLIP-ViP checkpoints")
        enc = ClipVipEncoder.from_official_checkpoint(src, base, state=state, fill_from_base=True)
    else:
        enc = load_encoder(src, base=base, device="cpu", cache=False)
    path = enc.save_pretrained(out, dtype=dtype)
    meta = {
        "converted_from": os.path.basename(os.fspath(src)),
        "base": base,
        "family": enc.family,
        "filled_from_base": fill_from_base,
    }
    atomic_write_text(path / "conversion.json", json.dumps(meta, indent=2) + "\n")
    return path
