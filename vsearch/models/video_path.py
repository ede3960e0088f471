"""A fast path for indexing: frames to vectors without importing transformers' model code.

`vsearch index` on a changed folder loads its model while the first files decode, and on two
cores that load competes with the decoders for the CPU. Most of it is imports: torch (1.5 CPU
s here) and transformers' CLIP modelling code (3.0 CPU s more, ``plain_clip``), measured as
the largest part of the command's own CPU on 4 x 30 s of 1080p (6.3 CPU s of the 16.6 the
command and its decoders spent).

Indexing needs only the video side of a model. For mean pooling (frame CLIP + temporal mean:
CLIP4Clip meanP, ViFi-CLIP, the sample model) that is CLIP's image tower: patch embedding, class
token, positions, pre-LN transformer layers, the class token's final LN, the projection.
``VisionTower`` computes it in plain torch from the same weights. CLIP-ViP (the default family)
is that tower over a whole clip with its video proxies, temporal table and proxy-guided
attention (``ClipVipTower``, the very functions ``clip_vip`` runs, from ``proxies``).
``tests/test_video_path.py`` holds the towers equal to ``CLIPModel.get_image_features`` and the
encoders equal to ``MeanPoolEncoder`` and ``ClipVipEncoder``.

It is used under the query path's rule (``query_path``): only when a cache entry, written by a
full load of the same weights file (path, size, mtime) with the same config.json and
vsearch.json beside it, vouches for it; the entry gives the fingerprint the store records. An
existing store's model must have the store's fingerprint. Anything else (other families, a
checkpoint file, a changed folder, no entry) loads the full model as before.
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from ..config import resolve_device
from .encoder import EncoderSpec, check_frame_count, device_autocast
from .plain_clip import activation, layer_names, layers_for, load_renamed, tensors_with_prefix
from .proxies import ClipVipConfig, proxy_layer, proxy_sequence
from .query_path import cached_entry, folder_digest

VISION_PREFIXES = ("vision_model.", "visual_projection.")


class VisionTower(nn.Module):
    """CLIP's image transformer and projection (names as in ``CLIPModel``'s state dict)."""

    def __init__(self, vision_config: dict, projection_dim: int):
        super().__init__()
        d = vision_config["hidden_size"]
        patch = vision_config["patch_size"]
        self.image_size = int(vision_config["image_size"])
        self.heads = vision_config["num_attention_heads"]
        self.act = activation(vision_config.get("hidden_act", "quick_gelu"))
        eps = vision_config.get("layer_norm_eps", 1e-5)
        self.patch = nn.Conv2d(vision_config.get("num_channels", 3), d, patch, patch, bias=False)
        self.cls = nn.Parameter(torch.zeros(d))
        self.position = nn.Embedding((self.image_size // patch) ** 2 + 1, d)
        self.pre = nn.LayerNorm(d, eps=eps)
        self.layers = layers_for(vision_config)
        self.post = nn.LayerNorm(d, eps=eps)
        self.proj = nn.Linear(d, projection_dim, bias=False)

    def weight_names(self) -> dict[str, str]:
        """Our parameter names → ``CLIPModel``'s."""
        e = "vision_model.embeddings."
        names = {"patch.weight": f"{e}patch_embedding.weight", "cls": f"{e}class_embedding",
                 "position.weight": f"{e}position_embedding.weight", "pre.weight": "vision_model.pre_layrnorm.weight",
                 "pre.bias": "vision_model.pre_layrnorm.bias", "post.weight": "vision_model.post_layernorm.weight",
                 "post.bias": "vision_model.post_layernorm.bias", "proj.weight": "visual_projection.weight"}  # fmt: skip
        return names | layer_names(len(self.layers), "vision_model.encoder.layers.")

    def load_clip_weights(self, sd: dict[str, torch.Tensor]) -> None:
        load_renamed(self, sd, self.weight_names())

    def patches(self, pixels: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) normalised pixels → (N, L, D) patch embeddings, positions not yet added."""
        if pixels.shape[-1] != self.image_size or pixels.shape[-2] != self.image_size:
            raise ValueError(f"the image tower takes {self.image_size} px frames, not {tuple(pixels.shape[-2:])}")
        return self.patch(pixels.to(self.patch.weight.dtype)).flatten(2).transpose(1, 2)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) normalised pixels → (N, E) projected image features."""
        x = self.patches(pixels)
        x = torch.cat([self.cls.expand(x.shape[0], 1, -1).to(x.dtype), x], dim=1) + self.position.weight[None]
        x = self.pre(x)
        for layer in self.layers:
            x = layer(x, self.heads, self.act, causal=False)
        return self.proj(self.post(x[:, 0]))


class MeanPoolTower(VisionTower):
    """The mean-pool family's video tower (``MeanPoolEncoder.video_features``): the mean of the
    frames' projections, each L2-normalised first with ``frame_norm``."""

    def __init__(self, vision_config: dict, projection_dim: int, frame_norm: bool):
        super().__init__(vision_config, projection_dim)
        self.frame_norm = frame_norm

    def video_features(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, S, S) → (B, E)."""
        b, t, c, h, w = pixels.shape
        frames = self(pixels.reshape(b * t, c, h, w)).view(b, t, -1)
        if self.frame_norm:
            frames = F.normalize(frames, dim=-1)
        return frames.mean(dim=1)


class _Attention:
    """A plain layer's projections under the names ``proxies.proxy_guided_attention`` reads."""

    def __init__(self, layer, heads: int):
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = layer.q, layer.k, layer.v, layer.out
        self.num_heads, self.head_dim = heads, layer.q.in_features // heads
        self.dropout, self.training = 0.0, False


class ClipVipTower(VisionTower):
    """CLIP-ViP's video tower (``ClipVipEncoder.video_features``): proxies, temporal table,
    proxy-guided attention, over the image tower's weights."""

    def __init__(self, vision_config: dict, projection_dim: int, vip: ClipVipConfig):
        super().__init__(vision_config, projection_dim)
        self.vip = vip
        d = vision_config["hidden_size"]
        self.added_cls = nn.Parameter(torch.zeros(vip.add_cls_num, d))
        self.temporal = nn.Parameter(torch.zeros(1, vip.temporal_size, d))

    def weight_names(self) -> dict[str, str]:
        e = "vision_model.embeddings."
        return super().weight_names() | {"added_cls": f"{e}added_cls", "temporal": f"{e}temporal_embedding"}

    def video_features(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, S, S) → (B, E): ``ClipVipEncoder.vision_tokens`` and ``vision_hidden`` (the
        same ``proxies`` functions), then the projection of proxy 0."""
        b, t, c, h, w = pixels.shape
        temporal = self.temporal if self.vip.use_temporal_embed else None
        x, t, lp = proxy_sequence(self.patches(pixels.reshape(b * t, c, h, w)), self.position.weight, self.cls,
                                  self.added_cls, temporal, b)  # fmt: skip
        x = self.pre(x)
        for layer in self.layers:
            mlp = partial(layer.mlp, act=self.act)
            x = proxy_layer(x, _Attention(layer, self.heads), layer.ln1, layer.ln2, mlp, self.vip.num_proxies, t, lp,
                            self.vip.attention)  # fmt: skip
        return self.proj(self.post(x[:, 0]))


def _tower(entry: dict) -> VisionTower | None:
    """The tower an entry's family indexes with, or None for a family it cannot stand in for."""
    if entry.get("family") == "mean-pool":
        return MeanPoolTower(entry["vision_config"], entry["projection_dim"], entry["spec"].get("options", {}).get("frame_norm", True))
    if entry.get("family") == "clip-vip" and isinstance(entry.get("video_settings"), dict):
        return ClipVipTower(entry["vision_config"], entry["projection_dim"], ClipVipConfig(**entry["video_settings"]))
    return None


class IndexEncoder:
    """What indexing needs of an encoder (identity, spec, ``encode_videos``), computed by a
    plain-torch tower as the family's ``video_features`` computes it."""

    def __init__(self, entry: dict, tower: MeanPoolTower | ClipVipTower, device: str):
        self.name = entry["name"]
        self.source = entry["source"]
        self.family = entry["family"]
        self.fingerprint = entry["fingerprint"]
        self.spec = EncoderSpec.from_dict(entry["spec"])
        self.device = torch.device(device)
        self.tower = tower.to(self.device).eval()

    @torch.inference_mode()
    def encode_videos(self, pixels: torch.Tensor) -> torch.Tensor:
        """``(B, T, 3, S, S)`` pixels → ``(B, D)`` float32 unit vectors on the CPU."""
        check_frame_count(self.spec, pixels.shape[1])
        with device_autocast(self.device):
            out = self.tower.video_features(pixels.to(self.device, non_blocking=True))
        return F.normalize(out.float(), dim=-1).cpu()


def load(source: str, *, fingerprint: str | None = None, device: str | None = None) -> IndexEncoder | None:
    """The index-time encoder of ``source`` when a cache entry vouches for it (and for
    ``fingerprint``, when given: an existing store's model); None otherwise."""
    found = cached_entry(source)
    if found is None:
        return None
    weights, entry = found
    if (
        "vision_config" not in entry
        or entry.get("folder") != folder_digest(weights)
        or (fingerprint is not None and entry.get("fingerprint") != fingerprint)
    ):
        return None
    try:
        tower = _tower(entry)
        if tower is None:
            return None
        tower.load_clip_weights(tensors_with_prefix(weights, VISION_PREFIXES))
    except (KeyError, TypeError, ValueError, RuntimeError, OSError):  # not what the entry describes: the full load says why
        return None
    if tower.image_size != int(entry["spec"]["pixels"]["image_size"]):
        return None
    return IndexEncoder(entry, tower, resolve_device(device))
