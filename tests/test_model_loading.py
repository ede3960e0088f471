"""Models load as what their files say, and completely, or not at all."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from vsearch.errors import CheckpointError, EncoderLoadError
from vsearch.models import load_encoder


def _plain_hf_folder(tmp_path_factory, kind: str):
    """A seeded tiny ``kind`` ("clip" or "xclip") saved as a plain Hugging Face folder
    (config.json + weights, no vsearch.json), and the model itself to compare against."""
    from transformers import CLIPModel, XCLIPModel

    from vsearch.models.tiny import tiny_clip_config, tiny_xclip_config

    model_cls, config = {"clip": (CLIPModel, tiny_clip_config), "xclip": (XCLIPModel, tiny_xclip_config)}[kind]
    torch.manual_seed(0)
    model = model_cls(config(image_size=32)).eval()
    out = tmp_path_factory.mktemp(kind) / "model"
    model.save_pretrained(out)
    return out, model


@pytest.fixture(scope="module")
def hf_xclip(tmp_path_factory):
    return _plain_hf_folder(tmp_path_factory, "xclip")


@pytest.fixture(scope="module")
def hf_clip(tmp_path_factory):
    return _plain_hf_folder(tmp_path_factory, "clip")


def _reference_text_vector(ref, enc, text: str) -> torch.Tensor:
    """The unit text vector of ``text`` by the transformers model ``ref`` itself (tokenised as ``enc`` does)."""
    tok = enc.tokenize([text])
    with torch.no_grad():
        out = ref.get_text_features(input_ids=tok["input_ids"], attention_mask=tok["attention_mask"])
    return F.normalize(out.pooler_output if hasattr(out, "pooler_output") else out, dim=-1)


@pytest.mark.parametrize(("fixture", "family"), [("hf_xclip", "xclip"), ("hf_clip", "mean-pool")])
def test_a_plain_hf_folder_loads_as_its_family_and_matches_transformers(fixture, family, request):
    folder, ref = request.getfixturevalue(fixture)
    enc = load_encoder(folder, cache=False)
    assert enc.family == family
    text = "a red circle moving left"
    assert torch.allclose(enc.encode_texts([text]), _reference_text_vector(ref, enc, text), atol=1e-5)


def test_an_xclip_folder_is_not_taken_for_another_family(hf_xclip):
    with pytest.raises(EncoderLoadError, match="xclip model"):
        load_encoder(hf_xclip[0], family="clip-vip", cache=False)


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


#: The shipped sample models, as the loader read them before CLIP-ViP and STAN had config classes
#: of their own (their config.json says ``clip``): fingerprint, and the first values of one text
#: and one video embedding (a seeded random clip). Recorded from the loader of commit 712cf91.
SAMPLE_MODELS = {
    "clip-vip": ("clip-vip", "22f9ab43bd7afa68b5f183cd73d71e44", [-0.010766, 0.040498, 0.164467, 0.080805],
                 [-0.00789, 0.053868, -0.05009, 0.082617]),
    "model": ("mean-pool", "f8e90f3d4e032384d1668168d047b000", [0.068283, 0.01959, 0.057225, 0.116801],
              [0.007824, 0.007412, -0.124168, 0.265368]),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(SAMPLE_MODELS))
def test_the_shipped_sample_models_load_unchanged(name):
    family, fingerprint, text, video = SAMPLE_MODELS[name]
    folder = Path(__file__).resolve().parent.parent / "sample_data" / name
    enc = load_encoder(folder, cache=False, device="cpu")
    assert (enc.family, enc.fingerprint) == (family, fingerprint)
    size = enc.spec.pixels.image_size
    pixels = torch.rand(1, enc.spec.frames, 3, size, size, generator=torch.Generator().manual_seed(0))
    assert np.allclose(enc.encode_texts(["a red circle moving left"])[0][:4].numpy(), text, atol=2e-6)
    assert np.allclose(enc.encode_videos(pixels)[0][:4].numpy(), video, atol=2e-6)


@pytest.mark.parametrize("family", ["clip-vip", "stan"])
def test_a_saved_folder_says_its_family_in_config_json(tmp_path, family):
    """CLIP-ViP and STAN write config.json with a ``model_type`` of their own (and their settings
    in it), load back with the same fingerprint, and old folders that say ``clip`` still load."""
    from vsearch.models.resolve import resolve

    enc = load_encoder(f"tiny-{family}:32", cache=False, device="cpu")
    out = enc.save_pretrained(tmp_path / "new")
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == {"clip-vip": "clip_vip", "stan": "stan"}[family]
    settings = config.get("vision_additional_config") or config.get("stan_config")
    assert settings and all(settings[k] == v for k, v in enc.spec.options.items())
    assert resolve(out).family == family
    again = load_encoder(out, cache=False, device="cpu")
    assert type(again) is type(enc) and again.fingerprint == enc.fingerprint

    config.update(model_type="clip")  # as folders were written before the config classes
    config.pop("vision_additional_config", None), config.pop("stan_config", None)
    (out / "config.json").write_text(json.dumps(config))
    assert load_encoder(out, cache=False, device="cpu").fingerprint == enc.fingerprint
