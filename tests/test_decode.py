"""Decoding real mp4 files: the right frames, at the right size, and clear errors for bad files."""

import numpy as np
import pytest

from vsearch.errors import DecodeError
from vsearch.video.decode import VideoReader, center_crop, decode_size

from .videos import frame_index, write_indexed, write_video


@pytest.mark.parametrize("backend", ["decord", "pyav"])
def test_returns_the_requested_frames(tmp_path, backend):
    path = write_indexed(tmp_path / "idx.mp4", n=40, fps=10)
    with VideoReader(str(path), backend=backend) as r:
        assert r.info.num_frames == 40
        assert r.info.fps == pytest.approx(10)
        assert r.info.duration == pytest.approx(4.0, abs=0.11)
        assert (r.info.width, r.info.height) == (64, 48)
        assert r.info.codec == "h264"
        assert r.info.backend == backend
        wanted = [0, 5, 13, 27, 39]
        frames = r.get(wanted)
        assert frames.shape == (5, 48, 64, 3) and frames.dtype == np.uint8
        assert [frame_index(f) for f in frames] == wanted


def test_batched_get_repeats_and_clamps(tmp_path):
    path = write_indexed(tmp_path / "idx.mp4", n=10)
    with VideoReader(str(path)) as r:
        assert [frame_index(f) for f in r.get([3, 3, 9, 50])] == [3, 3, 9, 9]


@pytest.mark.parametrize(
    "size,mode,expected",
    [((64, 48), "squash", (32, 32)), ((64, 48), "crop", (43, 32)), ((48, 96), "crop", (32, 64)), ((20, 20), "crop", (32, 32))],
)
def test_decoder_scales_to_the_encoder_size(tmp_path, size, mode, expected):
    assert decode_size(*size, 32, mode) == expected
    path = write_indexed(tmp_path / "v.mp4", n=8, width=size[0], height=size[1])
    with VideoReader(str(path), image_size=32, resize=mode) as r:
        frames = r.get([0, 7])
    assert frames.shape == (2, expected[1], expected[0], 3)
    assert [frame_index(f) for f in frames] == [0, 7]
    assert center_crop(frames, 32).shape == (2, 32, 32, 3)


def test_odd_and_portrait_sizes(tmp_path):
    for w, h in [(34, 18), (48, 96), (16, 16)]:
        path = write_indexed(tmp_path / f"v{w}x{h}.mp4", n=6, width=w, height=h)
        with VideoReader(str(path)) as r:
            assert (r.info.width, r.info.height) == (w, h)
            assert r.get([0, 5]).shape == (2, h, w, 3)


def test_one_frame_video(tmp_path):
    path = write_indexed(tmp_path / "one.mp4", n=1)
    with VideoReader(str(path)) as r:
        assert r.info.num_frames == 1
        assert r.get([0, 0, 0]).shape[0] == 3


@pytest.mark.parametrize(
    "content,reasons",
    [
        (b"", ("empty file",)),
        # Random bytes sometimes probe as some container (then: no video stream).
        (np.random.default_rng(0).bytes(5000), ("not a readable video", "no video stream")),
        (b"this is a text file, not a video\n" * 20, ("not a readable video",)),
    ],
)
def test_bad_files_raise_decode_error_with_a_reason(tmp_path, content, reasons):
    path = tmp_path / "bad.mp4"
    path.write_bytes(content)
    with pytest.raises(DecodeError) as err:
        VideoReader(str(path))
    assert any(r in err.value.reason for r in reasons), err.value.reason
    assert "\n" not in err.value.reason


def test_missing_file(tmp_path):
    with pytest.raises(DecodeError, match="disappeared"):
        VideoReader(str(tmp_path / "gone.mp4"))


def test_truncated_file_still_fails_cleanly(tmp_path):
    """An mp4 cut in half (its index at the end is gone) is refused with a one-line reason."""
    path = write_indexed(tmp_path / "t.mp4", n=40)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DecodeError) as err:
        with VideoReader(str(path)) as r:
            r.get(list(range(r.info.num_frames)))
    assert "truncated" in err.value.reason and "\n" not in str(err.value)


def test_other_codecs(tmp_path):
    frames = np.zeros((6, 32, 48, 3), np.uint8)
    for codec, ext in [("mpeg4", "avi"), ("mjpeg", "mkv"), ("libvpx-vp9", "webm")]:
        path = write_video(tmp_path / f"c.{ext}", frames, codec=codec)
        with VideoReader(str(path)) as r:
            assert r.get([0, 5]).shape == (2, 32, 48, 3)


def test_hevc_frames_are_the_frames_asked_for(tmp_path):
    """decord2 seeks HEVC to the wrong frames (short GOPs, B-frames): HEVC is decoded by PyAV."""
    from tests.videos import frame_index, write_hevc_indexed

    path = write_hevc_indexed(tmp_path / "hevc.mp4", "keyint=4:min-keyint=4:scenecut=0:open-gop=0:log-level=error")
    idx = [0, 5, 9, 14, 18, 23, 27, 31, 36, 39]
    for _ in range(3):  # decord's wrong frames changed from run to run
        with VideoReader(str(path)) as r:
            assert [frame_index(f) for f in r.get(idx)] == idx
            assert r.info.backend == "pyav"
