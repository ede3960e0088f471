"""The committed demo: the sample model finds the right clips in sample_data, as the README says."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vsearch.datasets.captions import read_captions
from vsearch.eval.motion import attribute_accuracy
from vsearch.models import load_encoder
from vsearch.synth.scenes import Scene
from vsearch_cli.main import app

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"


def test_sample_model_retrieves_colour_and_shape():
    model = load_encoder(SAMPLE / "model", cache=False)
    acc = attribute_accuracy(model, read_captions(SAMPLE / "captions.csv"), workers=0)
    # Measured when the model was trained: 100.0 colour+shape, 58.3 exact caption over the 36
    # clips (chance: about 8 and 3). Thresholds leave room for decoder or BLAS differences.
    assert acc["colour+shape"] >= 90.0, acc
    assert acc["exact caption"] >= 40.0, acc
    untrained = attribute_accuracy(load_encoder("tiny-clip"), read_captions(SAMPLE / "captions.csv"), workers=0)
    assert untrained["colour+shape"] < 50.0  # the figure comes from training, not from the data


def test_readme_quickstart(tmp_path):
    runner = CliRunner()
    store = tmp_path / "demo"
    res = runner.invoke(app, ["index", str(SAMPLE / "videos"), "--model", str(SAMPLE / "model"), "--store", str(store), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["counts"]["indexed"] == 40
    res = runner.invoke(app, ["search", "a yellow triangle", "--store", str(store), "-k", "5", "--json"])
    hits = json.loads(res.stdout)
    first = Path(hits[0]["path"]).name
    assert first.startswith("yellow_triangle_"), first
    # A compilation with a yellow triangle scene is found at that scene's time range.
    comps = [h for h in hits if "compilation" in h["path"]]
    with open(SAMPLE / "segments.csv") as f:
        scenes = [line.strip().split(",") for line in f.readlines()[1:]]
    for h in comps:
        start = float(h["start"])
        caption = next(c for p, s, e, c in scenes if p.endswith(Path(h["path"]).name) and float(s) == pytest.approx(start))
        assert Scene.parse(caption).colour == "yellow"


def test_shipped_clip_vip_knows_direction_on_clips_it_never_saw():
    """Fresh clips of the held-out scenes (a seed never used in training or in the benchmark),
    and their time-reversed copies: the demo CLIP-ViP must tell the directions apart."""
    from vsearch.eval.direction import direction_report, render_direction_clips
    from vsearch.synth.scenes import reversal_split

    model = load_encoder(SAMPLE / "clip-vip", cache=False)
    assert model.family == "clip-vip"
    _train, held = reversal_split()
    frames, caps, groups = render_direction_clips(held, 8, frames=model.spec.frames, size=32, seed=987_654)
    r = direction_report(model, frames, caps, groups)
    # Measured when shipped on these 128 clips and their reversals: text side 99.6, video side 100,
    # 4-way 92.6, colour+shape 100, 1 - cos(clip, reversal) 0.050 (seeds 13 and 2027: 100 / 100 /
    # 92.2 / 100, 99.6 / 100 / 93.4 / 100). Chance 50 (4-way 25); mean pooling exactly 50 with a
    # reversal sensitivity of 0. The hardened demo (view consistency) keeps a clip and its
    # reversal closer (0.05; 0.27 before it) and still orders every pair.
    assert r["text_side"] >= 90.0, r
    assert r["video_side"] >= 90.0, r
    assert r["four_way"] >= 85.0, r
    assert r["text_side_ties"] == 0.0 and r["reversal_sensitivity"] > 0.02, r
    mean_pool = load_encoder(SAMPLE / "model", cache=False)
    r0 = direction_report(mean_pool, frames, caps, groups)
    assert r0["text_side"] == 50.0 and r0["video_side_ties"] == 100.0, r0
    # Order is not bought with appearance: colour and shape are found as well as frame averaging
    # finds them (the mean-pool demo model: 100 on these clips; the CLIP-ViP shipped before: 82-85).
    assert r["colour_shape_top1"] >= 95.0 and r["colour_shape_top1"] >= r0["colour_shape_top1"] - 2.5, (r, r0)


def test_clip_vip_demo_finds_the_exact_caption_where_the_mean_pool_cannot():
    # On sample_data's 36 single-scene clips, measured when shipped: CLIP-ViP 97.2 exact caption
    # (colour, shape and direction); the mean pool 58.3 (it finds colour and shape, 100, then guesses).
    items = read_captions(SAMPLE / "captions.csv")
    vip = attribute_accuracy(load_encoder(SAMPLE / "clip-vip", cache=False), items, workers=0)
    mean_pool = attribute_accuracy(load_encoder(SAMPLE / "model", cache=False), items, workers=0)
    assert vip["exact caption"] >= 90.0 and vip["colour+shape"] >= 90.0, vip
    assert mean_pool["exact caption"] < 75.0, mean_pool


def test_clip_vip_demo_ranks_left_moving_red_circles_above_right_moving(tmp_path):
    runner = CliRunner()
    store = tmp_path / "vip"
    res = runner.invoke(
        app, ["index", str(SAMPLE / "videos"), "--model", str(SAMPLE / "clip-vip"), "--store", str(store), "--json"]
    )
    assert res.exit_code == 0, res.output
    hits = json.loads(
        runner.invoke(app, ["search", "a red circle moving left", "--store", str(store), "-k", "40", "--json"]).stdout
    )
    rank = {Path(h["path"]).name: i for i, h in enumerate(hits)}
    assert rank["red_circle_left_01.mp4"] < rank["red_circle_right_01.mp4"], [Path(h["path"]).name for h in hits[:6]]
