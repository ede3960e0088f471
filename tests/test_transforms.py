"""uint8 frames to normalised pixels: shapes, resize rules, constants."""

import numpy as np
import pytest
import torch

from vsearch.models.constants import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
from vsearch.video.transforms import PixelSpec, to_pixels

SPEC = PixelSpec(32, "squash", OPENAI_CLIP_MEAN, OPENAI_CLIP_STD)


def test_shapes_and_normalisation():
    frames = np.full((2, 4, 32, 32, 3), 128, np.uint8)
    px = to_pixels(frames, SPEC)
    assert px.shape == (2, 4, 3, 32, 32) and px.dtype == torch.float32
    expected = (128 / 255 - np.array(OPENAI_CLIP_MEAN)) / np.array(OPENAI_CLIP_STD)
    assert torch.allclose(px[0, 0, :, 5, 5], torch.tensor(expected, dtype=torch.float32), atol=1e-5)


def test_squash_ignores_aspect_and_crop_keeps_it():
    frames = np.zeros((1, 40, 80, 3), np.uint8)
    frames[:, :, :20] = 255  # left quarter white
    squash = to_pixels(frames, SPEC)
    crop = to_pixels(frames, PixelSpec(32, "crop", (0, 0, 0), (1, 1, 1)))
    assert squash.shape == crop.shape == (1, 3, 32, 32)
    assert squash[0, 0, 16, 2] > 0.9  # the white quarter survives a squash
    assert crop[0, 0, 16, 2] < 0.1  # and is cut away by the centre crop (it lies outside 20..60)


def test_rejects_non_uint8():
    with pytest.raises(TypeError):
        to_pixels(np.zeros((1, 8, 8, 3), np.float32), SPEC)


def test_fused_normalisation_matches_the_formula_per_channel_and_crops_without_resizing():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (2, 3, 32, 48, 3), dtype=np.uint8)  # short side already 32: crop only
    px = to_pixels(frames, PixelSpec(32, "crop", OPENAI_CLIP_MEAN, OPENAI_CLIP_STD))
    ref = (frames[..., 8:40, :].astype(np.float64) / 255 - OPENAI_CLIP_MEAN) / OPENAI_CLIP_STD  # centre 32 of 48 columns
    assert px.shape == (2, 3, 3, 32, 32) and px.is_contiguous()
    np.testing.assert_allclose(px.numpy(), ref.transpose(0, 1, 4, 2, 3), atol=1e-5)
