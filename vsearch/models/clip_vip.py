"""CLIP-ViP (Xue et al., ICLR 2023): video proxy tokens and proxy-guided attention on CLIP.

Built on transformers' ``CLIPModel``: the text tower, both projections and every vision layer's
weights are CLIP's own modules; only the video parts are new (Xue et al., ICLR 2023, and microsoft/XPretrain):

- **Video proxies**: M = 1 + ``add_cls_num`` tokens. Proxy 0 is CLIP's ``class_embedding``;
  proxies 1..M-1 are the new ``added_cls`` (N(0, 1), as in the reference). Every proxy gets
  position embedding 0 and no temporal embedding.
- **Temporal embedding** ``(1, temporal_size, D)``, zero-initialised, added to every patch of
  frame t; linearly resampled (align_corners=False) when T differs (T=1 gets slots 5 and 6).
- Sequence ``[proxies, frame 0 patches, ..., frame T-1 patches]``, then ``pre_layrnorm``.
- **Proxy-guided attention** in every vision layer: query i may attend key j iff i < M, or j < M,
  or i and j are in the same frame. Computed in two passes (patches of each frame against
  [proxies + that frame]; proxies against everything): O(T·L² + M·T·L), not (T·L)². The
  one-call masked form (``attention="masked"``) is kept as the reference it must equal.
- **Video embedding** = ``post_layernorm(hidden[:, 0])`` → ``visual_projection`` (proxy 0
  only; the other proxies just carry information between frames). Text: CLIP's, unchanged.

Parameter names are the official checkpoint's (after its ``clipmodel.`` prefix), so loading
``pretrain_clipvip_base_32.pt`` is a prefix strip and a strict, shape-checked load.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch
from torch import nn
from transformers import CLIPConfig, CLIPModel

from ..errors import CheckpointError
from .checkpoints import WEIGHTS_NAME, base_clip_config, from_pretrained_hf, load_state_dict, save_model_dir
from .constants import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
from .encoder import EncoderSpec, source_of
from .mean_pool import ClipBackedEncoder, ClipSettingsConfig
from .proxies import ClipVipConfig, proxy_layer, proxy_sequence
from .tokenizer import load_tokenizer

OFFICIAL_PREFIX = "clipmodel."
NEW_KEYS = ("vision_model.embeddings.added_cls", "vision_model.embeddings.temporal_embedding")


class ClipVipModelConfig(ClipSettingsConfig):
    """A ``CLIPConfig`` with CLIP-ViP's video additions (``model_type`` ``clip_vip``), in
    ``vision_additional_config``, the official CLIP-ViP config's key."""

    model_type = "clip_vip"
    settings_key = "vision_additional_config"
    settings_type = ClipVipConfig


class ClipVipEncoder(ClipBackedEncoder):
    family = "clip-vip"
    added_to_clip = NEW_KEYS

    def __init__(self, clip: CLIPModel, tokenizer, spec: EncoderSpec, vip: ClipVipConfig, init_seed: int | None = None):
        super().__init__(clip, tokenizer, spec)
        self.vip = vip
        emb = clip.vision_model.embeddings
        dim = emb.embed_dim
        g = torch.Generator().manual_seed(init_seed) if init_seed is not None else None
        # Created here as real tensors, never left to a meta-device init (transformers builds
        # models on the meta device and only initialises the weights it knows about).
        emb.register_parameter("added_cls", nn.Parameter(torch.randn(vip.add_cls_num, dim, generator=g)))
        emb.register_parameter("temporal_embedding", nn.Parameter(torch.zeros(1, vip.temporal_size, dim)))
        self.to(next(clip.parameters()).device)

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def default_spec(cls, config: CLIPConfig, vip: ClipVipConfig, frames: int = 12) -> EncoderSpec:
        return EncoderSpec.for_clip(
            cls.family,
            config,
            frames=frames,
            resize="squash",
            mean=OPENAI_CLIP_MEAN,
            std=OPENAI_CLIP_STD,
            options=vip.weights_options(),
        )

    @classmethod
    def from_config(
        cls, config: CLIPConfig, vip: ClipVipConfig | None = None, tokenizer=None, frames: int = 12
    ) -> ClipVipEncoder:
        """Random weights (seed torch first for reproducibility)."""
        vip = vip or ClipVipConfig()
        spec = cls.default_spec(config, vip, frames)
        clip = CLIPModel(config).eval()
        return cls(
            clip, tokenizer or load_tokenizer(None, spec.max_text_len), spec, vip, init_seed=int(torch.randint(0, 2**31, (1,)))
        )

    @classmethod
    def from_clip(
        cls, ref: str | os.PathLike[str], vip: ClipVipConfig | None = None, frames: int = 12, init_seed: int = 0
    ) -> ClipVipEncoder:
        """CLIP-ViP initialised from any CLIP checkpoint (hub id or folder): CLIP's weights load,
        ``added_cls`` and ``temporal_embedding`` are new (``new_parameters`` says so)."""
        ref = os.fspath(ref)
        vip = vip or ClipVipConfig()
        clip = from_pretrained_hf(CLIPModel, ref).eval()
        spec = cls.default_spec(clip.config, vip, frames)
        tok = load_tokenizer(ref if os.path.isdir(ref) else None, spec.max_text_len)
        enc = cls(clip, tok, spec, vip, init_seed=init_seed)
        enc.source = source_of(ref)
        enc.new_parameters = list(NEW_KEYS)
        return enc

    @classmethod
    def from_pretrained(cls, ref: str | os.PathLike[str]) -> ClipVipEncoder:
        """A CLIP-ViP folder written by vsearch (strictly checked), or a plain CLIP folder / hub id."""
        ref = os.fspath(ref)
        saved = cls.read_saved_folder(ref, ClipVipModelConfig)
        if saved is None:
            return cls.from_clip(ref)
        spec, clip, vip = saved
        enc = cls(clip.to_empty(device="cpu"), load_tokenizer(ref, spec.max_text_len), spec, vip)
        enc.load_clip_state(load_state_dict(Path(ref) / WEIGHTS_NAME), source=ref)
        enc.source = source_of(ref)
        return enc.eval()

    @classmethod
    def from_official_checkpoint(
        cls,
        path: str | os.PathLike[str],
        base: str,
        frames: int = 12,
        *,
        state: dict[str, torch.Tensor] | None = None,
        fill_from_base: bool = False,
    ) -> ClipVipEncoder:
        """An official ``pretrain_clipvip_base_{32,16}.pt``: flat state dict, ``clipmodel.`` prefix, maybe fp16.

        ``base`` (a CLIP hub id or folder with the same architecture) supplies the config and
        tokenizer; an official checkpoint carries every weight, so the base needs no weights.
        Every key and shape must match: the reference loader skips mismatches silently, which is
        how a B/16 file loaded into a B/32 base trains from plain CLIP without a word (XPretrain
        issue #43). A checkpoint that lacks weights is refused, naming them; with
        ``fill_from_base`` they come from the base's own weights instead (it must have them).
        ``state``: the file's ``load_state_dict`` when the caller has read it already.
        """
        raw = load_state_dict(path) if state is None else state
        if not any(k.startswith(OFFICIAL_PREFIX) for k in raw):
            sample = ", ".join(sorted(raw)[:3])
            raise CheckpointError(
                f"{path}: not an official CLIP-ViP checkpoint: no key starts with '{OFFICIAL_PREFIX}' (found e.g. {sample})"
            )
        sd = {k[len(OFFICIAL_PREFIX) :]: v for k, v in raw.items() if k.startswith(OFFICIAL_PREFIX)}
        sd = {k: v.float() if v.is_floating_point() else v for k, v in sd.items() if not k.endswith("position_ids")}
        for key in NEW_KEYS:
            if key not in sd:
                raise CheckpointError(f"{path}: not a CLIP-ViP checkpoint: missing {key}")
        vip = ClipVipConfig(add_cls_num=int(sd[NEW_KEYS[0]].shape[0]), temporal_size=int(sd[NEW_KEYS[1]].shape[1]))
        if fill_from_base:
            enc = cls.from_clip(base, vip, frames)  # the base's weights first; the file's on top
            have = enc.clip.state_dict()
            sd = {**{k: v for k, v in have.items() if not k.endswith("position_ids")}, **sd}
        else:
            config = base_clip_config(base)
            spec = cls.default_spec(config, vip, frames)
            with torch.device("meta"):
                clip = CLIPModel(config)
            tok = load_tokenizer(base if os.path.isdir(base) else None, spec.max_text_len)
            enc = cls(clip.to_empty(device="cpu"), tok, spec, vip)
        enc.load_clip_state(sd, source=os.fspath(path))
        enc.source = None  # set by the caller once converted to a folder
        if hasattr(enc, "new_parameters"):
            del enc.new_parameters
        return enc

    # -- forward -----------------------------------------------------------------------------
    def vision_tokens(self, pixels: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        """Embedded input sequence (B, M + T·L, D) before ``pre_layrnorm``, and (T, L)."""
        emb = self.clip.vision_model.embeddings
        b, t, c, h, w = pixels.shape  # (B, T, 3, S, S)
        x = emb.patch_embedding(pixels.reshape(b * t, c, h, w).to(emb.patch_embedding.weight.dtype))  # (B*T, D, g, g)
        temporal = emb.temporal_embedding if self.vip.use_temporal_embed else None
        return proxy_sequence(x.flatten(2).transpose(1, 2), emb.position_embedding.weight, emb.class_embedding,
                              emb.added_cls, temporal, b)  # fmt: skip

    def vision_hidden(self, pixels: torch.Tensor, layers: int | None = None) -> torch.Tensor:
        """Hidden states after ``layers`` vision layers (all by default): (B, M + T·L, D)."""
        vm = self.clip.vision_model
        x, t, lp = self.vision_tokens(pixels)
        x = vm.pre_layrnorm(x)
        m = self.vip.num_proxies
        for layer in vm.encoder.layers[:layers]:
            x = proxy_layer(x, layer.self_attn, layer.layer_norm1, layer.layer_norm2, layer.mlp, m, t, lp, self.vip.attention)
        return x

    def video_features(self, pixels: torch.Tensor) -> torch.Tensor:
        vm = self.clip.vision_model
        cls = vm.post_layernorm(self.vision_hidden(pixels)[:, 0])  # proxy 0 = CLIP's CLS
        return self.clip.visual_projection(cls)

    def save_pretrained(self, directory: str | os.PathLike[str], dtype: torch.dtype | None = None) -> Path:
        config = ClipVipModelConfig.from_clip_config(self.clip.config, self.vip.weights_options() | {"type": "ViP"})
        return save_model_dir(directory, self, config, self.clip.state_dict(), dtype)


def flops_per_layer(frames: int, patches: int, proxies: int, dim: int) -> dict[str, float]:
    """Attention score MACs per layer and head-dim unit: two-pass vs the full (T·L)² matrix."""
    n = proxies + frames * patches
    two_pass = frames * patches * (proxies + patches) + proxies * n
    return {"two_pass": float(two_pass * dim), "full": float(n * n * dim), "ratio": n * n / two_pass if two_pass else math.nan}
