"""A phone file (pixels stored sideways, a display matrix to turn them) decodes to the pixels of
the same picture stored upright: its YUV planes are turned before they are scaled."""

from __future__ import annotations

import numpy as np
import pytest

from vsearch.eval.robustness import write_h264
from vsearch.synth.scenes import Scene, render_scene
from vsearch.video.decode import VideoReader
from vsearch.video.orientation import orient, unorient


@pytest.mark.parametrize("orientation", ["clock", "cclock", "cclock_flip", "clock_flip", "+hflip", "+vflip", "clock+hflip"])
def test_unorient_undoes_orient(orientation):
    x = np.random.default_rng(0).integers(0, 255, (2, 6, 4, 3)).astype(np.uint8)
    assert np.array_equal(unorient(orient(x, orientation), orientation), x)


def _scaled(path: str, size: tuple[int, int]) -> np.ndarray:
    """Every frame of ``path`` as stored, scaled by FFmpeg (bicubic, as decord scales)."""
    import av

    with av.open(path) as c:
        return np.stack(
            [f.to_ndarray(format="rgb24", width=size[0], height=size[1], interpolation="BICUBIC") for f in c.decode(video=0)]
        ).astype(np.int16)


@pytest.mark.parametrize("image_size,resize", [(32, "squash"), (48, "crop")])
def test_a_phone_file_scales_like_its_upright_twin(tmp_path, image_size, resize):
    frames = render_scene(Scene("triangle", "green", "left"), 6, 128, 96, np.random.default_rng(5))
    upright, phone = str(tmp_path / "upright.mp4"), str(tmp_path / "phone.mp4")
    # Lossless (CRF 0): the same luma samples, one set turned a quarter (chroma differs a little:
    # the encoder's RGB -> 4:2:0 conversion filters the two axes differently).
    write_h264(upright, frames, 15, 0)
    write_h264(phone, np.rot90(frames, 1, axes=(1, 2)), 15, 0, rotation=-90)
    with VideoReader(phone, image_size, resize) as r:
        assert r.header.orientation == "clock"
        got = r.get(list(range(6))).astype(np.int16)
        size = r.size
    crop = lambda x: x[:, :, (x.shape[2] - got.shape[2]) // 2 :][:, :, : got.shape[2]]  # noqa: E731 ("crop": centre)
    want = crop(_scaled(upright, size))
    # What scaling the stored (sideways) frames and turning them afterwards gave:
    sideways = crop(orient(_scaled(phone, (size[1], size[0])), "clock"))
    assert got.shape == want.shape == sideways.shape
    err, before = np.abs(got - want), np.abs(sideways - want)
    # measured: 0.17 mean, 8 at most (chroma edges) at 32 px squashed, 0.23 and 14 at 64 x 48;
    # against 0.91 and 48 before
    assert err.mean() < 0.3 and err.max() <= 16, (err.mean(), err.max())
    assert err.mean() < 0.6 * before.mean() and err.max() < before.max()  # (0.44 and 26 before at 64 x 48)
