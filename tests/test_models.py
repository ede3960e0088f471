"""Encoders: the interface contract, saving and loading, the offline tokenizer, clear load errors."""

import json

import numpy as np
import pytest
import torch

from vsearch.errors import EncoderLoadError
from vsearch.models import REGISTRY, load_encoder
from vsearch.models.encoder import EncoderSpec
from vsearch.models.mean_pool import MeanPoolEncoder
from vsearch.models.tiny import tiny_clip_config
from vsearch.models.tokenizer import bundled_clip_tokenizer, clean_text


def frames(b=2, t=5, h=40, w=56, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (b, t, h, w, 3), dtype=np.uint8))


def test_contract_shapes_unit_norm_determinism(tiny_encoder):
    spec = tiny_encoder.spec
    v = tiny_encoder.encode_frames(frames())
    assert v.shape == (2, spec.dim) and v.dtype == torch.float32
    assert torch.allclose(v.norm(dim=1), torch.ones(2), atol=1e-5)
    assert torch.equal(v, tiny_encoder.encode_frames(frames()))
    t = tiny_encoder.encode_texts(["a red circle moving left", "a blue square"])
    assert t.shape == (2, spec.dim)
    assert torch.allclose(t.norm(dim=1), torch.ones(2), atol=1e-5)
    assert tiny_encoder.encode_texts([]).shape == (0, spec.dim)


def test_mean_pool_is_blind_to_frame_order(tiny_encoder):
    f = frames(b=1, t=6)
    assert torch.allclose(tiny_encoder.encode_frames(f), tiny_encoder.encode_frames(f.flip(1)), atol=1e-5)


def test_frame_norm_flag_changes_pooling():
    torch.manual_seed(0)
    a = MeanPoolEncoder.from_config(tiny_clip_config(image_size=32), resize="squash", frame_norm=True)
    b = MeanPoolEncoder(a.clip, a.tokenizer, EncoderSpec.from_dict({**a.spec.as_dict(), "options": {"frame_norm": False}}))
    f = frames(b=1, t=4, h=32, w=32)
    assert not torch.allclose(a.encode_frames(f), b.encode_frames(f))
    assert a.fingerprint != b.fingerprint


def test_registry_tiny_model_is_reproducible_across_loads():
    a = load_encoder("tiny-clip", cache=False)
    b = load_encoder("tiny-clip", cache=False)
    assert a.fingerprint == b.fingerprint and a is not b
    assert load_encoder("tiny-clip") is load_encoder("tiny-clip")  # process cache


def test_save_and_load_round_trip(tmp_path, tiny_encoder):
    out = tiny_encoder.save_pretrained(tmp_path / "m")
    names = sorted(p.name for p in out.iterdir())
    assert names == ["config.json", "merges.txt", "model.safetensors", "tokenizer_config.json", "vocab.json", "vsearch.json"]
    assert json.loads((out / "vsearch.json").read_text())["family"] == "mean-pool"
    loaded = load_encoder(out, cache=False)
    assert loaded.fingerprint == tiny_encoder.fingerprint
    assert loaded.spec == tiny_encoder.spec
    assert loaded.source == str(out.resolve())
    f = frames()
    assert torch.equal(loaded.encode_frames(f), tiny_encoder.encode_frames(f))
    # The folder is also a plain Hugging Face CLIP checkpoint.
    from transformers import CLIPModel, CLIPTokenizer

    assert isinstance(CLIPModel.from_pretrained(out), CLIPModel)
    assert len(CLIPTokenizer.from_pretrained(out)) == 49408


def test_a_model_folder_named_like_an_alias_loads_as_that_folder(tmp_path, tiny_encoder, monkeypatch):
    # The README's recipe trains into ./clip-vip and then passes `--model clip-vip`: the folder
    # here must win over the alias for the hub's CLIP-ViP B/32 (as a local folder wins over a
    # hub id in transformers). Without a folder of that name the alias still applies.
    from vsearch.models.registry import resolve_alias

    monkeypatch.chdir(tmp_path)
    assert resolve_alias("clip-vip") == "clip-vip-b32"
    tiny_encoder.save_pretrained(tmp_path / "clip-vip")
    assert resolve_alias("clip-vip") == "clip-vip"
    loaded = load_encoder("clip-vip", cache=False)
    assert loaded.fingerprint == tiny_encoder.fingerprint and loaded.source == str((tmp_path / "clip-vip").resolve())
    (tmp_path / "clip").mkdir()  # a folder without a model does not shadow the alias
    assert resolve_alias("clip") == "clip-b32"


def test_fp16_save_loads_as_fp32(tmp_path, tiny_encoder):
    out = tiny_encoder.save_pretrained(tmp_path / "h", dtype=torch.float16)
    loaded = load_encoder(out, cache=False)
    assert next(loaded.parameters()).dtype == torch.float32
    cos = (loaded.encode_frames(frames()) * tiny_encoder.encode_frames(frames())).sum(1)
    assert cos.min() > 0.999


def test_plain_hf_clip_folder_loads_as_mean_pool(tmp_path):
    from transformers import CLIPModel

    torch.manual_seed(0)
    CLIPModel(tiny_clip_config(image_size=32)).save_pretrained(tmp_path / "hf")
    enc = load_encoder(tmp_path / "hf", cache=False)
    assert enc.family == "mean-pool" and enc.spec.pixels.resize == "crop" and enc.spec.pixels.image_size == 32
    assert enc.encode_frames(frames(h=32, w=32)).shape == (2, 64)


# Ids from OpenAI's reference SimpleTokenizer (open-clip-torch 3.3.0's copy), computed once.
OPENAI_IDS = {
    "a red circle moving left": [49406, 320, 736, 7117, 3584, 1823, 49407],
    "a dog catches a frisbee": [49406, 320, 1929, 17213, 320, 45768, 49407],
    "caf&eacute; Ｆｕｌｌ width": [49406, 15304, 1476, 23571, 49407],
    "Hello, World! 123": [49406, 3306, 267, 1002, 256, 272, 273, 274, 49407],
    "emoji 🐶 and 日本語": [49406, 16327, 10631, 537, 39121, 44353, 34002, 508, 49407],
}


def test_tokenizer_matches_openai_reference_ids(tiny_encoder):
    assert len(bundled_clip_tokenizer()) == 49408
    for text, ids in OPENAI_IDS.items():
        assert tiny_encoder.tokenize([text])["input_ids"][0].tolist() == ids, text
    assert clean_text("caf&eacute;   Ｆｕｌｌ\nwidth") == "café Full width"  # ftfy folds full-width letters


def test_long_text_is_truncated_at_the_model_limit(tiny_encoder):
    text = "word " * 200
    assert tiny_encoder.token_count(text) > 77
    enc = tiny_encoder.tokenize([text])
    assert enc["input_ids"].shape == (1, 77)
    assert enc["input_ids"][0, -1].item() == 49407  # still ends with end-of-text


@pytest.mark.parametrize(
    "ref,message",
    [
        ("no-such-model", "unknown model"),
        ("./missing/folder", "no such model folder"),
        ("someorg/definitely-not-cached", "cannot load"),
    ],
)
def test_clear_errors_for_unloadable_references(ref, message):
    with pytest.raises(EncoderLoadError, match=message):
        load_encoder(ref, cache=False)


def test_folder_without_weights(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(EncoderLoadError, match="not a model folder"):
        load_encoder(tmp_path / "empty", cache=False)


def test_registry_entries_declare_their_facts():
    for entry in REGISTRY.values():
        assert {"params", "frames", "resolution", "norm"} <= set(entry.facts)


def _architecture(entry) -> torch.nn.Module:
    """The encoder an entry builds, with its architecture and no weights: tiny models are built
    in code; hub models on the meta device from the config their hub id names."""
    from transformers import CLIPConfig, CLIPModel, XCLIPConfig, XCLIPModel

    from vsearch.models.clip_vip import ClipVipEncoder
    from vsearch.models.proxies import ClipVipConfig
    from vsearch.models.stan import StanConfig, StanEncoder
    from vsearch.models.xclip import XClipEncoder

    if entry.hub_id is None:
        return load_encoder(entry.name, cache=False, device="cpu")
    patch = {"patch32": 32, "patch16": 16}[entry.hub_id.rsplit("-", 1)[-1]]
    with torch.device("meta"):
        if entry.family == "xclip":
            cfg = XCLIPConfig(vision_config={"patch_size": patch})
            return XClipEncoder(XCLIPModel(cfg), None, XClipEncoder.default_spec(cfg))
        cfg = CLIPConfig(vision_config={"patch_size": patch})  # OpenAI ViT-B/32 and B/16
        if entry.family == "clip-vip":
            return ClipVipEncoder(CLIPModel(cfg), None, ClipVipEncoder.default_spec(cfg, ClipVipConfig()), ClipVipConfig())
        if entry.family == "stan":
            return StanEncoder(CLIPModel(cfg), None, StanEncoder.default_spec(cfg, StanConfig()), StanConfig())
        return MeanPoolEncoder(CLIPModel(cfg), None, MeanPoolEncoder.default_spec(cfg))


def test_registry_parameter_counts_are_those_of_the_models_built():
    """``vsearch models`` shows hand-typed counts; each must be what the entry really builds."""
    for entry in REGISTRY.values():
        built = _architecture(entry).num_parameters()
        assert entry.facts["params"] == f"{built / 1e6:.1f}M", (entry.name, built)
