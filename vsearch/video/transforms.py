"""uint8 frames to model pixels, batched in torch.

One code path for indexing, training and evaluation, so an encoder sees the same pixels
wherever its input comes from. The decoder usually delivers frames at the target size already
(``decode.decode_size``); then this is a crop, a cast and a normalisation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class PixelSpec:
    """How an encoder wants its frames: square side, resize rule, normalisation constants."""

    image_size: int
    resize: str  # "squash": scale to a square ignoring aspect; "crop": short side, then centre crop
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def as_dict(self) -> dict:
        return {"image_size": self.image_size, "resize": self.resize, "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, d: dict) -> PixelSpec:
        return cls(int(d["image_size"]), str(d["resize"]), tuple(d["mean"]), tuple(d["std"]))


def to_pixels(frames: np.ndarray | torch.Tensor, spec: PixelSpec, device: str | torch.device | None = None) -> torch.Tensor:
    """``(..., H, W, 3)`` uint8 → ``(..., 3, S, S)`` float32, resized and normalised per ``spec``.

    Resizing happens on the device (bicubic with antialiasing, clamped like PIL), after the
    uint8 transfer, which moves 4x fewer bytes than sending floats.
    """
    x = torch.as_tensor(frames)
    if device is not None:
        x = x.to(device, non_blocking=True)
    if x.dtype != torch.uint8:
        raise TypeError(f"expected uint8 frames, got {x.dtype}")
    lead = x.shape[:-3]
    h, w = x.shape[-3], x.shape[-2]
    x = x.reshape(-1, h, w, 3).permute(0, 3, 1, 2)
    s = spec.image_size
    if spec.resize == "squash":
        size = (s, s)
    elif spec.resize == "crop":
        scale = s / min(h, w)
        size = (max(s, round(h * scale)), max(s, round(w * scale)))
    else:
        raise ValueError(f"unknown resize mode {spec.resize!r}")
    if size != (h, w):
        x = F.interpolate(x.float(), size=size, mode="bicubic", antialias=True, align_corners=False).clamp_(0, 255)
    top, left = (size[0] - s) // 2, (size[1] - s) // 2
    # Frames usually arrive at the target size (the decoder resizes): then the channel transpose
    # moves uint8, and normalising is one fused multiply-add into float32: 65 ms instead of 145 ms
    # for a batch of 8 x 12 frames at 224 px on 2 cores (converting first, then two passes).
    x = x[:, :, top : top + s, left : left + s].contiguous()
    mean = torch.tensor(spec.mean, device=x.device, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(spec.std, device=x.device, dtype=torch.float32).view(1, 3, 1, 1)
    x = torch.addcmul(-mean / std, x, 1.0 / (std * 255.0))
    return x.reshape(*lead, 3, s, s)
