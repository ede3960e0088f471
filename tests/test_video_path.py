"""The index-time video path: the same vectors as the full model, used only when a cache entry vouches."""

import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from transformers import CLIPModel

from tests.videos import write_indexed
from vsearch.index_command import index_folders
from vsearch.models import load_encoder, video_path
from vsearch.models.mean_pool import MeanPoolEncoder
from vsearch.models.registry import on_clip
from vsearch.models.tiny import tiny_clip_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("act", ["quick_gelu", "gelu"])
def test_vision_tower_equals_clip_image_features(act):
    torch.manual_seed(0)
    clip = CLIPModel(tiny_clip_config(vision={"hidden_act": act, "layer_norm_eps": 1e-6})).eval()
    tower = video_path.VisionTower(clip.config.vision_config.to_dict(), clip.config.projection_dim)
    tower.load_clip_weights(clip.state_dict())
    px = torch.randn(5, 3, 64, 64)
    with torch.no_grad():
        ref = clip.get_image_features(pixel_values=px).pooler_output
        assert (tower(px) - ref).abs().max() < 1e-5
    with pytest.raises(ValueError, match="64 px"):
        tower(torch.randn(1, 3, 32, 32))


@pytest.mark.parametrize("frame_norm", [True, False])
def test_frame_mean_encoder_matches_the_mean_pool_encoder(tmp_path, frame_norm):
    torch.manual_seed(1)
    out = MeanPoolEncoder.from_config(tiny_clip_config(), frames=4, frame_norm=frame_norm).save_pretrained(tmp_path / "m")
    full = load_encoder(out, cache=False, remember=True)
    fast = video_path.load(str(out), fingerprint=full.fingerprint)
    assert fast is not None
    assert (fast.name, fast.source, fast.fingerprint, fast.spec) == (full.name, full.source, full.fingerprint, full.spec)
    px = torch.randn(3, 4, 3, 64, 64)
    assert (fast.encode_videos(px) - full.encode_videos(px)).abs().max() < 1e-5
    assert video_path.load(str(out), fingerprint="another-model") is None  # a store built with another model


def test_only_a_folder_as_it_was_loaded_is_vouched_for(tmp_path):
    torch.manual_seed(2)
    out = MeanPoolEncoder.from_config(tiny_clip_config(), frames=4).save_pretrained(tmp_path / "m")
    assert video_path.load(str(out)) is None  # never loaded in full: no entry
    load_encoder(out, cache=False)
    assert video_path.load(str(out)) is None  # a library load writes no user cache unasked
    load_encoder(out, cache=False, remember=True)
    assert video_path.load(str(out)) is not None
    spec = json.loads((out / "vsearch.json").read_text())
    spec["spec"]["frames"] = 6  # the same weights, another spec: another fingerprint
    (out / "vsearch.json").write_text(json.dumps(spec))
    assert video_path.load(str(out)) is None
    load_encoder(out, cache=False, remember=True)
    assert video_path.load(str(out)).spec.frames == 6


@pytest.mark.parametrize("attention", ["two-pass", "masked"])
def test_clip_vip_tower_matches_the_clip_vip_encoder(tmp_path, tiny_encoder, attention):
    torch.manual_seed(4)
    enc = on_clip("clip-vip", tiny_encoder, 4)
    with torch.no_grad():  # a temporal table that is not zero, and not of the clips' length
        enc.clip.vision_model.embeddings.temporal_embedding.normal_()
    full = load_encoder(enc.save_pretrained(tmp_path / "m"), cache=False, remember=True)
    fast = video_path.load(full.source, fingerprint=full.fingerprint)
    assert fast is not None and (fast.family, fast.fingerprint, fast.spec) == ("clip-vip", full.fingerprint, full.spec)
    fast.tower.vip = replace(fast.tower.vip, attention=attention)  # (either form computes the same)
    for frames in (4, 3):
        px = torch.randn(2, frames, 3, 64, 64)
        assert (fast.encode_videos(px) - full.encode_videos(px)).abs().max() < 1e-5


def test_other_families_take_the_full_model(tmp_path, tiny_encoder):
    out = on_clip("stan", tiny_encoder, 4).save_pretrained(tmp_path / "m")
    enc = load_encoder(out, cache=False, remember=True)
    assert enc.family == "stan"
    assert video_path.load(str(out)) is None


def _forbidden(ref, **kwargs):
    raise AssertionError(f"the full model was loaded for {ref}")


def _scores(store: Path) -> dict[tuple[str, int], float]:
    """Every segment's score for one query: equal scores, equal vectors (up to the query)."""
    from vsearch.search import search
    from vsearch.store import Store

    with Store.open(store) as st:
        hits = search(st, "a red circle moving left", k=100, segments=True, refine=False).hits
    return {(Path(h.path).name, h.segment): h.score for h in hits}


def test_index_takes_the_video_path_once_the_model_was_loaded_with_the_same_vectors(tmp_path):
    model = MeanPoolEncoder.from_config(tiny_clip_config(), frames=4).save_pretrained(tmp_path / "model")
    vids = tmp_path / "vids"
    vids.mkdir()
    write_indexed(vids / "a.mp4", n=40)
    opts = {"workers": 0, "segmenter": "fixed", "segment_seconds": 1.0}
    with pytest.raises(AssertionError, match="full model"):  # nothing vouches for it yet
        index_folders(tmp_path / "never", [vids], model=str(model), user_cache=True, load=_forbidden, **opts)
    assert not (tmp_path / "never").exists()  # (a refused model leaves no store)
    index_folders(tmp_path / "full", [vids], model=str(model), user_cache=True, **opts)  # loads, records it
    report = index_folders(tmp_path / "fast", [vids], model=str(model), user_cache=True, load=_forbidden, **opts)
    full, fast = _scores(tmp_path / "full"), _scores(tmp_path / "fast")
    assert report.counts()["segments"] == len(full) >= 2 and full.keys() == fast.keys()
    assert all(abs(full[k] - fast[k]) < 1e-5 for k in full)
    # An existing store's model, a file added: the store's fingerprint is vouched for.
    write_indexed(vids / "b.mp4", n=30)
    added = index_folders(tmp_path / "full", [vids], user_cache=True, load=_forbidden, **opts)
    assert added.counts()["indexed"] == 1
    # Without the user cache (a library call's default) the full model loads, as before.
    write_indexed(vids / "c.mp4", n=30)
    with pytest.raises(AssertionError, match="full model"):
        index_folders(tmp_path / "full", [vids], load=_forbidden, **opts)


def test_the_command_line_index_imports_no_transformers_model_code_once_the_model_was_loaded(tmp_path):
    model = tmp_path / "model"
    shutil.copytree(ROOT / "sample_data" / "model", model)  # (its own mtime: the entry is this test's)
    vids = tmp_path / "vids"
    vids.mkdir()
    write_indexed(vids / "a.mp4", n=40)
    load_encoder(model, cache=False, remember=True)  # a first run's full load records it
    argv = ["vsearch", "index", str(vids), "--store", str(tmp_path / "s"), "--json", "--workers", "0", "--model", str(model)]
    probe = (
        "import sys, json, runpy\n"
        f"sys.argv = {argv!r}\n"
        "try:\n"
        "    runpy.run_module('vsearch_cli.main', run_name='__main__')\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
        "print(json.dumps('transformers.models.clip.modeling_clip' in sys.modules), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=170)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stderr.strip().splitlines()[-1]) is False
    assert json.loads(done.stdout)["counts"]["indexed"] == 1
