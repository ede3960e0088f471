"""Frames as a player shows them: rotation and flips, pixel aspect, start time, cover art.

Every case is a real file: PyAV writes the display matrix itself; Debian's ffmpeg (installed
by .ci/run) writes what PyAV cannot (MPEG-TS, an anamorphic stream, cover art).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from vsearch.synth.scenes import Scene, render_scene
from vsearch.video.decode import VideoReader

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"
needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="Debian's ffmpeg is not installed (.ci/run installs it)")


#: Frames between keyframes of the test clips (8 fps): short, like a camera's 2 s at 30 fps in a 3 s clip.
GOP = 4


def write(path, frames, fps=8, rotation=None, hflip=False, vflip=False):
    import av

    n, h, w, _ = frames.shape
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        # A keyframe exactly every GOP frames (no scene cuts), so fast sampling has keyframes to use
        # and twins share them.
        s.options = {"crf": "12", "preset": "veryfast", "x264-params": f"keyint={GOP}:min-keyint={GOP}:scenecut=0"}
        if rotation is not None:
            s.set_display_rotation(rotation, hflip=hflip, vflip=vflip)
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def quadrants() -> np.ndarray:
    """A 48x32 frame whose four quadrants have four colours: any rotation or flip is visible."""
    f = np.zeros((4, 32, 48, 3), np.uint8)
    f[:, :16, :24] = (255, 0, 0)
    f[:, :16, 24:] = (0, 255, 0)
    f[:, 16:, :24] = (0, 0, 255)
    f[:, 16:, 24:] = (255, 255, 0)
    return f


def expected(stored: np.ndarray, degrees: int, hflip: bool, vflip: bool) -> np.ndarray:
    """PyAV's documented meaning: rotate counter-clockwise by ``degrees``, then mirror."""
    out = np.rot90(stored, degrees // 90, axes=(1, 2))
    if hflip:
        out = out[:, :, ::-1]
    if vflip:
        out = out[:, ::-1]
    return out


def corner_colours(frames: np.ndarray) -> list[tuple[int, ...]]:
    f = frames[0].astype(int)
    h, w = f.shape[:2]
    pts = [(h // 6, w // 6), (h // 6, w - 1 - w // 6), (h - 1 - h // 6, w // 6), (h - 1 - h // 6, w - 1 - w // 6)]
    return [tuple(int(round(v / 255)) for v in f[y, x]) for y, x in pts]


@pytest.mark.parametrize(
    "degrees,hflip,vflip",
    [(0, False, False), (90, False, False), (180, False, False), (270, False, False),
     (0, True, False), (0, False, True), (90, True, False), (90, False, True)],
)  # fmt: skip
@pytest.mark.parametrize("backend", ["auto", "pyav"])
def test_every_orientation_decodes_upright(tmp_path, degrees, hflip, vflip, backend):
    stored = quadrants()
    path = write(tmp_path / "v.mp4", stored, rotation=degrees, hflip=hflip, vflip=vflip)
    want = expected(stored, degrees, hflip, vflip)
    with VideoReader(str(path), backend=backend) as r:
        got = r.get([0, 1])
        assert (r.info.width, r.info.height) == (want.shape[2], want.shape[1])
        # decord2 rotates on its own (not every flip): oriented files are decoded by PyAV.
        if r.header.orientation:
            assert r.info.backend == "pyav"
    assert got.shape[1:] == want.shape[1:]
    assert corner_colours(got) == corner_colours(want)
    with VideoReader(str(path), image_size=32, resize="crop", backend=backend) as r:
        small = r.get([0])
    # Short side scaled to 32, aspect kept, as shown (a portrait result stays portrait).
    assert small.shape[1:3] == ((48, 32) if want.shape[1] > want.shape[2] else (32, 48))


def sample_clip() -> np.ndarray:
    rng = np.random.default_rng(3)
    return render_scene(Scene("triangle", "yellow", "right"), 24, 96, 64, rng)


def embed(model, path, sampling: str = "exact", moves: bool | None = None) -> np.ndarray:
    """The file's one segment embedded as ``vsearch index`` does, with ``sampling``; the frames
    moved by fast sampling are checked to have moved (else "both modes" would test one).
    ``moves=False``: a file fast sampling must leave exact (no usable keyframe table)."""
    from vsearch.embedding import SegmentBatcher, StageTimes, encode_stream
    from vsearch.video.workers import DecodeJob, DecodePool

    spec = model.spec
    job = DecodeJob(0, str(path), spec.frames, spec.pixels.image_size, spec.pixels.resize, 10.0, 2.0, sampling=sampling)
    times = StageTimes()
    for kind, _job, video in encode_stream(DecodePool(0).messages([job]), SegmentBatcher(model, 4, times), times):
        if kind == "video":
            uniform = list(np.linspace(0, video.info["num_frames"] - 1, spec.frames).astype(int))
            expect = sampling == "fast" if moves is None else moves
            assert (video.frame_idx[0] != uniform) == expect, video.frame_idx[0]
            return video.vectors[0]
    raise AssertionError(f"{path} was not embedded")


SAMPLINGS = pytest.mark.parametrize("sampling", ["exact", "fast"])
#: Encoder options that place a keyframe exactly every GOP frames, like the H.264 twin's.
FIXED_GOP = {
    "libx264": {"x264-params": f"keyint={GOP}:min-keyint={GOP}:scenecut=0"},
    "libx265": {"x265-params": f"keyint={GOP}:min-keyint={GOP}:scenecut=0:open-gop=0:log-level=error"},
}


@pytest.fixture(scope="module")
def model():
    from vsearch.models import load_encoder

    return load_encoder(SAMPLE / "model", cache=False)


@SAMPLINGS
def test_a_phone_style_rotated_clip_embeds_like_its_upright_twin(tmp_path, model, sampling):
    from vsearch.eval.direction import embed_frames

    upright = sample_clip()  # (24, 64, 96, 3): landscape as shown
    stored = np.ascontiguousarray(np.rot90(upright, 1, axes=(1, 2)))  # the pixels a phone stores, sideways
    plain = write(tmp_path / "upright.mp4", upright)
    phone = write(tmp_path / "phone.mp4", stored, rotation=-90)  # shown rotated back: clockwise 90
    raw = write(tmp_path / "raw.mp4", stored)  # the same sideways pixels without the matrix
    # Through one decoder (PyAV: rotated files always take it), the rotated file is its twin.
    idx = list(np.linspace(0, 23, model.spec.frames).astype(int))

    def frames(path):
        with VideoReader(str(path), model.spec.pixels.image_size, model.spec.pixels.resize, backend="pyav") as r:
            return r.get(idx)[None]

    a, b = embed_frames(model, frames(plain))[0], embed_frames(model, frames(phone))[0]
    assert float(a @ b) >= 0.98, float(a @ b)
    # Through the indexing pipeline (the upright file decoded by decord: its scaler differs from
    # PyAV's by about 1.5% cosine on this tiny model), and against the raw sideways pixels.
    a, b, c = embed(model, plain, sampling), embed(model, phone, sampling), embed(model, raw, sampling)
    assert float(a @ b) >= 0.95, float(a @ b)
    assert float(a @ b) > float(a @ c) + 0.02, (float(a @ b), float(a @ c))


@needs_ffmpeg
def test_time_ranges_start_at_the_first_frame_in_mpeg_ts(tmp_path):
    mp4 = write(tmp_path / "a.mp4", sample_clip())
    ts = tmp_path / "a.ts"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(mp4), "-c", "copy", str(ts)], check=True)
    for backend in ("decord", "pyav"):
        with VideoReader(str(ts), backend=backend) as r:
            assert r.info.frame_times[0, 0] == pytest.approx(0.0, abs=1e-6), backend
            assert r.info.duration == pytest.approx(3.0, abs=0.2)


@needs_ffmpeg
@SAMPLINGS
def test_anamorphic_pixels_are_corrected_before_resize(tmp_path, model, sampling):
    upright = sample_clip()  # 96x64 as shown
    squeezed = np.ascontiguousarray(upright[:, :, ::2])  # stored 48x64, pixels twice as wide as tall
    plain = write(tmp_path / "plain.mp4", upright)
    raw = write(tmp_path / "raw.mp4", squeezed)
    ana = tmp_path / "ana.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(raw), "-c", "copy", "-bsf:v", "h264_metadata=sample_aspect_ratio=2/1", str(ana)],
        check=True,
    )
    with VideoReader(str(ana)) as r:
        assert (r.info.width, r.info.height) == (96, 64)
    with VideoReader(str(ana), image_size=32, resize="crop") as r:
        assert r.get([0]).shape[1:3] == (32, 48)
    assert float(embed(model, plain, sampling) @ embed(model, ana, sampling)) >= 0.98


@needs_ffmpeg
@SAMPLINGS
def test_cover_art_is_never_taken_for_the_video(tmp_path, model, sampling):
    clip = write(tmp_path / "a.mp4", sample_clip())
    cover = tmp_path / "cover.png"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "color=c=red:s=64x64", "-frames:v", "1", str(cover)], check=True
    )
    out = tmp_path / "with-cover.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(cover), "-i", str(clip), "-map", "0", "-map", "1", "-c:v:0", "png",
         "-c:v:1", "copy", "-disposition:v:0", "attached_pic", str(out)],
        check=True,
    )  # fmt: skip
    import av

    with av.open(str(out)) as c:
        kinds = [(st.index, st.codec_context.name) for st in c.streams.video]
    assert len(kinds) == 2 and {k[1] for k in kinds} == {"png", "h264"}, kinds
    with VideoReader(str(out)) as r:
        assert r.info.num_frames == 24 and r.info.codec == "h264"
        assert r.header.stream_index == next(i for i, name in kinds if name == "h264")
    assert float(embed(model, clip, sampling) @ embed(model, out, sampling)) >= 0.98


@pytest.mark.parametrize(
    "codec,pix_fmt,ext,options",
    [("libx265", "yuv420p", "mp4", {"crf": "12"}), ("libvpx-vp9", "yuv420p", "webm", {"crf": "12", "b": "0"}),
     ("libsvtav1", "yuv420p", "mp4", {"crf": "12"}), ("libx264", "yuv420p10le", "mp4", {"crf": "12"}),
     ("libx265", "yuv420p10le", "mkv", {"crf": "12"})],
)  # fmt: skip
@SAMPLINGS
def test_hevc_vp9_av1_and_10_bit_embed_like_their_8_bit_h264_twin(tmp_path, model, codec, pix_fmt, ext, options, sampling):
    import av

    clip = sample_clip()
    plain = write(tmp_path / "plain.mp4", clip)
    path = tmp_path / f"twin.{ext}"
    try:
        with av.open(str(path), "w") as c:
            s = c.add_stream(codec, rate=8)
            s.width, s.height, s.pix_fmt = 96, 64, pix_fmt
            s.options = {**options, **FIXED_GOP.get(codec, {})}
            s.codec_context.gop_size = GOP
            for f in clip:
                for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                    c.mux(p)
            for p in s.encode():
                c.mux(p)
    except (av.FFmpegError, ValueError) as exc:
        pytest.skip(f"this PyAV build cannot write {codec} {pix_fmt}: {exc}")
    # Matroska read by PyAV (HEVC) lists no keyframe table up front: fast sampling stays exact.
    moves = sampling == "fast" and not (ext == "mkv" and codec == "libx265")
    twin = embed(model, path, sampling, moves)
    assert float(embed(model, plain, sampling if moves or sampling == "exact" else "exact") @ twin) >= 0.98
