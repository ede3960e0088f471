"""Recognition data layouts, recognition training/evaluation, and CLIP-ViP pretraining runs."""

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from vsearch.datasets.recognition import class_text, read_recognition
from vsearch.errors import DatasetError
from vsearch.models import load_encoder
from vsearch.synth.scenes import Scene
from vsearch_cli.main import app


@pytest.fixture
def by_colour(tmp_path, synth_dir):
    """Class folders: the 12 synthetic clips filed by colour (4 classes x 3 clips)."""
    root = tmp_path / "colours"
    with open(synth_dir / "captions.csv", newline="") as f:
        for row in csv.DictReader(f):
            colour = Scene.parse(row["caption"]).colour
            (root / colour).mkdir(parents=True, exist_ok=True)
            shutil.copy(synth_dir / row["path"], root / colour / Path(row["path"]).name)
    return root


def test_class_text():
    assert class_text("ApplyEyeMakeup") == "apply eye makeup"
    assert class_text("brush_hair") == "brush hair"
    assert class_text("playing-guitar") == "playing guitar"
    assert class_text("YoYo") == "yo yo"


def test_folder_tree_and_csv(by_colour, tmp_path):
    ds = read_recognition(by_colour)
    assert ds.classes == ["blue", "green", "red", "yellow"] and len(ds.items) == 12
    assert ds.prompts("a video of a {} thing.")[2] == "a video of a red thing."
    with pytest.raises(DatasetError, match="needs a"):
        ds.prompts("no placeholder")
    lst = tmp_path / "list.csv"
    lst.write_text("path,label\n" + "".join(f"{it.path},{ds.classes[it.label]}\n" for it in ds.items))
    assert read_recognition(lst).items == ds.items
    bad = tmp_path / "bad.csv"
    bad.write_text("path,label\nx.mp4,purple\n")
    names = tmp_path / "classes.txt"
    names.write_text("red\ngreen\n")
    with pytest.raises(DatasetError, match="not a known class"):
        read_recognition(bad, classes=names)


def test_ucf101_hmdb51_and_kinetics_layouts(tmp_path):
    ucf = tmp_path / "ucf" / "splits"
    ucf.mkdir(parents=True)
    (ucf / "classInd.txt").write_text("1 ApplyEyeMakeup\n2 YoYo\n")
    (ucf / "testlist01.txt").write_text("YoYo/v_YoYo_g01_c01.avi\nApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\n")
    (ucf / "trainlist01.txt").write_text("YoYo/v_YoYo_g08_c01.avi 2\n")
    ds = read_recognition(ucf, video_root=tmp_path / "ucf" / "videos")
    assert ds.classes == ["ApplyEyeMakeup", "YoYo"] and [i.label for i in ds.items] == [1, 0]
    assert ds.items[0].path == str(tmp_path / "ucf" / "videos" / "YoYo" / "v_YoYo_g01_c01.avi")
    assert len(read_recognition(ucf, split="trainlist01").items) == 1

    hmdb = tmp_path / "hmdb"
    hmdb.mkdir()
    (hmdb / "brush_hair_test_split1.txt").write_text("a.avi 1\nb.avi 2\nc.avi 0\n")
    (hmdb / "cartwheel_test_split1.txt").write_text("d.avi 2\n")
    test = read_recognition(hmdb, video_root=tmp_path / "vids")
    assert test.classes == ["brush_hair", "cartwheel"]
    assert [Path(i.path).name for i in test.items] == ["b.avi", "d.avi"]
    assert [Path(i.path).name for i in read_recognition(hmdb, split="train1").items] == ["a.avi"]

    kin = tmp_path / "k400"
    (kin / "val" / "abseiling").mkdir(parents=True)
    (kin / "val" / "abseiling" / "abc123_000010_000020.mp4").touch()
    (kin / "val.csv").write_text(
        "label,youtube_id,time_start,time_end,split\nabseiling,abc123,10,20,val\nair drumming,zzz,0,10,val\n"
    )
    k = read_recognition(kin / "val.csv", video_root=kin)
    assert k.classes == ["abseiling", "air drumming"] and len(k.items) == 1


def invoke(*args):
    res = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_recognition_train_and_eval(by_colour, tmp_path, micro_model_dir):
    zero = invoke("eval", "recognition", "--model", micro_model_dir, "--data", by_colour, "--workers", "0", "--json",
                  "--prompt", "a {} shape")  # fmt: skip
    assert zero["classes"] == 4 and zero["videos"] == 12 and zero["prompt"] == "a blue shape"
    views = invoke("eval", "recognition", "--model", micro_model_dir, "--data", by_colour, "--workers", "0", "--json",
                   "--clips", "2", "--crops", "3")  # fmt: skip
    assert views["views"] == {"clips": 2, "crops": 3} and views["videos"] == 12
    out = invoke("train", "recognition", "--data", by_colour, "--val", by_colour, "--model", micro_model_dir, "--out",
                 tmp_path / "rec", "--steps", "3", "--batch-size", "4", "--lr", "1e-3", "--workers", "0",
                 "--freeze-text", "--prompt", "a {} shape", "--json")  # fmt: skip
    assert out["finished"] and out["steps"] == 3
    # The reported top-1 equals a direct count: each clip's nearest class prompt against its folder.
    from vsearch.embedding import embed_videos

    model = load_encoder(tmp_path / "rec", cache=False)
    clips = sorted(by_colour.rglob("*.mp4"))
    vecs = embed_videos(model, [str(c) for c in clips], workers=0).vectors
    names = sorted(p.name for p in by_colour.iterdir())
    prompts = model.encode_texts([f"a {n} shape" for n in names]).numpy()
    pred = (vecs @ prompts.T).argmax(1)
    direct = 100 * float(np.mean([names[p] == c.parent.name for p, c in zip(pred, clips)]))
    assert out["eval"]["top1"] == pytest.approx(direct, abs=1e-6)
    log = [json.loads(line) for line in (tmp_path / "rec" / "train_log.jsonl").read_text().splitlines()]
    assert log[0]["task"] == "recognition" and log[0]["freeze_text"] is True and log[0]["classes"] == 4


def test_pretrain_six_terms_and_degraded_mode(tmp_path, synth_dir, micro_model_dir):
    with open(synth_dir / "captions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    both = tmp_path / "both.csv"
    with open(both, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "subtitle", "caption"])
        for r in rows:
            s = Scene.parse(r["caption"])
            w.writerow([str(synth_dir / r["path"]), f"{s.colour} {s.shape} going {s.motion}", r["caption"]])
    res = invoke("pretrain", "--data", both, "--model", micro_model_dir, "--out", tmp_path / "p1", "--steps", "2",
                 "--batch-size", "4", "--workers", "0", "--json")  # fmt: skip
    assert res["finished"] and res["task"] == "pretrain"
    info = json.loads((tmp_path / "p1" / "train_log.jsonl").read_text().splitlines()[0])
    assert info["columns"] == ["subtitle", "caption"] and info["loss"].startswith("six-term")
    only = tmp_path / "only.csv"
    only.write_text("path,caption\n" + "".join(f"{synth_dir / r['path']},{r['caption']}\n" for r in rows))
    invoke("pretrain", "--data", only, "--model", micro_model_dir, "--out", tmp_path / "p2", "--steps", "1", "--batch-size", "4",
           "--workers", "0", "--json")  # fmt: skip
    info = json.loads((tmp_path / "p2" / "train_log.jsonl").read_text().splitlines()[0])
    assert info["loss"] == "plain two-term loss on caption (no subtitle column)"


def test_seen_axis_set_pairs_both_directions_of_the_axis_kept_in_training(tmp_path, tiny_encoder):
    from vsearch.eval.motion import direction_accuracy
    from vsearch.synth.scenes import motion_split, write_seen_axis_set

    train, heldout = motion_split()
    path = write_seen_axis_set(tmp_path / "seen", groups=1, seed=0)
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 24
    scenes = [Scene.parse(r["caption"]) for r in rows]
    assert all(s in train for s in scenes)  # every clip's caption was seen in training ...
    assert all(
        Scene(s.shape, s.colour, {"left": "right", "right": "left", "up": "down", "down": "up"}[s.motion]) in train
        for s in scenes
    )
    # ... and so was its flipped twin. The figure equals a direct count.
    from vsearch.datasets.items import CaptionedVideo
    from vsearch.eval.retrieval import encode_videos

    items = [CaptionedVideo(str(tmp_path / "seen" / r["path"]), (r["caption"],)) for r in rows]
    videos, _failed = encode_videos(tiny_encoder, items, workers=0)
    own = tiny_encoder.encode_texts([s.caption for s in scenes]).numpy()
    flip = {"left": "right", "right": "left", "up": "down", "down": "up"}
    other = tiny_encoder.encode_texts([Scene(s.shape, s.colour, flip[s.motion]).caption for s in scenes]).numpy()
    expected = 100 * float(((own * videos).sum(1) > (other * videos).sum(1)).mean())
    assert direction_accuracy(tiny_encoder, path, workers=0) == pytest.approx(expected)


def test_direction_accuracy_reads_a_plain_training_file(synth_dir, tiny_encoder):
    """A training file has no group/heldout columns: direction on trained clips must still be measurable."""
    from vsearch.eval.direction import load_direction_set
    from vsearch.eval.motion import direction_accuracy

    acc = direction_accuracy(tiny_encoder, synth_dir / "captions.csv", workers=0, limit=4)
    assert acc in {0.0, 25.0, 50.0, 75.0, 100.0}  # exactly 4 clips were scored
    with pytest.raises(DatasetError, match="group,heldout"):  # a grouped direction set still insists on its columns
        load_direction_set(tiny_encoder, synth_dir / "captions.csv")
