"""Queries that are not words: an image, or a moment already in the store.

An image is embedded by the store's own encoder **as a one-frame video**, the way each paper
treats images: CLIP-ViP gives a single frame the interpolated middle entry of its temporal
table; mean pooling (CLIP, ViFi-CLIP) averages over one frame, i.e. plain CLIP image features;
STAN runs its branch over one frame; X-CLIP needs exactly its frame count, so the image is
repeated that many times (a still video). A moment in the store needs no encoder at all: its
stored vector is the query.
"""

from __future__ import annotations

import io
import os

import numpy as np

from .errors import QueryError

#: Uploads larger than this are refused before decoding (bytes), and images with more pixels.
MAX_IMAGE_BYTES = 20 * 1024 * 1024
MAX_IMAGE_PIXELS = 50_000_000


def load_image(data: bytes | str | os.PathLike[str]) -> np.ndarray:
    """``(h, w, 3)`` uint8 RGB from image bytes or a file, with size limits and EXIF orientation."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    if isinstance(data, (str, os.PathLike)):
        try:
            with open(data, "rb") as f:
                data = f.read(MAX_IMAGE_BYTES + 1)
        except OSError as exc:
            raise QueryError(f"{os.fspath(data)}: cannot read the image ({exc.strerror or exc})") from None
    if len(data) > MAX_IMAGE_BYTES:
        raise QueryError(f"the image is larger than {MAX_IMAGE_BYTES // (1024 * 1024)} MB")
    if not data:
        raise QueryError("the image is empty")
    try:
        img = Image.open(io.BytesIO(data))
        w, h = img.size
        if w * h > MAX_IMAGE_PIXELS:
            raise QueryError(f"the image has {w}x{h} pixels, more than the {MAX_IMAGE_PIXELS // 1_000_000} MP allowed")
        img = ImageOps.exif_transpose(img).convert("RGB")
        return np.asarray(img)
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise QueryError(f"not a readable image ({type(exc).__name__})") from None


def image_vector(encoder, image: np.ndarray) -> np.ndarray:
    """The unit query vector of an image, as a one-frame video of the encoder's family."""
    import torch

    from .video.transforms import to_pixels

    frames = 1 if encoder.spec.frame_rule != "fixed" else encoder.spec.frames
    clip = np.broadcast_to(image[None, None], (1, frames, *image.shape)).copy()
    px = to_pixels(clip, encoder.spec.pixels, device=encoder.device)
    with torch.inference_mode(), encoder.autocast():
        v = encoder.embed_videos(px).float().cpu().numpy()[0]
    return v / max(float(np.linalg.norm(v)), 1e-12)


def parse_moment(text: str) -> tuple[str, float]:
    """``VIDEO.mp4@12.5`` → (path, seconds); also ``@1:02.5``."""
    path, sep, when = text.rpartition("@")
    if not sep or not path:
        raise QueryError(f"{text}: write a moment as VIDEO@SECONDS, e.g. holiday.mp4@12.5")
    try:
        parts = [float(x) for x in when.split(":")]
    except ValueError:
        raise QueryError(f"{text}: {when!r} is not a time (seconds, or M:SS)") from None
    seconds = 0.0
    for p in parts:
        seconds = seconds * 60 + p
    if seconds < 0:
        raise QueryError(f"{text}: the time must not be negative")
    return path, seconds
