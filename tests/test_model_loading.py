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
