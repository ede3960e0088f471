"""CLIP-ViP's video additions that need no transformers code: its settings, proxy-guided
attention and the temporal table's resampling.

``clip_vip.ClipVipEncoder`` runs them over transformers' CLIP modules, and the index-time video
path (``video_path``) over plain-torch layers, so both compute one function (see ``clip_vip``
for the method).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class ClipVipConfig:
    """The video additions on top of a ``CLIPConfig`` (the reference's ``clip_vision_additional_config``)."""

    add_cls_num: int = 3
    temporal_size: int = 12
    use_temporal_embed: bool = True
    #: "two-pass" (fast, default) or "masked" (one SDPA call with an explicit mask; the reference form).
    attention: str = "two-pass"

    @property
    def num_proxies(self) -> int:
        return 1 + self.add_cls_num

    def weights_options(self) -> dict:
        """What changes the embedding (the spec records it); the attention form does not."""
        return {k: v for k, v in asdict(self).items() if k != "attention"}


def proxy_mask(num_proxies: int, frames: int, patches: int, device=None) -> torch.Tensor:
    """(N, N) bool: query i may attend key j iff i < M or j < M or frame(i) == frame(j)."""
    n = num_proxies + frames * patches
    frame = torch.full((n,), -1, dtype=torch.long, device=device)
    frame[num_proxies:] = torch.arange(frames, device=device).repeat_interleave(patches)
    is_proxy = frame < 0
    return is_proxy[:, None] | is_proxy[None, :] | (frame[:, None] == frame[None, :])


def proxy_guided_attention(
    attn: nn.Module, hidden: torch.Tensor, num_proxies: int, frames: int, patches: int, form: str = "two-pass"
) -> torch.Tensor:
    """Self-attention of one CLIP vision layer (its q/k/v/out projections) under the proxy rule.

    ``hidden`` is (B, M + T·L, D), already layer-normed. Returns (B, M + T·L, D).
    """
    b, n, d = hidden.shape
    heads, hd = attn.num_heads, attn.head_dim
    m, t, lp = num_proxies, frames, patches  # lp: patches per frame

    def split(x: torch.Tensor) -> torch.Tensor:
        return x.view(b, n, heads, hd).transpose(1, 2)  # (B, H, N, hd)

    q, k, v = split(attn.q_proj(hidden)), split(attn.k_proj(hidden)), split(attn.v_proj(hidden))
    p = attn.dropout if attn.training else 0.0
    if form == "masked":
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=proxy_mask(m, t, lp, hidden.device), dropout_p=p)
    elif form == "two-pass":
        # Proxies see everything.
        out_proxy = F.scaled_dot_product_attention(q[:, :, :m], k, v, dropout_p=p)  # (B, H, M, hd)

        # Patches of frame t see the proxies and frame t. Frames are folded into the head axis:
        # SDPA's fused kernels take 4-D input (a 5-D call falls back to the slow math path, 2-4x).
        def per_frame(x: torch.Tensor) -> torch.Tensor:  # (B, H, N, hd) -> (B, H*T, M+L, hd)
            proxies = x[:, :, :m].unsqueeze(2).expand(b, heads, t, m, hd)
            return torch.cat([proxies, x[:, :, m:].reshape(b, heads, t, lp, hd)], 3).reshape(b, heads * t, m + lp, hd)

        qf = q[:, :, m:].reshape(b, heads * t, lp, hd)
        out_frames = F.scaled_dot_product_attention(qf, per_frame(k), per_frame(v), dropout_p=p)  # (B, H*T, L, hd)
        out = torch.cat([out_proxy, out_frames.reshape(b, heads, t * lp, hd)], 2)
    else:
        raise ValueError(f"unknown attention form {form!r}")
    return attn.out_proj(out.transpose(1, 2).reshape(b, n, d))


def resample_temporal(table: torch.Tensor, frames: int) -> torch.Tensor:
    """``(1, S, D)`` → ``(1, T, D)`` by linear interpolation (align_corners=False), as the reference."""
    if table.shape[1] == frames:
        return table
    return F.interpolate(table.transpose(1, 2), size=frames, mode="linear", align_corners=False).transpose(1, 2)


def proxy_sequence(
    patches: torch.Tensor, position: torch.Tensor, cls: torch.Tensor, added_cls: torch.Tensor,
    temporal: torch.Tensor | None, clips: int,
) -> tuple[torch.Tensor, int, int]:  # fmt: skip
    """The input sequence (B, M + T·L, D) before ``pre_layrnorm``, and (T, L).

    ``patches``: (B·T, L, D) patch embeddings of ``clips`` clips; ``position``: the (1 + L, D)
    position table (slot 0 for every proxy); ``cls``, ``added_cls``: the proxies; ``temporal``:
    the (1, S, D) temporal table, resampled to T, or None when the model uses none."""
    bt, lp, d = patches.shape
    t = bt // clips
    x = (patches + position[1:]).view(clips, t, lp, d)
    if temporal is not None:
        x = x + resample_temporal(temporal, t)[0][None, :, None, :]  # (1, T, 1, D)
    proxies = torch.cat([cls[None], added_cls], 0) + position[0]  # (M, D)
    return torch.cat([proxies.expand(clips, -1, -1), x.reshape(clips, t * lp, d)], 1), t, lp


def proxy_layer(
    x: torch.Tensor, attn, norm1: nn.Module, norm2: nn.Module, mlp, num_proxies: int, frames: int, patches: int,
    form: str = "two-pass",
) -> torch.Tensor:  # fmt: skip
    """One vision layer under the proxy rule: attention (``proxy_guided_attention``), then the
    MLP, each with its residual."""
    x = x + proxy_guided_attention(attn, norm1(x), num_proxies, frames, patches, form)
    return x + mlp(norm2(x))

