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

#: Uploads larger than this are refused before decoding (bytes), and images with more pixels
#: (read from the header, before any pixel is decoded).
MAX_IMAGE_BYTES = 20 * 1024 * 1024
MAX_IMAGE_PIXELS = 50_000_000
#: The longest side may be at most this many times the shortest. Past it an image is a strip,
#: not a picture to search by, and a crop-resize model would scale its short side up to the
#: model's size: a 157-byte 1x40,000 PNG became a 224x8,960,000 float tensor (+2 GB, 17 s).
MAX_ASPECT = 20


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
        if max(w, h) > MAX_ASPECT * min(w, h):
            raise QueryError(
                f"the image is {w}x{h} pixels: sides more than {MAX_ASPECT}:1 apart are not a picture to search by (crop it)"
            )
        img = ImageOps.exif_transpose(img).convert("RGB")
        return np.asarray(img)
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise QueryError(f"not a readable image ({type(exc).__name__})") from None


def picture_frames(spec) -> int:
    """How long a video a picture is embedded as: one frame, or the clip length for families
    that take only that (X-CLIP). Training's image-to-video loss embeds frames the same way."""
    return spec.frames if spec.frame_rule == "fixed" else 1


def image_vector(encoder, image: np.ndarray) -> np.ndarray:
    """The unit query vector of an image, as a one-frame video of the encoder's family."""
    import torch

    from .video.transforms import to_pixels

    image = fit_image(image, encoder.spec.pixels)
    clip = np.broadcast_to(image[None, None], (1, picture_frames(encoder.spec), *image.shape)).copy()
    px = to_pixels(clip, encoder.spec.pixels, device=encoder.device)
    with torch.inference_mode(), encoder.autocast():
        v = encoder.embed_videos(px).float().cpu().numpy()[0]
    return v / max(float(np.linalg.norm(v)), 1e-12)


def fit_image(image: np.ndarray, spec) -> np.ndarray:
    """``image`` at the encoder's square size, cropped before it is scaled, so memory is bounded
    by the output whatever the input's shape (``to_pixels`` would scale the whole image first).

    The crop box is the one ``to_pixels`` would cut after scaling ("crop": the short side to
    the model's size, then the centre), given to PIL in source pixels; "squash" scales it all.
    """
    from PIL import Image

    h, w = image.shape[:2]
    s = spec.image_size
    if (h, w) == (s, s):
        return image
    box = None
    if spec.resize == "crop":
        scale = s / min(h, w)
        sh, sw = max(s, round(h * scale)), max(s, round(w * scale))
        top, left = (sh - s) // 2, (sw - s) // 2
        box = (left / scale, top / scale, (left + s) / scale, (top + s) / scale)
    return np.array(Image.fromarray(image).resize((s, s), Image.Resampling.BICUBIC, box=box))


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
