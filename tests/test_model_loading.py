"""Models load as what their files say, and completely, or not at all."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from vsearch.errors import CheckpointError, EncoderLoadError
from vsearch.models import load_encoder


@pytest.fixture(scope="module")
def hf_xclip(tmp_path_factory):
    """A plain Hugging Face X-CLIP folder (config.json + weights, no vsearch.json)."""
    from transformers import XCLIPModel

    from vsearch.models.xclip import tiny_xclip_config

    torch.manual_seed(0)
    model = XCLIPModel(tiny_xclip_config(image_size=32)).eval()
    out = tmp_path_factory.mktemp("xclip") / "model"
    model.save_pretrained(out)
    return out, model


@pytest.fixture(scope="module")
def hf_clip(tmp_path_factory):
    from transformers import CLIPModel

    from vsearch.models.registry import tiny_clip_config

    torch.manual_seed(0)
    model = CLIPModel(tiny_clip_config(image_size=32)).eval()
    out = tmp_path_factory.mktemp("clip") / "model"
    model.save_pretrained(out)
    return out, model


def test_an_xclip_folder_without_vsearch_json_loads_as_xclip(hf_xclip):
    folder, ref = hf_xclip
    enc = load_encoder(folder, cache=False)
    assert enc.family == "xclip"
    tok = enc.tokenize(["a red circle moving left"])
    with torch.no_grad():
        out = ref.get_text_features(input_ids=tok["input_ids"], attention_mask=tok["attention_mask"])
        want = F.normalize(out.pooler_output if hasattr(out, "pooler_output") else out, dim=-1)
    got = enc.encode_texts(["a red circle moving left"])
    assert torch.allclose(got, want, atol=1e-5)
    with pytest.raises(EncoderLoadError, match="xclip model"):
        load_encoder(folder, family="clip-vip", cache=False)


def test_a_plain_clip_folder_loads_as_mean_pool_and_matches_clipmodel(hf_clip):
    folder, ref = hf_clip
    enc = load_encoder(folder, cache=False)
    assert enc.family == "mean-pool"
    tok = enc.tokenize(["a blue square"])
    with torch.no_grad():
        out = ref.get_text_features(input_ids=tok["input_ids"], attention_mask=tok["attention_mask"])
        out = out.pooler_output if hasattr(out, "pooler_output") else out
    assert torch.allclose(enc.encode_texts(["a blue square"]), F.normalize(out, dim=-1), atol=1e-5)


def test_a_folder_missing_a_tensor_is_refused_by_name(hf_clip, tmp_path):
    import shutil

    folder, _ref = hf_clip
    broken = tmp_path / "broken"
    shutil.copytree(folder, broken)
    weights = broken / "model.safetensors"
    sd = load_file(weights)
    del sd["text_projection.weight"]
    save_file(sd, weights)
    with pytest.raises(CheckpointError, match=r"1 missing \(e\.g\. text_projection\.weight\)"):
        load_encoder(broken, cache=False)


def test_an_unknown_model_type_is_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "architectures": ["BertModel"]}))
    with pytest.raises(EncoderLoadError, match="not CLIP or X-CLIP"):
        load_encoder(tmp_path, cache=False)


def test_tiny_models_come_at_another_size():
    enc = load_encoder("tiny-clip-vip:32", cache=False)
    assert enc.spec.pixels.image_size == 32 and enc.source == "tiny-clip-vip:32"
    with pytest.raises(EncoderLoadError, match="multiple of the 8-px patch"):
        load_encoder("tiny-clip:30", cache=False)


def _fill_hub_cache(cache, repo: str, folder) -> None:
    """A Hugging Face hub cache entry for ``repo`` as the hub client writes it (offline)."""
    import shutil

    commit = "0123456789abcdef0123456789abcdef01234567"
    base = cache / f"models--{repo.replace('/', '--')}"
    snap = base / "snapshots" / commit
    snap.mkdir(parents=True)
    for f in folder.iterdir():
        shutil.copy(f, snap / f.name)
    (base / "refs").mkdir()
    (base / "refs" / "main").write_text(commit)


def test_hub_ids_resolve_from_a_prefilled_cache_offline_with_the_right_family(hf_xclip, hf_clip, tmp_path):
    import os
    import subprocess
    import sys

    cache = tmp_path / "hub"
    _fill_hub_cache(cache, "vsearch-test/tiny-xclip", hf_xclip[0])
    _fill_hub_cache(cache, "vsearch-test/tiny-clip", hf_clip[0])
    code = (
        "import json\nfrom vsearch.models import load_encoder\nout = {}\n"
        "for ref in ('vsearch-test/tiny-xclip', 'vsearch-test/tiny-clip'):\n"
        "    e = load_encoder(ref, cache=False)\n"
        "    out[ref] = [e.family, e.encode_texts(['a red circle'])[0].tolist()]\n"
        "print(json.dumps(out))\n"
    )
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "HF_ENDPOINT": "http://127.0.0.1:9"}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert got["vsearch-test/tiny-xclip"][0] == "xclip" and got["vsearch-test/tiny-clip"][0] == "mean-pool"
    for ref, (folder, _model) in (("vsearch-test/tiny-xclip", hf_xclip), ("vsearch-test/tiny-clip", hf_clip)):
        direct = load_encoder(folder, cache=False).encode_texts(["a red circle"])[0]
        assert torch.allclose(torch.tensor(got[ref][1]), direct, atol=1e-5), ref
