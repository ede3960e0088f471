"""Model names, families, and the one function that turns a reference into an encoder.

A reference is any of: a registry name (``clip-b32``, ``tiny-clip``), a model directory
(vsearch's or a Hugging Face CLIP folder), or a Hugging Face hub id. Families are imported only
when used, so listing models does not import torch.
"""

from __future__ import annotations

import importlib
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
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


@dataclass(frozen=True)
class ModelEntry:
    name: str
    family: str
    summary: str
    build: Callable[[], VideoTextEncoder]
    #: Facts shown by ``vsearch models`` without building the model.
    facts: dict = field(default_factory=dict)


def family_class(family: str) -> type[VideoTextEncoder]:
    try:
        target = FAMILIES[family]
    except KeyError:
        known = ", ".join(sorted(FAMILIES))
        raise EncoderLoadError(f"unknown encoder family {family!r} (known: {known})") from None
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)


#: The tiny towers every tiny family shares (``tiny-clip``, ``-clip-vip``, ``-stan``, ``-xclip``), so
#: that the motion benchmark compares methods at one size. The text tower keeps CLIP's full
#: 49,408-token vocabulary so the real tokenizer works; its width is 32 to keep that embedding
#: table (most of the parameters) small.
TINY_TEXT_TOWER = {
    "hidden_size": 32,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "max_position_embeddings": 77,
}
TINY_VISION_TOWER = {"hidden_size": 64, "intermediate_size": 256, "num_hidden_layers": 4, "num_attention_heads": 4}


def tiny_clip_config(
    image_size: int = 64, patch_size: int = 8, projection_dim: int = 64, *, vision: dict | None = None, text: dict | None = None
):
    """A CLIP small enough to train on two CPU cores in minutes (about 1.8M parameters).
    ``vision`` / ``text`` override entries of one tower (``tools/tiny_clip.py`` widens one to
    measure what capacity buys, everything else equal)."""
    from transformers import CLIPConfig

    return CLIPConfig(
        text_config={**TINY_TEXT_TOWER, **(text or {})},
        vision_config={**TINY_VISION_TOWER, **(vision or {}), "image_size": image_size, "patch_size": patch_size},
        projection_dim=projection_dim,
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


def _tiny_clip_vip(image_size: int = 64) -> VideoTextEncoder:
    from .clip_vip import ClipVipEncoder

    return _seeded(lambda: ClipVipEncoder.from_config(tiny_clip_config(image_size)))


def _tiny_xclip(image_size: int = 64) -> VideoTextEncoder:
    from .xclip import XClipEncoder, tiny_xclip_config

    return _seeded(lambda: XClipEncoder.from_config(tiny_xclip_config(image_size)))


def _tiny_stan(image_size: int = 64) -> VideoTextEncoder:
    from .stan import StanEncoder

    enc = _seeded(lambda: StanEncoder.from_config(tiny_clip_config(image_size), frames=12))
    enc.spec = replace(enc.spec, pixels=replace(enc.spec.pixels, resize="squash"))
    return enc


#: Tiny models also come at another frame size: ``tiny-clip-vip:32`` (patch 8 stays, so 32 px
#: is 16 patches a frame, 4x less compute than 64 px: the first lever on a CPU).
TINY_BUILDERS = {
    "tiny-clip": tiny_mean_pool,
    "tiny-clip-vip": _tiny_clip_vip,
    "tiny-xclip": _tiny_xclip,
    "tiny-stan": _tiny_stan,
}


def _tiny(name: str, image_size: int = 64) -> Callable[[], VideoTextEncoder]:
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
    if not size.isdigit() or int(size) < 8 or int(size) % 8:
        raise EncoderLoadError(f"{ref}: the size after ':' must be a multiple of the 8-px patch, e.g. {name}:32")
    return name, int(size)


def _hub(family: str, hub_id: str) -> Callable[[], VideoTextEncoder]:
    def build() -> VideoTextEncoder:
        cls = family_class(family)
        return cls.from_clip(hub_id) if family in ("clip-vip", "stan") else cls.from_pretrained(hub_id)

    return build


def _hub_mean_pool(hub_id: str) -> Callable[[], VideoTextEncoder]:
    def build() -> VideoTextEncoder:
        from .mean_pool import MeanPoolEncoder

        return MeanPoolEncoder.from_pretrained(hub_id)

    return build


REGISTRY: dict[str, ModelEntry] = {
    "clip-b32": ModelEntry(
        "clip-b32",
        "mean-pool",
        "OpenAI CLIP ViT-B/32 (openai/clip-vit-base-patch32), zero-shot, frame mean",
        _hub_mean_pool("openai/clip-vit-base-patch32"),
        {"params": "151.3M", "frames": "12 (any)", "resolution": "224, short side + centre crop", "norm": "CLIP"},
    ),
    "clip-b16": ModelEntry(
        "clip-b16",
        "mean-pool",
        "OpenAI CLIP ViT-B/16 (openai/clip-vit-base-patch16), zero-shot, frame mean",
        _hub_mean_pool("openai/clip-vit-base-patch16"),
        {"params": "149.6M", "frames": "12 (any)", "resolution": "224, short side + centre crop", "norm": "CLIP"},
    ),
    "clip-vip-b32": ModelEntry(
        "clip-vip-b32",
        "clip-vip",
        "CLIP-ViP on OpenAI CLIP ViT-B/32: proxies and temporal embedding new (train, or convert the official checkpoint)",
        _hub("clip-vip", "openai/clip-vit-base-patch32"),
        {"params": "151.3M", "frames": "12 (any)", "resolution": "224, squash", "norm": "CLIP"},
    ),
    "clip-vip-b16": ModelEntry(
        "clip-vip-b16",
        "clip-vip",
        "CLIP-ViP on OpenAI CLIP ViT-B/16: proxies and temporal embedding new (train, or convert the official checkpoint)",
        _hub("clip-vip", "openai/clip-vit-base-patch16"),
        {"params": "149.6M", "frames": "12 (any)", "resolution": "224, squash", "norm": "CLIP"},
    ),
    "tiny-clip-vip": ModelEntry(
        "tiny-clip-vip",
        "clip-vip",
        "tiny random CLIP-ViP (64 px, 4 proxies, 12 temporal slots), for tests and from-scratch training",
        _tiny("tiny-clip-vip"),
        {"params": "1.8M", "frames": "12 (any)", "resolution": "64, squash", "norm": "CLIP"},
    ),
    "xclip-b32": ModelEntry(
        "xclip-b32",
        "xclip",
        "Microsoft X-CLIP ViT-B/32, Kinetics-400 (microsoft/xclip-base-patch32)",
        _hub("xclip", "microsoft/xclip-base-patch32"),
        {"params": "196.8M", "frames": "exactly 8", "resolution": "224, short side + centre crop", "norm": "ImageNet"},
    ),
    "xclip-b16": ModelEntry(
        "xclip-b16",
        "xclip",
        "Microsoft X-CLIP ViT-B/16, Kinetics-400 (microsoft/xclip-base-patch16)",
        _hub("xclip", "microsoft/xclip-base-patch16"),
        {"params": "194.9M", "frames": "exactly 8", "resolution": "224, short side + centre crop", "norm": "ImageNet"},
    ),
    "stan-b32": ModelEntry(
        "stan-b32",
        "stan",
        "STAN on OpenAI CLIP ViT-B/32: branch new (spatial levels from CLIP's last 4 layers); train before use",
        _hub("stan", "openai/clip-vit-base-patch32"),
        {"params": "191.5M", "frames": "12 (any, up to 64)", "resolution": "224, short side + centre crop", "norm": "CLIP"},
    ),
    "tiny-xclip": ModelEntry(
        "tiny-xclip",
        "xclip",
        "tiny random X-CLIP (64 px, 8 frames), for tests and from-scratch training",
        _tiny("tiny-xclip"),
        {"params": "2.1M", "frames": "exactly 8", "resolution": "64, short side + centre crop", "norm": "ImageNet"},
    ),
    "tiny-stan": ModelEntry(
        "tiny-stan",
        "stan",
        "tiny random CLIP + STAN branch (64 px, 4 levels), for tests and from-scratch training",
        _tiny("tiny-stan"),
        {"params": "2.0M", "frames": "12 (any, up to 64)", "resolution": "64, squash", "norm": "CLIP"},
    ),
    "tiny-clip": ModelEntry(
        "tiny-clip",
        "mean-pool",
        "tiny random CLIP (64 px, 4+2 layers), for tests and as a from-scratch start for `vsearch train`",
        _tiny("tiny-clip"),
        {"params": "1.8M", "frames": "12 (any)", "resolution": "64, squash", "norm": "CLIP"},
    ),
}

_cache: dict[tuple[str, str | None, str], VideoTextEncoder] = {}
_cache_lock = threading.Lock()


#: Short names that stand for a registry entry.
ALIASES = {"clip-vip": "clip-vip-b32", "clip": "clip-b32"}


def is_model_folder(ref: str | os.PathLike[str]) -> bool:
    """A folder that holds a saved model: vsearch's ``vsearch.json`` or a Hugging Face ``config.json``."""
    from .encoder import SPEC_FILE

    return any(os.path.isfile(os.path.join(ref, name)) for name in (SPEC_FILE, "config.json"))


def resolve_alias(ref: str) -> str:
    """``ref`` with a short alias expanded, unless a model folder of that name is here: as with
    transformers' hub ids, the local folder wins. (The README's recipe writes ``--out clip-vip``;
    ``--model clip-vip`` must then load that folder, not try the hub for CLIP-ViP B/32.)"""
    return ref if is_model_folder(ref) else ALIASES.get(ref, ref)


#: Source strings of encoders loaded from a third-party checkpoint file: "checkpoint:PATH#base=BASE".
CHECKPOINT_SCHEME = "checkpoint:"


def checkpoint_ref(path: str | os.PathLike[str], base: str) -> str:
    """The reference (and store source) of an official checkpoint file loaded over ``base``."""
    return f"{CHECKPOINT_SCHEME}{Path(path).resolve()}#base={base}"


def load_encoder(
    ref: str | os.PathLike[str],
    *,
    family: str | None = None,
    device: str | None = None,
    cache: bool = True,
    base: str | None = None,
    frames: int | None = None,
) -> VideoTextEncoder:
    """Resolve ``ref`` to an encoder in eval mode on ``device`` (auto: CUDA if present).

    ``ref`` is a registry name, a model folder, a hub id, or an official checkpoint file
    (``.pt``) together with ``base``, the CLIP it was trained from. With ``cache`` (the default)
    a process loads each model once; later calls return the same object, so a long-running
    process pays for model loading and query encoding once. ``frames``: the frame count of a
    family built here on a plain CLIP (X-CLIP fixes it when built; the others take any count).
    """
    from ..config import resolve_device

    ref = os.fspath(ref)
    ref = resolve_alias(ref)
    if os.path.isfile(ref):
        ref = checkpoint_ref(ref, base or "openai/clip-vit-base-patch32")
    dev = resolve_device(device)
    key = (str(Path(ref).resolve()) if os.path.exists(ref) else ref, family, dev, frames)
    if cache:
        with _cache_lock:
            hit = _cache.get(key)
        if hit is not None:
            return hit
    enc = _build(ref, family, frames).to(dev).eval()
    if enc.source and not enc.source.startswith(CHECKPOINT_SCHEME):
        from . import query_path

        query_path.remember(enc)  # lets later command-line searches skip the full model
    if cache:
        with _cache_lock:
            _cache[key] = enc
    return enc


def _build(ref: str, family: str | None, frames: int | None = None) -> VideoTextEncoder:
    from .encoder import read_spec_file

    if ref.startswith(CHECKPOINT_SCHEME):
        from .checkpoints import checkpoint_layout, load_state_dict

        path, _, base = ref[len(CHECKPOINT_SCHEME) :].partition("#base=")
        state = load_state_dict(path)  # read once: official files are hundreds of MB
        layout = checkpoint_layout(state, path)
        fam = {"clip-vip": "clip-vip", "stan": "stan"}.get(layout, "mean-pool")
        if family not in (None, fam):
            raise EncoderLoadError(f"{path} is a {layout} checkpoint, which loads as {fam}, not {family}")
        if layout == "clip-vip":
            from .clip_vip import ClipVipEncoder

            enc = ClipVipEncoder.from_official_checkpoint(path, base, state=state)
        elif layout == "stan":
            from .stan import StanEncoder

            enc = StanEncoder.from_official_checkpoint(path, base, state=state)
        else:
            from .mean_pool import MeanPoolEncoder

            enc = MeanPoolEncoder.from_openai_checkpoint(path, base, state=state)
        enc.source = ref
        return enc
    tiny = tiny_variant(ref)
    if (ref in REGISTRY or tiny) and not is_model_folder(ref):
        entry = REGISTRY[tiny[0] if tiny else ref]
        build = _tiny(*tiny) if tiny else entry.build
        if family and family != entry.family:
            if entry.family == "mean-pool" and family in ON_CLIP:
                return _on_clip(family, build(), frames)
            raise EncoderLoadError(f"{ref!r} is a {entry.family} model, not {family}")
        return build()
    path = Path(ref)
    if path.is_dir():
        saved = read_spec_file(path)
        fam = saved["family"] if saved else None
        if not saved and (path / "config.json").is_file():
            fam = family_from_config(path / "config.json", ref)
            if family and family != fam and not (fam == "mean-pool" and family in ON_CLIP):
                raise EncoderLoadError(f"{ref} holds a {fam} model (config.json), not {family}")
            if family in ON_CLIP and fam == "mean-pool":
                if family == "xclip":
                    return family_class(family).from_clip(path, frames=frames or 8)
                fam = family  # CLIP-ViP / STAN built on a plain CLIP folder
        fam = family or fam or "mean-pool"
        if saved and family and saved["family"] != family:
            if saved["family"] == "mean-pool" and family in ON_CLIP:
                from .mean_pool import MeanPoolEncoder

                return _on_clip(family, MeanPoolEncoder.from_pretrained(path), frames)
            raise EncoderLoadError(f"{ref} holds a {saved['family']} model, not {family}")
        if not is_model_folder(path):
            raise EncoderLoadError(f"{ref} is not a model folder (no vsearch.json or config.json)")
        return family_class(fam).from_pretrained(path)
    looks_like_hub_id = ref.count("/") == 1 and not ref.startswith(("/", ".", "~"))
    if looks_like_hub_id:
        fam = _hub_family(ref)
        if family and fam and family != fam and not (fam == "mean-pool" and family in ON_CLIP):
            raise EncoderLoadError(f"{ref} is a {fam} model (its config.json), not {family}")
        if family == "xclip" and fam == "mean-pool":
            return family_class(family).from_clip(ref, frames=frames or 8)
        return family_class(family or fam or "mean-pool").from_pretrained(ref)
    if "/" in ref or ref.startswith((".", "~")):
        raise EncoderLoadError(f"{ref}: no such model folder")
    known = ", ".join(sorted(REGISTRY))
    raise EncoderLoadError(f"unknown model {ref!r}: not a registry name ({known}), a folder, or a hub id (org/name)")


#: transformers ``model_type`` -> the family that embeds with that network.
MODEL_TYPES = {"clip": "mean-pool", "xclip": "xclip"}


def family_from_config(config_path: Path, ref: str) -> str:
    """The family a Hugging Face folder's ``config.json`` describes (``model_type``, else
    ``architectures``); anything else is refused rather than loaded as CLIP."""
    import json

    try:
        cfg = json.loads(Path(config_path).read_text())
    except (OSError, ValueError) as exc:
        raise EncoderLoadError(f"{ref}: config.json cannot be read ({exc})") from None
    mtype = str(cfg.get("model_type", "")).lower()
    if mtype in MODEL_TYPES:
        return MODEL_TYPES[mtype]
    for arch in cfg.get("architectures") or ():
        if arch.lower().startswith("xclip"):
            return "xclip"
        if arch.lower().startswith("clip"):
            return "mean-pool"
    raise EncoderLoadError(
        f"{ref}: config.json describes a {mtype or 'model of unknown type'!s} model, not CLIP or X-CLIP "
        f"(a CLIP-ViP or STAN folder saved by vsearch has a vsearch.json)"
    )


def _hub_family(ref: str) -> str | None:
    """The family of a hub id from its config.json: the cached copy, else a download of that one
    small file (the hub's reachability is checked first, so this fails in seconds offline)."""
    from huggingface_hub import try_to_load_from_cache

    from .checkpoints import require_hub

    try:
        cached = try_to_load_from_cache(ref, "config.json")
    except ValueError:
        cached = None
    if isinstance(cached, str):
        return family_from_config(Path(cached), ref)
    require_hub(ref)
    from huggingface_hub import hf_hub_download

    try:
        return family_from_config(Path(hf_hub_download(ref, "config.json")), ref)
    except Exception as exc:  # noqa: BLE001 - any hub failure: let the loader report it properly
        if isinstance(exc, EncoderLoadError):
            raise
        return None


#: Families built on top of a plain CLIP (its weights load; only the family's additions are new).
ON_CLIP = ("clip-vip", "stan", "xclip")


def _on_clip(family: str, clip_encoder: VideoTextEncoder, frames: int | None = None) -> VideoTextEncoder:
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


def clear_cache() -> None:
    with _cache_lock:
        _cache.clear()


def convert_checkpoint(
    src: str | os.PathLike[str], out: str | os.PathLike[str], base: str, dtype=None, *, fill_from_base: bool = False
) -> Path:
    """``vsearch convert-checkpoint``: a third-party checkpoint file (official CLIP-ViP, ViFi-CLIP,
    OpenAI CLIP) → a model folder that loads anywhere ``--model`` is accepted. ``base`` needs only
    its config and tokenizer when the file holds every weight; ``fill_from_base`` takes missing
    weights from the base's own (CLIP-ViP files)."""
    import json

    if fill_from_base:
        from .checkpoints import checkpoint_layout, load_state_dict
        from .clip_vip import ClipVipEncoder

        state = load_state_dict(src)
        if checkpoint_layout(state, src) != "clip-vip":
            raise EncoderLoadError(f"{src}: --fill-from-base applies to official CLIP-ViP checkpoints")
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
    (path / "conversion.json").write_text(json.dumps(meta, indent=2) + "\n")
    return path
