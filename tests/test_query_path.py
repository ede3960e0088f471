"""The query fast path: the same vectors as the full model, used only when a cache entry vouches."""

import json
import shutil
import subprocess
import sys

import torch
from transformers import CLIPModel

from vsearch.index_command import index_folders
from vsearch.models import load_encoder, query_path
from vsearch.models.tiny import tiny_clip_config, tiny_xclip_config
from vsearch.models.xclip import XClipEncoder

from .test_models import OPENAI_IDS

TEXTS = ["a red circle moving left", "a dog catches a frisbee", "x", "émoji 🐶 and 日本語 " * 3]


def test_text_tower_equals_clip_text_model():
    torch.manual_seed(0)
    clip = CLIPModel(tiny_clip_config()).eval()
    tower = query_path.TextTower(clip.config.text_config.to_dict(), clip.config.projection_dim)
    tower.load_clip_weights(clip.state_dict())
    for ids in OPENAI_IDS.values():
        x = torch.tensor([ids])
        with torch.no_grad():
            ref = clip.get_text_features(input_ids=x).pooler_output
            assert (tower(x) - ref).abs().max() < 1e-5


def test_fast_query_encoder_matches_the_full_model(tmp_path):
    torch.manual_seed(3)
    full = load_encoder(XClipEncoder.from_config(tiny_xclip_config()).save_pretrained(tmp_path / "x"), cache=False, remember=True)
    fast = query_path.load(full.source, full.fingerprint)
    assert fast is not None and fast.fingerprint == full.fingerprint and fast.spec == full.spec
    for t in TEXTS:
        assert (fast.encode_query(t) - full.encode_texts([t])[0]).abs().max() < 1e-5
        assert fast.token_count(t) == full.token_count(t)
    assert query_path.load(full.source, "another-fingerprint") is None


def test_a_changed_weights_file_is_not_vouched_for(tmp_path, tiny_encoder):
    out = tiny_encoder.save_pretrained(tmp_path / "m")
    enc = load_encoder(out, cache=False, remember=True)
    assert query_path.load(enc.source, enc.fingerprint) is not None
    (out / "model.safetensors").write_bytes((out / "model.safetensors").read_bytes())  # new mtime
    assert query_path.load(enc.source, enc.fingerprint) is None


def test_command_line_search_takes_the_fast_path_with_the_same_results(tmp_path, synth_dir, tiny_encoder):
    model = tiny_encoder.save_pretrained(tmp_path / "model")
    videos = tmp_path / "v"
    shutil.copytree(synth_dir / "videos", videos)
    # Indexed as the command line indexes (it records the model in the user cache), in-process.
    index_folders(tmp_path / "s", [videos], model=str(model), user_cache=True, workers=0)
    code = (
        "import sys, json; from vsearch_cli.main import app; from typer.testing import CliRunner; "
        f"r = CliRunner().invoke(app, ['search', 'a red circle', '--store', {str(tmp_path / 's')!r}, '--json', '-k', '5']); "
        "print(json.dumps([r.exit_code, 'transformers.models.clip.modeling_clip' in sys.modules, json.loads(r.stdout)]))"
    )
    code_, heavy, fast_hits = json.loads(
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    )
    assert code_ == 0 and not heavy  # answered without importing transformers' model code
    from vsearch.search import search
    from vsearch.store import Store

    with Store.open(tmp_path / "s") as st:
        slow = [h.as_dict() for h in search(st, "a red circle", k=5).hits]
    assert [h["path"] for h in fast_hits] == [h["path"] for h in slow]
    assert all(abs(a["score"] - b["score"]) < 1e-4 for a, b in zip(fast_hits, slow))


def test_reloading_leaves_a_valid_cache_entry_alone_and_repairs_a_lost_tokenizer(tmp_path, tiny_encoder):
    out = tiny_encoder.save_pretrained(tmp_path / "m")
    enc = load_encoder(out, cache=False, remember=True)
    cache = query_path._cache_path()
    before = cache.stat().st_mtime_ns
    load_encoder(out, cache=False, remember=True)
    assert cache.stat().st_mtime_ns == before  # a remembering load of a known model does not rewrite the cache
    entry = json.loads(cache.read_text())[query_path._weights_key(out / "model.safetensors")]
    query_path._tokenizer_path(entry["tokenizer"]).unlink()
    assert query_path.load(enc.source, enc.fingerprint) is None  # no tokenizer: the slow path ...
    load_encoder(out, cache=False, remember=True)
    assert query_path.load(enc.source, enc.fingerprint) is not None  # ... whose full load restores it


def test_a_library_load_writes_no_user_cache_unless_asked(tmp_path, tiny_encoder):
    out = tiny_encoder.save_pretrained(tmp_path / "m")
    enc = load_encoder(out, cache=False)
    assert not query_path._cache_path().exists()
    assert query_path.load(enc.source, enc.fingerprint) is None
