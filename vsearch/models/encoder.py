"""One interface for every video-text encoder.

An encoder declares what it needs (``EncoderSpec``: frames, pixel size and normalisation,
text length) and turns pixels ``(B, T, 3, S, S)`` and strings into L2-normalised vectors. The
pipeline asks the spec; it never assumes 12 frames or CLIP's mean.

Normalisation happens here, once: methods return raw projected features from
``video_features`` / ``text_features`` and this class normalises, so no path normalises twice
or never (the open_clip ``normalize`` lesson).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..atomic import atomic_write_text
from ..video.transforms import PixelSpec, to_pixels
from .constants import SPEC_FILE
from .tokenizer import clean_text

FORMAT_VERSION = 1


@dataclass(frozen=True)
class EncoderSpec:
    """What an encoder needs from the pipeline; recorded in every store it builds."""

    family: str
    dim: int
    frames: int
    #: "any": any frame count works and ``frames`` is the default; "fixed": exactly ``frames``.
    frame_rule: str
    pixels: PixelSpec
    max_text_len: int = 77
    #: Template turning a class name into text for recognition.
    prompt: str = "a video of {}."
    #: Family-specific switches that change the embedding (e.g. ``frame_norm`` for mean pooling).
    options: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict:
        """Every field, in declaration order (a new field is recorded without a second list to update)."""
        plain = {f.name: getattr(self, f.name) for f in fields(self)}
        return plain | {"pixels": self.pixels.as_dict(), "options": dict(self.options)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EncoderSpec:
        return cls(
            family=d["family"],
            dim=int(d["dim"]),
            frames=int(d["frames"]),
            frame_rule=d.get("frame_rule", "any"),
            pixels=PixelSpec.from_dict(d["pixels"]),
            max_text_len=int(d.get("max_text_len", 77)),
            prompt=d.get("prompt", "a video of {}."),
            options=dict(d.get("options", {})),
        )

    @classmethod
    def for_clip(
        cls,
        family: str,
        config,
        *,
        frames: int,
        resize: str,
        mean,
        std,
        options: Mapping[str, Any] | None = None,
        prompt: str = "a video of {}.",
    ) -> EncoderSpec:
        """The spec of an encoder on a CLIP-shaped ``config`` (projection, image size, text length)."""
        return cls(
            family=family,
            dim=config.projection_dim,
            frames=frames,
            frame_rule="any",
            pixels=PixelSpec(
                config.vision_config.image_size, resize, tuple(float(m) for m in mean), tuple(float(x) for x in std)
            ),
            max_text_len=config.text_config.max_position_embeddings,
            prompt=prompt,
            options=dict(options or {}),
        )

    def with_frames(self, frames: int) -> EncoderSpec:
        if self.frame_rule == "fixed" and frames != self.frames:
            raise ValueError(f"{self.family} needs exactly {self.frames} frames per clip, not {frames}")
        return replace(self, frames=frames)


def device_autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA, nothing on CPU (fp32 is exact there and bf16 rarely pays)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def check_frame_count(spec: EncoderSpec, t: int) -> None:
    """Refuse ``t`` frames per clip for a family that takes exactly ``spec.frames``."""
    if spec.frame_rule == "fixed" and t != spec.frames:
        raise ValueError(f"{spec.family} needs exactly {spec.frames} frames per clip, got {t}")


class VideoTextEncoder(nn.Module):
    """Base class: subclasses implement ``video_features``, ``text_features`` and saving."""

    family: ClassVar[str] = ""
    #: Name fragments of the parameters this family adds to a CLIP (the training loop's
    #: ``new_lr_mul`` applies to them). Empty for plain CLIP.
    added_to_clip: ClassVar[tuple[str, ...]] = ()

    def __init__(self, spec: EncoderSpec, tokenizer: Any):
        super().__init__()
        self.spec = spec
        self.tokenizer = tokenizer
        #: How to load this encoder again (registry name, hub id or absolute directory).
        self.source: str | None = None
        self._fingerprint: str | None = None
        self._text_cache: dict[str, torch.Tensor] = {}

    # -- what subclasses provide -------------------------------------------------------------
    def video_features(self, pixels: torch.Tensor) -> torch.Tensor:
        """``(B, T, 3, S, S)`` → ``(B, D)`` projected, not normalised."""
        raise NotImplementedError

    def text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """``(N, L)`` token ids → ``(N, D)`` projected, not normalised."""
        raise NotImplementedError

    @property
    def logit_scale(self) -> nn.Parameter:
        """The learnable log-temperature used by contrastive training."""
        raise NotImplementedError

    def save_pretrained(self, directory: str | os.PathLike[str], dtype: torch.dtype | None = None) -> Path:
        raise NotImplementedError

    # -- shared machinery --------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def name(self) -> str:
        return f"{self.family}:{self.source}" if self.source else self.family

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Clean and tokenise, padded to the longest text and cut at ``spec.max_text_len``.

        Padding to the longest (not to 77) is exact for CLIP text towers: attention is causal
        and pooling takes the first end-of-text token, so trailing padding never reaches it.
        """
        enc = self.tokenizer(
            [clean_text(t) for t in texts],
            padding=True,
            truncation=True,
            max_length=self.spec.max_text_len,
            return_tensors="pt",
        )
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}

    def token_count(self, text: str) -> int:
        """Tokens the text needs before truncation, start and end markers included."""
        return len(self.tokenizer(clean_text(text), truncation=False)["input_ids"])

    def embed_videos(self, pixels: torch.Tensor) -> torch.Tensor:
        """Differentiable, normalised video embeddings (training)."""
        return F.normalize(self.video_features(pixels).float(), dim=-1)

    def embed_texts(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Differentiable, normalised text embeddings (training)."""
        return F.normalize(self.text_features(input_ids, attention_mask).float(), dim=-1)

    def autocast(self) -> contextlib.AbstractContextManager:
        return device_autocast(self.device)

    @torch.inference_mode()
    def encode_videos(self, pixels: torch.Tensor) -> torch.Tensor:
        """``(B, T, 3, S, S)`` pixels → ``(B, D)`` float32 unit vectors on the CPU."""
        self._check_frames(pixels.shape[1])
        pixels = pixels.to(self.device, non_blocking=True)
        with self.autocast():
            out = self.video_features(pixels)
        return F.normalize(out.float(), dim=-1).cpu()

    def encode_frames(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 ``(B, T, H, W, 3)`` frames → ``(B, D)``: the spec's transform, then ``encode_videos``."""
        return self.encode_videos(to_pixels(frames, self.spec.pixels, device=self.device))

    @torch.inference_mode()
    def encode_texts(self, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
        """Strings → ``(N, D)`` float32 unit vectors on the CPU."""
        outs = []
        for i in range(0, len(texts), batch_size):
            enc = self.tokenize(texts[i : i + batch_size])
            with self.autocast():
                out = self.text_features(enc["input_ids"].to(self.device), enc["attention_mask"].to(self.device))
            outs.append(F.normalize(out.float(), dim=-1).cpu())
        if not outs:
            return torch.zeros(0, self.spec.dim)
        return torch.cat(outs)

    def encode_query(self, text: str) -> torch.Tensor:
        """One query's ``(D,)`` vector, cached: a process asking the same query twice pays once."""
        hit = self._text_cache.get(text)
        if hit is None:
            hit = self.encode_texts([text])[0]
            if len(self._text_cache) >= 1024:
                self._text_cache.pop(next(iter(self._text_cache)))
            self._text_cache[text] = hit
        return hit

    def _check_frames(self, t: int) -> None:
        check_frame_count(self.spec, t)

    def train(self, mode: bool = True) -> VideoTextEncoder:
        if mode:  # weights may change from here on: forget what was derived from them
            self._text_cache.clear()
            self._fingerprint = None
        return super().train(mode)

    # -- identity ----------------------------------------------------------------------------
    @property
    def fingerprint(self) -> str:
        """A digest of everything that decides the embedding: family, spec and every weight.

        Two encoders with equal fingerprints give the same vectors for the same input, so a
        store can refuse to mix vectors from different models. Computed once per instance
        (about 1 s for ViT-B/32 sized weights); training invalidates it.
        """
        if self._fingerprint is None:
            h = hashlib.blake2b(digest_size=16)
            h.update(json.dumps(self.spec.as_dict(), sort_keys=True).encode())
            for key, tensor in sorted(self.state_dict().items()):
                h.update(key.encode())
                t = tensor.detach().to("cpu", torch.float32).contiguous()
                h.update(str(tuple(t.shape)).encode())
                h.update(t.numpy().tobytes())
            self._fingerprint = h.hexdigest()
        return self._fingerprint

    def write_spec(self, directory: Path) -> None:
        payload = {"format": FORMAT_VERSION, "family": self.family, "spec": self.spec.as_dict()}
        atomic_write_text(Path(directory) / SPEC_FILE, json.dumps(payload, indent=2) + "\n")


def read_spec_file(directory: str | os.PathLike[str]) -> dict | None:
    path = Path(directory) / SPEC_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def source_of(ref: str) -> str:
    """What an encoder records as where it came from: a folder as its absolute path (the same
    folder named two ways is one source), a hub id as given."""
    return str(Path(ref).resolve()) if os.path.isdir(ref) else ref
