"""Training clips drawn as footage arrives (``synth.degrade``), the second view of the same
content, and the view-consistency loss that ties the two together."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vsearch.errors import DatasetError
from vsearch.synth.degrade import degrade, footage_size
from vsearch.synth.scenes import COLOURS, Scene, render_scene
from vsearch.train.config import TrainConfig
from vsearch.train.loss import view_drift
from vsearch.train.stream import StreamSpec, SyntheticStream
from vsearch.train.tasks import RetrievalTask


def _centre(frame: np.ndarray, colour: str) -> np.ndarray:
    """Relative (x, y) of the pixels nearest the object's colour."""
    target = np.array(COLOURS[colour], dtype=np.float32)
    dist = np.abs(frame.astype(np.float32) - target).sum(-1)
    ys, xs = np.nonzero(dist <= (dist.min() + np.median(dist)) / 2)  # object, not background
    return np.array([xs.mean() / frame.shape[1], ys.mean() / frame.shape[0]])


def test_degrade_delivers_the_models_side_and_keeps_a_still_still():
    rng = np.random.default_rng(0)
    for _ in range(20):
        w, h = footage_size(32, rng)
        assert min(w, h) >= 32 and max(w, h) <= 4 * 32 * 16 / 9 + 1
        clip = render_scene(Scene("circle", "red", "left"), 8, w, h, rng)
        out = degrade(clip, 32, rng)
        assert out.shape == (8, 32, 32, 3) and out.dtype == np.uint8
        still = degrade(np.repeat(clip[:1], 8, axis=0), 32, rng)
        # time reversal treats a still as its own reversal only while its frames stay equal
        assert (still == still[:1]).all()


def test_degraded_clip_still_shows_the_object_where_it_was():
    rng = np.random.default_rng(1)
    scene = Scene("square", "blue", "right")
    state = rng.bit_generator.state
    clean = render_scene(scene, 8, 32, 32, rng)
    again = np.random.Generator(np.random.PCG64())
    again.bit_generator.state = state
    big = render_scene(scene, 8, 128, 96, again)  # same draws, footage size
    out = degrade(big, 32, np.random.default_rng(2))
    for t in (0, 7):
        assert np.abs(_centre(clean[t], "blue") - _centre(out[t], "blue")).max() < 0.12


def test_second_view_is_the_same_content_drawn_another_way():
    spec = StreamSpec.parse("synth:motion,size=32,stills=0.25,wander=0.25,augment=0.5,views=2")
    stream = SyntheticStream(spec, 8, seed=5)
    plain = SyntheticStream(StreamSpec.parse("synth:motion,size=32,stills=0.25,wander=0.25"), 8, seed=5)
    for i in range(12):
        item = stream[i]
        assert item["frames"].shape == item["frames_b"].shape == (8, 32, 32, 3)
        assert not np.array_equal(item["frames"], item["frames_b"])
        assert item["text"] == plain[i]["text"]
        if (item["frames"] == item["frames"][:1]).all():  # a still: its second view is a still too
            assert (item["frames_b"] == item["frames_b"][:1]).all()
        colour = item["text"].split()[1]
        for t in (0, 7):
            assert np.abs(_centre(item["frames"][t], colour) - _centre(item["frames_b"][t], colour)).max() < 0.15


def test_without_augment_the_stream_renders_what_it_always_has():
    """augment= draws from its own random stream: recipes written before it reproduce."""
    old = SyntheticStream(StreamSpec.parse("synth:motion,size=32,stills=0.25"), 8, seed=9)
    new = SyntheticStream(StreamSpec.parse("synth:motion,size=32,stills=0.25,views=2"), 8, seed=9)
    for i in range(6):
        assert np.array_equal(old[i]["frames"], new[i]["frames"])


@pytest.mark.parametrize("bad", ["augment=1.5", "views=3", "augment=x"])
def test_bad_stream_options_are_refused(bad):
    with pytest.raises(DatasetError):
        StreamSpec.parse(f"synth:motion,{bad}")


def test_consistency_needs_a_second_view():
    cfg = TrainConfig(data="synth:motion,size=32", model="tiny-clip:32", out="/tmp/x", view_consistency=1.0)
    with pytest.raises(DatasetError, match="views=2"):  # refused before any step
        RetrievalTask(cfg, encoder=None, device="cpu")


def test_view_drift_is_zero_for_agreeing_views_and_pulls_them_together():
    a = torch.randn(4, 16, requires_grad=True)
    assert float(view_drift(a, a.detach().clone()).detach()) == pytest.approx(0.0, abs=1e-6)
    b = torch.randn(4, 16)
    loss = view_drift(a, b)
    loss.backward()
    with torch.no_grad():
        assert float(view_drift(a - 0.1 * a.grad, b)) < float(loss)


def test_a_run_with_both_terms_trains_and_logs_them(tmp_path):
    import json

    from vsearch.train.loop import train

    cfg = TrainConfig(
        data="synth:motion,size=32,stills=0.25,augment=0.5,views=2", model="tiny-clip:32", out=str(tmp_path / "m"),
        frames=2, steps=2, batch_size=4, lr=1e-4, workers=0, seed=0, time_reversal="twins", pair_weight=1.0,
        view_consistency=1.0, image_video=1.0, log_every=1,
    )  # fmt: skip
    assert train(cfg).finished
    last = [json.loads(line) for line in (tmp_path / "m" / "train_log.jsonl").read_text().splitlines() if '"loss"' in line][-1]
    assert last["view_drift"] >= 0 and last["image_video"] > 0


def test_image_video_needs_a_synthetic_stream(tmp_path):
    cfg = TrainConfig(data=str(tmp_path / "captions.csv"), model="tiny-clip:32", out="/tmp/x", image_video=1.0)
    with pytest.raises(DatasetError, match="synthetic stream"):  # refused before any step
        RetrievalTask(cfg, encoder=None, device="cpu")


def test_a_turned_clip_comes_back_upright():
    """The phone path turns the picture back: a rising triangle still points up."""
    rng = np.random.default_rng(3)
    clip = render_scene(Scene("triangle", "red", "right"), 4, 96, 96, rng)
    out = degrade(clip, 32, np.random.default_rng(4), turned=1.0)
    ref = degrade(clip, 32, np.random.default_rng(4), turned=0.0)
    assert out.shape == (4, 32, 32, 3)
    # both left to right: the object's centre moves the same way in both
    assert np.sign(_centre(out[-1], "red")[0] - _centre(out[0], "red")[0]) == 1
    assert np.abs(_centre(out[0], "red") - _centre(ref[0], "red")).max() < 0.1
    StreamSpec.parse("synth:motion,augment=0.5,turned=0.25")
    with pytest.raises(DatasetError):
        StreamSpec.parse("synth:motion,turned=2")
