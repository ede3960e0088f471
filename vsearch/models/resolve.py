"""Model resolution as data: what a reference names and how to build it, decided before any weights load.

A reference is a registry name (``clip-b32``, ``tiny-clip``, ``tiny-clip-vip:32``), an alias
(``clip-vip``), a model folder (vsearch's or a Hugging Face one), a hub id (``org/name``), or an
official checkpoint file (``.pt``) read over a ``base`` CLIP. ``resolve(ref, family)`` turns it
into a ``LoadPlan``: which family the encoder will be, where its weights are, and which
constructor reads them. ``registry.load_encoder`` then follows the plan.

The function reads no weights and imports no torch. It looks only at what a folder says about
itself (``config.json``'s ``model_type``, else vsearch.json's family for folders written before
vsearch had config classes of its own) and, for a hub id, at its config.json through
``hub_family`` (the cached copy, else one small download), which tests replace. So every
decision, and every refusal, is testable without a model (``tests/test_resolve.py``), as the
index choice is.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import EncoderLoadError
from .catalog import ALIASES, MODEL_TYPES, ON_CLIP, REGISTRY
from .constants import SPEC_FILE
from .hub import require_hub
from .tiny import tiny_variant

#: Source strings of encoders loaded from a third-party checkpoint file: "checkpoint:PATH#base=BASE".
CHECKPOINT_SCHEME = "checkpoint:"
#: The CLIP an official checkpoint file is read over when no ``base`` is given.
DEFAULT_BASE = "openai/clip-vit-base-patch32"

#: How a plan's weights are read (``LoadPlan.via``).
VIA = {
    "saved": "the family's own loader reads a model it saved (or a hub checkpoint of that family)",
    "clip": "the family is built on plain CLIP weights: CLIP's load, the family's new parts are initialised",
    "encoder": "a mean-pool encoder loads first and the family is built on it, keeping its pixel settings",
    "official": "a third-party checkpoint file, converted; its key layout decides the family",
}


@dataclass(frozen=True)
class LoadPlan:
    """How to build the encoder a reference names (``registry.build`` follows it)."""

    #: The reference after aliases and checkpoint files are expanded: what the encoder's
    #: ``source`` will say for a checkpoint, and what error messages name.
    ref: str
    #: Where the weights are: "tiny" (built in code), "hub", "folder" or "checkpoint".
    source: str
    #: The family of the encoder built; None only for a checkpoint whose layout is yet unread.
    family: str | None
    #: Which constructor reads them: a key of ``VIA``.
    via: str
    #: The tiny model's name, the hub id, the folder, or the checkpoint file.
    location: str
    #: A tiny model's frame size (``tiny-clip-vip:32``).
    image_size: int | None = None
    #: The CLIP a checkpoint file is read over.
    base: str | None = None
    #: The frame count of a family built here on a plain CLIP (None: the family's default).
    frames: int | None = None


def is_model_folder(ref: str | os.PathLike[str]) -> bool:
    """A folder that holds a saved model: vsearch's ``vsearch.json`` or a Hugging Face ``config.json``."""
    return any(os.path.isfile(os.path.join(ref, name)) for name in (SPEC_FILE, "config.json"))


def resolve_alias(ref: str) -> str:
    """``ref`` with a short alias expanded, unless a model folder of that name is here: as with
    transformers' hub ids, the local folder wins. (The README's recipe writes ``--out clip-vip``;
    ``--model clip-vip`` must then load that folder, not try the hub for CLIP-ViP B/32.)"""
    return ref if is_model_folder(ref) else ALIASES.get(ref, ref)


def checkpoint_ref(path: str | os.PathLike[str], base: str) -> str:
    """The reference (and store source) of an official checkpoint file loaded over ``base``."""
    return f"{CHECKPOINT_SCHEME}{Path(path).resolve()}#base={base}"


def family_from_config(config_path: str | os.PathLike[str], ref: str) -> str:
    """The family a folder's ``config.json`` describes (``model_type``, else ``architectures``);
    anything else is refused rather than loaded as CLIP."""
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


def hub_family(ref: str) -> str | None:
    """The family of a hub id from its config.json: the cached copy, else a download of that one
    small file (the hub's reachability is checked first, so this fails in seconds offline)."""
    from huggingface_hub import try_to_load_from_cache

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


def _saved_family(folder: Path) -> str | None:
    """The family in a folder's vsearch.json, if it has one."""
    path = folder / SPEC_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))["family"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise EncoderLoadError(f"{folder}: {SPEC_FILE} cannot be read ({exc})") from None


def resolve(
    ref: str | os.PathLike[str],
    family: str | None = None,
    *,
    base: str | None = None,
    frames: int | None = None,
    hub_family: Callable[[str], str | None] = hub_family,
) -> LoadPlan:
    """The plan for building ``ref`` as ``family`` (None: whatever it is).

    A family other than what ``ref`` holds is accepted only where it can be built on it: CLIP-ViP,
    STAN or X-CLIP on a plain CLIP (CLIP-ViP post-pretrained from an image CLIP, as in its
    paper). ``frames``: the frame count of such a family (X-CLIP fixes it when built; the
    others take any count). Refusals raise ``EncoderLoadError`` naming what ``ref`` is.
    """
    ref = resolve_alias(os.fspath(ref))
    if os.path.isfile(ref):
        ref = checkpoint_ref(ref, base or DEFAULT_BASE)
    if ref.startswith(CHECKPOINT_SCHEME):
        path, _, ckpt_base = ref[len(CHECKPOINT_SCHEME) :].partition("#base=")
        return LoadPlan(ref, "checkpoint", family, "official", path, base=ckpt_base or DEFAULT_BASE, frames=frames)
    tiny = tiny_variant(ref)
    if (ref in REGISTRY or tiny) and not is_model_folder(ref):
        return _registry_plan(ref, family, frames, tiny)
    if os.path.isdir(ref):
        return _folder_plan(ref, family, frames)
    looks_like_hub_id = ref.count("/") == 1 and not ref.startswith(("/", ".", "~"))
    if looks_like_hub_id:
        return _hub_plan(ref, family, frames, hub_family(ref))
    if "/" in ref or ref.startswith((".", "~")):
        raise EncoderLoadError(f"{ref}: no such model folder")
    known = ", ".join(sorted(REGISTRY))
    raise EncoderLoadError(f"unknown model {ref!r}: not a registry name ({known}), a folder, or a hub id (org/name)")


def _on_clip_ok(held: str | None, wanted: str | None) -> bool:
    """Whether ``wanted`` can be built on what a reference holds: the same, or a family on a plain CLIP."""
    return not wanted or not held or wanted == held or (held == "mean-pool" and wanted in ON_CLIP)


def _registry_plan(ref: str, family: str | None, frames: int | None, tiny: tuple[str, int] | None) -> LoadPlan:
    entry = REGISTRY[tiny[0] if tiny else ref]
    if entry.hub_id is None:
        plan = LoadPlan(ref, "tiny", entry.family, "saved", entry.name, image_size=tiny[1] if tiny else 64)
    else:  # CLIP-ViP and STAN entries are the family on OpenAI's CLIP weights
        via = "clip" if entry.family in ("clip-vip", "stan") else "saved"
        plan = LoadPlan(ref, "hub", entry.family, via, entry.hub_id)
    if family and family != entry.family:
        if not _on_clip_ok(entry.family, family):
            raise EncoderLoadError(f"{ref!r} is a {entry.family} model, not {family}")
        return LoadPlan(ref, plan.source, family, "encoder", plan.location, image_size=plan.image_size, frames=frames)
    return plan


def _folder_plan(ref: str, family: str | None, frames: int | None) -> LoadPlan:
    folder = Path(ref)
    saved = _saved_family(folder)
    config = folder / "config.json"
    described = family_from_config(config, ref) if config.is_file() else None
    if saved and described not in (None, "mean-pool", saved):
        raise EncoderLoadError(f"{ref}: config.json describes a {described} model, {SPEC_FILE} a {saved} one")
    # The config's model_type decides; a "clip" config is refined by vsearch.json (folders saved
    # before CLIP-ViP and STAN had config classes of their own say "clip" there).
    held = described if described not in (None, "mean-pool") else (saved or described)
    if held is None:
        raise EncoderLoadError(f"{ref} is not a model folder (no {SPEC_FILE} or config.json)")
    if not _on_clip_ok(held, family):
        where = "" if saved else " (config.json)"
        raise EncoderLoadError(f"{ref} holds a {held} model{where}, not {family}")
    if family and family != held:  # a family built on a plain CLIP folder
        via = "encoder" if saved else "clip"
        return LoadPlan(ref, "folder", family, via, ref, frames=frames)
    return LoadPlan(ref, "folder", held, "saved", ref)


def _hub_plan(ref: str, family: str | None, frames: int | None, held: str | None) -> LoadPlan:
    if not _on_clip_ok(held, family):
        raise EncoderLoadError(f"{ref} is a {held} model (its config.json), not {family}")
    target = family or held or "mean-pool"
    if target in ON_CLIP and held in (None, "mean-pool") and (target != "xclip" or held == "mean-pool"):
        return LoadPlan(ref, "hub", target, "clip", ref, frames=frames)
    return LoadPlan(ref, "hub", target, "saved", ref)
