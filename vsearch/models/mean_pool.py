"""Frame CLIP + temporal mean: zero-shot CLIP, CLIP4Clip meanP and ViFi-CLIP.

Each frame goes through CLIP's image tower on its own; the video vector is the mean of the
projected frame vectors. The three methods differ only in weights and two switches:

- ``frame_norm``: CLIP4Clip meanP L2-normalises each frame before the mean; ViFi-CLIP does not.
- normalisation constants: CLIP's for OpenAI weights, ImageNet's for ViFi-CLIP's checkpoints.

It cannot see temporal order: a clip and its reverse get the same vector. That is the
baseline the temporal encoders (CLIP-ViP, STAN, X-CLIP) are measured against.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch
import torch.nn.functional as F
from transformers import CLIPConfig, CLIPModel

from ..errors import CheckpointError
from .checkpoints import (
    from_pretrained_hf,
    load_state_dict,
    openai_clip_to_hf,
    read_clip_config,
    read_preprocessor_config,
    restore_position_ids,
    save_model_dir,
    strict_load,
)
from .constants import IMAGENET_MEAN, IMAGENET_STD, OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
from .encoder import EncoderSpec, VideoTextEncoder, read_spec_file, source_of
from .tokenizer import load_tokenizer

T = TypeVar("T")


def pooled(out) -> torch.Tensor:
    """transformers 5 returns output objects from ``get_*_features``; 4.x returned tensors."""
    return out if torch.is_tensor(out) else out.pooler_output


def settings_from(kind: type[T], options: Mapping[str, Any]) -> T:
    """The settings dataclass ``kind`` from the entries of ``options`` that are its fields; the
    others keep their defaults (older folders lack newer fields, and option dicts hold other keys)."""
    return kind(**{f.name: options[f.name] for f in fields(kind) if f.name in options})


class ClipSettingsConfig(CLIPConfig):
    """A ``CLIPConfig`` with a family's settings beside the towers (under ``settings_key``), for a
    subclass with a ``model_type`` of its own (CLIP-ViP, STAN): a folder's config.json then says
    what it holds, and model resolution dispatches on it as transformers does. Folders a family
    saved before it had such a class say ``clip``; they still load (vsearch.json has the rest)."""

    #: The config.json key of the settings, and the dataclass they are read back as.
    settings_key: ClassVar[str]
    settings_type: ClassVar[type]

    def __init__(self, **kwargs):
        settings = kwargs.pop(self.settings_key, None)
        super().__init__(**kwargs)
        setattr(self, self.settings_key, dict(settings or {}))

    @classmethod
    def from_clip_config(cls, config: CLIPConfig, settings: Mapping[str, Any]) -> ClipSettingsConfig:
        """``config``'s towers and projection with ``settings`` beside them."""
        towers = {k: v for k, v in config.to_dict().items() if k not in ("model_type", cls.settings_key)}
        return cls(**towers, **{cls.settings_key: dict(settings)})

    def settings(self):
        return settings_from(self.settings_type, getattr(self, self.settings_key))


class ClipBackedEncoder(VideoTextEncoder):
    """An encoder built on a transformers ``CLIPModel`` (``self.clip``) whose text side is CLIP's,
    unchanged: mean pooling, CLIP-ViP and STAN differ only in how frames become a video vector,
    so their query vectors and temperature come from this one place (and the query fast path in
    ``query_path`` can stand in for all three)."""

    def __init__(self, clip: CLIPModel, tokenizer, spec: EncoderSpec):
        super().__init__(spec, tokenizer)
        self.clip = clip

    def text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return pooled(self.clip.get_text_features(input_ids=input_ids, attention_mask=attention_mask))

    @property
    def logit_scale(self) -> torch.nn.Parameter:
        return self.clip.logit_scale

    def load_clip_state(self, sd: dict[str, torch.Tensor], source: str) -> None:
        """Load a full state dict into ``self.clip``, refusing any missing, unknown or mis-shaped
        key (the family's additions to CLIP included; a separate branch is the caller's)."""
        strict_load(self.clip, sd, source, hint=" (a B/16 checkpoint into a B/32 base? pass the matching base)")
        restore_position_ids(self.clip)
        self._fingerprint = None

    @staticmethod
    def read_saved_folder(ref: str, model_config: type[ClipSettingsConfig]) -> tuple[EncoderSpec, CLIPModel, Any] | None:
        """A folder vsearch wrote for a family with settings of its own (CLIP-ViP, STAN): its spec,
        an empty CLIP of its config (on the meta device: the caller loads the weights) and the
        settings. None when ``ref`` is no such folder (a plain CLIP folder or a hub id).

        The settings are in config.json (``model_config.settings()``), or in the spec's options
        in folders saved before the family had a config type of its own."""
        saved = read_spec_file(ref) if os.path.isdir(ref) else None
        if not saved:
            return None
        spec = EncoderSpec.from_dict(saved["spec"])
        config = read_clip_config(ref, model_config)
        if isinstance(config, model_config):
            found = config.settings()
        else:
            found = settings_from(model_config.settings_type, spec.options)
        with torch.device("meta"):
            clip = CLIPModel(config)
        return spec, clip, found


class MeanPoolEncoder(ClipBackedEncoder):
    family = "mean-pool"

    @classmethod
    def default_spec(
        cls,
        config: CLIPConfig,
        frames: int = 12,
        resize: str = "crop",
        frame_norm: bool = True,
        preprocessor: dict | None = None,
    ) -> EncoderSpec:
        pre = preprocessor or {}  # a preprocessor_config.json overrides the constants
        mean, std = pre.get("image_mean", OPENAI_CLIP_MEAN), pre.get("image_std", OPENAI_CLIP_STD)
        return EncoderSpec.for_clip(
            cls.family, config, frames=frames, resize=resize, mean=mean, std=std, options={"frame_norm": frame_norm}
        )

    @classmethod
    def from_config(
        cls, config: CLIPConfig, tokenizer=None, *, frames: int = 12, resize: str = "crop", frame_norm: bool = True
    ) -> MeanPoolEncoder:
        """Randomly initialised (seed it first for reproducible weights)."""
        spec = cls.default_spec(config, frames=frames, resize=resize, frame_norm=frame_norm)
        tok = tokenizer or load_tokenizer(None, spec.max_text_len)
        return cls(CLIPModel(config).eval(), tok, spec)

    @classmethod
    def from_pretrained(
        cls, ref: str | os.PathLike[str], *, frames: int = 12, resize: str = "crop", frame_norm: bool = True
    ) -> MeanPoolEncoder:
        """A vsearch model directory, a Hugging Face CLIP folder, or a hub id. ``frames``,
        ``resize`` and ``frame_norm`` set the spec of a CLIP that has none (a vsearch folder
        keeps the one it was saved with)."""
        ref = os.fspath(ref)
        saved = read_spec_file(ref) if os.path.isdir(ref) else None
        clip = from_pretrained_hf(CLIPModel, ref).eval()
        if saved:
            spec = EncoderSpec.from_dict(saved["spec"])
        else:
            spec = cls.default_spec(clip.config, frames, resize, frame_norm, preprocessor=read_preprocessor_config(ref))
        tok = load_tokenizer(ref if os.path.isdir(ref) else None, spec.max_text_len)
        if not os.path.isdir(ref):
            tok = _hub_tokenizer(ref, spec.max_text_len) or tok
        enc = cls(clip, tok, spec)
        enc.source = source_of(ref)
        return enc

    @classmethod
    def from_openai_checkpoint(
        cls, path: str | os.PathLike[str], base: str, frames: int = 16, *, state: dict[str, torch.Tensor] | None = None
    ) -> MeanPoolEncoder:
        """A ViFi-CLIP release (or any OpenAI-layout CLIP state dict) over ``base``'s config.

        ViFi-CLIP is frame CLIP + temporal mean with fine-tuned weights. Its checkpoints hold
        ``image_encoder.*`` / ``text_encoder.*`` in OpenAI's names (fused q/k/v, x @ W
        projections) but no token embedding (the prompt learner keeps only its output), so that
        comes from ``base`` (the CLIP it was fine-tuned from, e.g. openai/clip-vit-base-patch16).
        Preprocessing follows ViFi-CLIP: ImageNet mean/std, no per-frame normalisation before
        the mean, "a photo of a {}." for class names. ``state``: the file's ``load_state_dict``
        when the caller has read it already.
        """
        raw = load_state_dict(path) if state is None else state
        if any(k.startswith("image_encoder.") for k in raw):
            visual, text = "image_encoder.", "text_encoder."
        elif any(k.startswith("visual.") for k in raw):
            visual, text = "visual.", ""
        else:
            raise CheckpointError(f"{path}: not an OpenAI-layout CLIP checkpoint (no image_encoder.* or visual.* keys)")
        try:
            sd = openai_clip_to_hf(raw, visual, text)
        except KeyError as exc:
            raise CheckpointError(f"{path}: OpenAI-layout checkpoint is missing {exc.args[0]}") from None
        clip = from_pretrained_hf(CLIPModel, base).eval()
        for key in ("text_model.embeddings.token_embedding.weight", "logit_scale"):
            sd.setdefault(key, clip.state_dict()[key])  # not in ViFi-CLIP files: the base's
        strict_load(clip, sd, os.fspath(path), hint=" (pass the CLIP it was trained from as base)")
        spec = EncoderSpec.for_clip(
            cls.family, clip.config, frames=frames, resize="crop", mean=IMAGENET_MEAN, std=IMAGENET_STD,
            options={"frame_norm": False}, prompt="a photo of a {}.",
        )  # fmt: skip
        tok = _hub_tokenizer(base, spec.max_text_len) if not os.path.isdir(base) else None
        return cls(clip, tok or load_tokenizer(base if os.path.isdir(base) else None, spec.max_text_len), spec)

    def video_features(self, pixels: torch.Tensor) -> torch.Tensor:
        b, t, c, h, w = pixels.shape  # (B, T, 3, S, S)
        frames = pooled(self.clip.get_image_features(pixel_values=pixels.reshape(b * t, c, h, w)))  # (B*T, D)
        frames = frames.view(b, t, -1)
        if self.spec.options.get("frame_norm", True):
            frames = F.normalize(frames, dim=-1)
        return frames.mean(dim=1)  # (B, D)

    def save_pretrained(self, directory: str | os.PathLike[str], dtype: torch.dtype | None = None) -> Path:
        return save_model_dir(directory, self, self.clip.config, self.clip.state_dict(), dtype)


def _hub_tokenizer(ref: str, max_length: int):
    """The hub model's own tokenizer when it is cached; otherwise the bundled (identical) one."""
    from transformers import CLIPTokenizer

    try:
        tok = CLIPTokenizer.from_pretrained(ref, local_files_only=True)
    except (OSError, ValueError):
        return None
    # A cache entry without vocabulary files still "loads" (transformers builds an empty BPE that
    # maps every word to one id): only a tokenizer that agrees with CLIP's own BPE is used.
    probe = "a dog catches a frisbee"
    bundled = load_tokenizer(None, max_length)
    if list(tok(probe)["input_ids"]) != list(bundled(probe)["input_ids"]):
        return None
    tok.model_max_length = max_length
    return tok
