"""Synthetic clips as footage arrives: another frame size and aspect, sensor noise, lossy
compression, and whichever resampler the decoding path happens to use.

The training stream renders clips straight at the model's side (32 x 32, square, clean), while
indexing feeds the model 128 x 96 H.264 frames squashed to 32 px, a phone file rotated after
scaling, a picture someone dropped on the page. A model that only ever saw the clean render
moved by cos 0.08-0.12 when pixels differed by one grey level (issue 25: a rotated phone file
against its upright rendering) and found the right colour and shape from a frame for 25 of 36
clips. These degradations put those paths into training: the object is drawn at a random
footage size, then noise, JPEG (4:2:0 chroma, like H.264's yuv420p) and a random crop are
applied at that size, and the frame is resampled to the model's side by one of four filters.

A still clip (every frame the same) stays a still: the same noise and the same compression on
every frame, so time reversal still treats it as its own reversal (``train.tasks.same_backwards``).
"""

from __future__ import annotations

import io

import numpy as np
import torch
import torch.nn.functional as F

#: Width / height of the footage a clip is drawn at (square, 4:3, 16:9, and a phone held upright).
ASPECTS = (1.0, 4 / 3, 16 / 9, 3 / 4)
#: The drawn short side is this many times the model's side, at most.
MAX_UPSCALE = 4
#: Resamplers a decoding path may use: (torch mode, antialias). Bicubic with antialiasing is
#: ``video.transforms.to_pixels``; FFmpeg's swscale and PIL thumbnails land near the others.
RESAMPLERS = (("bicubic", True), ("bilinear", True), ("area", None), ("bilinear", False))


def footage_size(size: int, rng: np.random.Generator) -> tuple[int, int]:
    """A random (width, height) whose short side is 1-4x ``size``, at one of ``ASPECTS``."""
    short = int(rng.integers(size, MAX_UPSCALE * size + 1))
    aspect = ASPECTS[int(rng.integers(len(ASPECTS)))]
    if aspect >= 1:
        return int(round(short * aspect)), short
    return short, int(round(short / aspect))


def degrade(frames: np.ndarray, size: int, rng: np.random.Generator, turned: float = 0.0) -> np.ndarray:
    """``(T, H, W, 3)`` uint8 drawn at footage size → ``(T, size, size, 3)`` uint8 as a decoder
    and the model's resize would deliver it, with random crop, noise and JPEG on the way.

    ``turned``: the share of clips that take a phone's path: stored sideways, so compression
    (its 4:2:0 chroma) and scaling act on the turned picture, which is turned upright at the
    end. The decoder scales a phone file before turning it, and those pixels differ from the
    upright file's by about a grey level: enough to move a model trained on clean renders by
    cos 0.04 (issue 25's rotated-file check)."""
    t = frames.shape[0]
    still = t > 1 and bool((frames == frames[:1]).all())
    turn = bool(turned) and rng.random() < turned
    x = np.rot90(frames, 1, axes=(1, 2)) if turn else frames
    h, w = x.shape[1:3]
    if rng.random() < 0.5:  # crop jitter: up to 8% off each dimension, anywhere
        ch, cw = int(round(h * rng.uniform(0.92, 1.0))), int(round(w * rng.uniform(0.92, 1.0)))
        top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        x = x[:, top : top + ch, left : left + cw]
    if rng.random() < 0.5:  # sensor noise, per channel; one field for a still
        sigma = rng.uniform(1.0, 6.0)
        noise = rng.normal(0.0, sigma, size=(1 if still else t, *x.shape[1:]))
        x = np.clip(x.astype(np.float32) + noise, 0, 255).astype(np.uint8)
    if rng.random() < 0.6:  # lossy compression at a random quality
        quality = int(rng.integers(20, 90))
        x = np.stack([_jpeg(f, quality) for f in (x[:1] if still else x)])
    if still and len(x) != t:
        x = np.repeat(x[:1], t, axis=0)
    mode, antialias = RESAMPLERS[int(rng.integers(len(RESAMPLERS)))]
    y = torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).float()
    kw = {} if antialias is None else {"antialias": antialias, "align_corners": False}
    y = F.interpolate(y, size=(size, size), mode=mode, **kw).clamp_(0, 255).round_()
    out = y.to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return np.ascontiguousarray(np.rot90(out, -1, axes=(1, 2)) if turn else out)


def _jpeg(frame: np.ndarray, quality: int) -> np.ndarray:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("RGB"))
