"""Evaluation: MSR-VTT files (the real annotation files), an MSR-VTT-shaped root end to end, caching."""

import csv
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from vsearch.datasets.msrvtt import load_split
from vsearch.errors import DatasetError
from vsearch.eval.cache import EmbeddingCache
from vsearch.eval.run import evaluate
from vsearch_cli.main import app

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "msrvtt"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data/msrvtt is not beside the checkout")


@needs_shared
def test_real_1k_a_file_parses_and_missing_videos_are_named(tmp_path):
    root = tmp_path / "msrvtt"
    root.mkdir()
    shutil.copy(SHARED / "MSRVTT_JSFUSION_test.csv", root)
    with pytest.raises(DatasetError, match=r"1000 of 1000 1k-A videos are missing .*video9770\.mp4.*msrvtt_data.zip"):
        load_split(root, "1k-A")
    # With the videos present (empty placeholders are enough for parsing), the split is whole.
    (root / "videos" / "all").mkdir(parents=True)
    with open(SHARED / "MSRVTT_JSFUSION_test.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        (root / "videos" / "all" / f"{r['video_id']}.mp4").touch()
    items = load_split(root, "1k-A")
    assert len(items) == 1000 and len({i.path for i in items}) == 1000
    assert items[0].path.endswith("video9770.mp4") and items[0].captions == ("a person is connecting something to system",)
    ids = [int(Path(i.path).stem[5:]) for i in items]
    assert min(ids) >= 7010 and max(ids) <= 9999


@needs_shared
def test_train_split_needs_the_captions_json(tmp_path):
    root = tmp_path / "m"
    (root / "annotations").mkdir(parents=True)
    shutil.copy(SHARED / "MSRVTT_train.7k.csv", root / "annotations")
    with pytest.raises(DatasetError, match="MSRVTT_data.json not found"):
        load_split(root, "train-7k")
    with open(SHARED / "MSRVTT_train.7k.csv", newline="") as f:
        ids = [r["video_id"] for r in csv.DictReader(f)]
    assert len(ids) == 7010
    sentences = [{"video_id": v, "caption": f"caption {k} of {v}", "sen_id": 0} for v in ids for k in range(2)]
    (root / "annotations" / "MSRVTT_data.json").write_text(json.dumps({"sentences": sentences}))
    items = load_split(root, "train-7k", allow_missing_videos=True)
    assert items == []  # no videos on disk: nothing to train on, but no error with allow_missing
    (root / "videos").mkdir()
    (root / "videos" / "video0.mp4").touch()  # the flat layout is accepted too
    items = load_split(root, "train-7k", allow_missing_videos=True)
    assert len(items) == 1 and items[0].captions == ("caption 0 of video0", "caption 1 of video0")
    with pytest.raises(DatasetError, match="unknown MSR-VTT split"):
        load_split(root, "train-8k")


@pytest.fixture
def msrvtt_like(tmp_path, synth_dir):
    """An MSR-VTT-shaped root: 12 synthetic clips as videos/all/videoNNNN.mp4 + a 1k-A style CSV."""
    root = tmp_path / "msrvtt"
    (root / "videos" / "all").mkdir(parents=True)
    with open(synth_dir / "captions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    with open(root / "MSRVTT_JSFUSION_test.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["key", "vid_key", "video_id", "sentence"])
        for i, r in enumerate(rows):
            vid = f"video{7010 + i}"
            shutil.copy(synth_dir / r["path"], root / "videos" / "all" / f"{vid}.mp4")
            w.writerow([f"ret{i}", f"msr{7010 + i}", vid, r["caption"]])
    return root


def test_msrvtt_shaped_root_end_to_end(tmp_path, msrvtt_like, micro_model_dir):
    model = tmp_path / "model"
    shutil.copytree(micro_model_dir, model)
    sim_path = tmp_path / "sim.npy"
    result = CliRunner().invoke(
        app,
        ["eval", "retrieval", "--model", str(model), "--dataset", "msrvtt", "--root", str(msrvtt_like), "--split", "1k-A",
         "--save-similarity", str(sim_path), "--workers", "0", "--json", "--out", str(tmp_path / "reports")],
        catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["t2v"]["queries"] == 12 and report["v2t"]["queries"] == 12
    assert set(report["dsl"]) == {"t2v", "v2t"} and "tie-safe" in report["protocol"]
    sim = np.load(sim_path)
    side = json.loads(sim_path.with_suffix(".json").read_text())
    assert sim.shape == (12, 12) and len(side["rows"]) == 12 and side["columns"][0].endswith("video7010.mp4")
    written = json.loads((tmp_path / "reports" / "msrvtt-1k-A.json").read_text())
    assert written["t2v"] == report["t2v"]
    assert not (model / "eval").exists()  # never into the model folder (it may be a checkout)


def test_eval_embeddings_are_cached(tmp_path, msrvtt_like, micro_model_dir):
    from vsearch.models import load_encoder

    enc = load_encoder(micro_model_dir, cache=False)
    evaluate(enc, dataset="msrvtt", root=msrvtt_like, workers=0)
    assert not (Path(os.environ["VSEARCH_HOME"]) / "cache" / "embeddings").exists()  # a library call caches only when asked
    first = evaluate(enc, dataset="msrvtt", root=msrvtt_like, workers=0, use_cache=True)
    cache = EmbeddingCache(enc.fingerprint)
    assert cache._db.execute("SELECT count(*) FROM vectors").fetchone()[0] == 12
    cache.close()
    # Make decoding impossible: the second run must come entirely from the cache.
    import vsearch.eval.retrieval as retrieval

    class Boom(retrieval.VideoTextDataset):
        def __getitem__(self, i):
            raise AssertionError("decoded although cached")

    orig = retrieval.VideoTextDataset
    retrieval.VideoTextDataset = Boom
    try:
        second = evaluate(enc, dataset="msrvtt", root=msrvtt_like, workers=0, use_cache=True)
    finally:
        retrieval.VideoTextDataset = orig
    assert second["t2v"] == first["t2v"]


def test_eval_argument_errors(tmp_path, micro_model_dir):
    res = CliRunner().invoke(app, ["eval", "retrieval", "--model", str(micro_model_dir), "--dataset", "msrvtt"])
    assert res.exit_code == 1 and "needs --root" in res.stderr


def test_training_reads_msrvtt_splits_by_reference(msrvtt_like):
    from vsearch.datasets.captions import read_captions

    items = read_captions(f"msrvtt:{msrvtt_like}@1k-A")
    assert len(items) == 12 and items[0].path.endswith("video7010.mp4")
    with pytest.raises(DatasetError, match="msrvtt:ROOT@SPLIT"):
        read_captions("msrvtt:1k-A")


def test_the_eval_cache_is_invalidated_by_a_changed_file(tmp_path):
    from vsearch.eval.cache import EmbeddingCache

    video = tmp_path / "a.mp4"
    shutil.copy(SAMPLE / "videos" / "red_circle_left_01.mp4", video)
    sampling = {"frames": 8}
    cache = EmbeddingCache("fp-test", tmp_path / "cache")
    key = EmbeddingCache.key(str(video), sampling)
    cache.put_many([(key, np.ones(4, np.float32))])
    assert set(cache.get_many([EmbeddingCache.key(str(video), sampling)])) == {key}  # same file, sampling: a hit
    assert EmbeddingCache.key(str(video), {"frames": 12}) != key  # another sampling
    os.utime(video, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert EmbeddingCache.key(str(video), sampling) != key  # a touched file is embedded again
    assert cache.get_many([EmbeddingCache.key(str(video), sampling)]) == {}
    other = EmbeddingCache("fp-other", tmp_path / "cache")
    assert other.path != cache.path and other.get_many([key]) == {}  # another model never reads these vectors
