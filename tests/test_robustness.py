"""`vsearch eval robustness`: the measures' behaviour on random weights, the phone file turned
upright for the mean-pool demo, and the CLIP-ViP demo's goals (issue 25) on clips it never saw.

Random weights check shapes and counts only; the goals are asserted on the shipped model and
marked xfail until the retrained one lands (flip the mark then)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import SAMPLE, run_cli
from vsearch.errors import DatasetError
from vsearch.eval.robustness import (
    FINE_CRF,
    VARIANTS,
    appearance,
    by_image,
    embed_files,
    read_clips,
    robustness_report,
    stability,
    write_h264,
    write_variants,
)
from vsearch.video.decode import VideoReader

#: A rendering seed no model here was trained or measured on (sample_data: 7, 8; training: 1-3).
FRESH_SEED = 11
#: Issue 25's goal for the retrained CLIP-ViP demo: share of "a COLOUR SHAPE" queries and of
#: image queries with the right colour and shape first, and the least cosine of a clip to itself
#: stored another way.
GOAL = {"appearance": 12 / 12, "image": 34 / 36, "cos": 0.98}


@pytest.fixture(scope="module")
def micro(micro_model_dir):
    from vsearch.models import load_encoder

    return load_encoder(micro_model_dir, device="cpu")


def test_the_report_has_every_measure_with_its_count(micro, synth_dir, tmp_path):
    clips = read_clips(synth_dir)[0][:6]
    r = robustness_report(micro, clips, work=tmp_path)
    a, im = r["appearance"], r["image"]
    assert r["clips"] == 6
    assert a["queries"] + len(a["absent"]) == 12 and a["queries"] == len({(c.scene.colour, c.scene.shape) for c in clips})
    assert a["score"] == f"{a['correct']}/{a['queries']}" and len(a["misses"]) == a["queries"] - a["correct"]
    assert im["queries"] == 6 and im["score"] == f"{im['correct']}/6" and len(im["misses"]) == 6 - im["correct"]
    assert list(r["stability"]) == list(VARIANTS)
    for s in r["stability"].values():
        assert s["clips"] == 6 and 0 <= s["stable"] <= 6 and s["score"] == f"{s['stable']}/6"
        assert -1.0 <= s["min"] <= s["mean"] <= 1.0001
    # The variants are what they say: 90% per side (even), and a sideways file shown landscape.
    made = {p.name.split(".")[1] for p in tmp_path.glob("*.mp4")}
    assert made == set(VARIANTS) and len(list(tmp_path.glob("*.mp4"))) == 6 * len(VARIANTS)
    stem = Path(clips[0].path).stem
    with VideoReader(str(tmp_path / f"{stem}.resize90.mp4")) as v:
        assert (v.info.width, v.info.height) == (116, 86)
    with VideoReader(str(tmp_path / f"{stem}.rotated.mp4")) as v:
        assert v.header.orientation and (v.info.width, v.info.height) == (128, 96)
        assert v.get([0]).shape == (1, 96, 128, 3)


def test_clips_are_read_from_each_layout_and_bad_input_is_refused(tmp_path):
    for where in (SAMPLE, Path(SAMPLE) / "videos", Path(SAMPLE) / "captions.csv"):
        clips, skipped = read_clips(where)
        assert len(clips) == 36 and skipped == 0, where
    with pytest.raises(DatasetError, match="no single-scene"):
        read_clips(Path(SAMPLE) / "compilations.csv")  # every row is a compilation
    with pytest.raises(DatasetError, match="no such file"):
        read_clips(tmp_path / "nothing")
    with pytest.raises(DatasetError, match="no captions.csv"):
        read_clips(tmp_path)
    (tmp_path / "captions.csv").write_text("path,caption\nvideos/gone.mp4,a red circle moving left\n")
    with pytest.raises(DatasetError, match="not on disk"):
        read_clips(tmp_path)


def test_a_phone_file_decodes_upright_for_the_mean_pool_demo(tmp_path):
    """The issue measured cos >= 0.98 for the mean-pool demo. Triangles, because a circle or a
    square turned sideways is the same picture: there the matrix could be ignored unseen. Per
    clip the rotated file must beat the same sideways pixels without the matrix; the median must
    reach 0.98 (single clips do not: this 64 px model moves by up to 0.08 on a CRF 18 re-encode)."""
    from vsearch.models import load_encoder

    enc = load_encoder(Path(SAMPLE) / "model", device="cpu")
    clips = [c for c in read_clips(SAMPLE)[0] if c.scene.shape == "triangle"]
    assert len(clips) == 12
    rotated, raw = [], []
    for c in clips:
        rotated.append(write_variants(c.path, tmp_path, ("rotated",))["rotated"])
        with VideoReader(c.path, backend="pyav") as r:
            frames, fps = r.get(list(range(r.info.num_frames))), r.info.fps
        raw.append(str(tmp_path / f"{Path(c.path).stem}.raw.mp4"))
        write_h264(raw[-1], np.rot90(frames, 1, axes=(1, 2)), fps, FINE_CRF)
    v = embed_files(enc, [c.path for c in clips])
    upright, sideways = (embed_files(enc, rotated) * v).sum(1), (embed_files(enc, raw) * v).sum(1)
    assert (upright > sideways).all(), list(zip(upright.round(3), sideways.round(3)))
    assert float(np.median(upright)) >= 0.98, upright.round(3)


def test_the_command_reports_json_and_refuses_bad_input(micro_model_dir):
    r = json.loads(run_cli("eval", "robustness", "--model", micro_model_dir, "--seed", "5", "--count", "3", "--json").stdout)
    assert (r["seed"], r["count"], r["clips"]) == (5, 3, 3)
    assert r["image"]["queries"] == 3 and set(r["stability"]) == set(VARIANTS)
    out = run_cli("eval", "robustness", "--model", micro_model_dir, code=1).output
    assert "--videos DIR or --seed N" in out
    # The folder is refused before the model is looked for (this model does not exist either).
    out = run_cli("eval", "robustness", "--model", "no-such-model", "--videos", "/no/such/folder", code=1).output
    assert "/no/such/folder: no such file or folder" in out


def check_holds_up(
    encoder, clips, work: Path, *, appearance_share: float, image_share: float, cos: float, rotated_cos: float | None = None
) -> None:
    """Issue 25's measures against thresholds, cheapest first (a miss stops before the costly
    re-encoding): the share of "a COLOUR SHAPE" and of image queries with the right colour and
    shape first, and the least cosine of any clip to itself re-encoded, resized or rotated."""
    v = embed_files(encoder, [c.path for c in clips])
    a = appearance(encoder, clips, v)
    assert not a["absent"], a["absent"]
    assert a["correct"] >= appearance_share * a["queries"] - 1e-9, a
    im = by_image(encoder, clips, v)
    assert im["correct"] >= image_share * im["queries"] - 1e-9, im
    s = stability(encoder, clips, v, work, variants=("crf28", "resize90", "rotated"))
    floor = {"rotated": cos if rotated_cos is None else rotated_cos}
    assert all(x["min"] >= floor.get(name, cos) for name, x in s.items()), s


@pytest.fixture(scope="module")
def fresh_clips(tmp_path_factory):
    from vsearch.synth.scenes import generate

    out = tmp_path_factory.mktemp("fresh")
    generate(out, 36, seed=FRESH_SEED)  # 36 like sample_data, so the goal's /36 reads as written
    return read_clips(out)[0]


@pytest.mark.slow
@pytest.mark.parametrize(
    "thresholds",
    [
        pytest.param(
            {"appearance_share": GOAL["appearance"], "image_share": GOAL["image"], "cos": GOAL["cos"]},
            id="issue-25-goal",
            marks=pytest.mark.xfail(
                reason="one clip short on these fresh clips: 33/36 by image (35/36 on sample_data)",
                strict=False,
            ),
        ),
        # What the shipped demo holds on these clips (measured: 12/12, 33/36, crf28 / resize90 /
        # rotated min 0.997 / 0.996 / 0.999), each a little under it: a retrained model must keep this.
        pytest.param({"appearance_share": 1.0, "image_share": 32 / 36, "cos": 0.99}, id="shipped"),
    ],
)
def test_the_clip_vip_demo_holds_up_on_fresh_clips(fresh_clips, thresholds, tmp_path):
    from vsearch.models import load_encoder

    check_holds_up(load_encoder(Path(SAMPLE) / "clip-vip", device="cpu"), fresh_clips, tmp_path, **thresholds)
