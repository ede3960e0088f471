"""Model resolution as a pure function: ``resolve(ref, family) -> LoadPlan``, without weights.

Every branch of what a reference can be (registry name, tiny size, alias, folder of each kind,
hub id, checkpoint file) and every refusal, on folders holding only their small JSON files and
a hub whose answer the test supplies. Nothing here loads a model.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from vsearch.errors import EncoderLoadError
from vsearch.models.catalog import MODEL_TYPES, REGISTRY
from vsearch.models.resolve import DEFAULT_BASE, VIA, LoadPlan, resolve


def no_hub(ref: str):
    raise AssertionError(f"asked the hub about {ref}")


def folder(path, *, model_type: str | None = None, family: str | None = None):
    """A model folder with only its metadata: config.json (``model_type``) and/or vsearch.json."""
    path.mkdir(parents=True)
    if model_type is not None:
        (path / "config.json").write_text(json.dumps({"model_type": model_type}))
    if family is not None:
        (path / "vsearch.json").write_text(json.dumps({"format": 1, "family": family, "spec": {}}))
    return path


def test_registry_names_tiny_sizes_and_aliases():
    assert resolve("tiny-clip", hub_family=no_hub) == LoadPlan("tiny-clip", "tiny", "mean-pool", "saved", "tiny-clip", 64)
    assert resolve("tiny-clip-vip:32", hub_family=no_hub) == LoadPlan(
        "tiny-clip-vip:32", "tiny", "clip-vip", "saved", "tiny-clip-vip", image_size=32
    )
    assert resolve("clip-b32", hub_family=no_hub) == LoadPlan(
        "clip-b32", "hub", "mean-pool", "saved", "openai/clip-vit-base-patch32"
    )
    # CLIP-ViP and STAN entries are those families built on OpenAI's CLIP weights.
    vip = resolve("clip-vip", hub_family=no_hub)  # the alias of clip-vip-b32
    assert (vip.ref, vip.family, vip.via, vip.location) == ("clip-vip-b32", "clip-vip", "clip", "openai/clip-vit-base-patch32")
    assert resolve("stan-b32", hub_family=no_hub).via == "clip"
    assert resolve("xclip-b16", hub_family=no_hub).via == "saved"
    with pytest.raises(EncoderLoadError, match="multiple of the 8-px patch"):
        resolve("tiny-clip:30", hub_family=no_hub)


def test_a_family_on_a_registry_clip_is_built_on_that_encoder():
    plan = resolve("tiny-clip", "clip-vip", frames=4, hub_family=no_hub)
    assert (plan.source, plan.family, plan.via, plan.location, plan.frames) == ("tiny", "clip-vip", "encoder", "tiny-clip", 4)
    assert resolve("clip-b16", "xclip", hub_family=no_hub).via == "encoder"
    assert resolve("tiny-stan", "stan", hub_family=no_hub).via == "saved"  # its own family: nothing to build on
    with pytest.raises(EncoderLoadError, match="'tiny-xclip' is a xclip model, not clip-vip"):
        resolve("tiny-xclip", "clip-vip", hub_family=no_hub)


def test_folders_dispatch_on_their_config_then_on_vsearch_json(tmp_path):
    hf_clip = folder(tmp_path / "hf", model_type="clip")
    assert resolve(hf_clip, hub_family=no_hub) == LoadPlan(str(hf_clip), "folder", "mean-pool", "saved", str(hf_clip))
    on = resolve(hf_clip, "xclip", frames=16, hub_family=no_hub)
    assert (on.family, on.via, on.frames) == ("xclip", "clip", 16)  # X-CLIP built on a CLIP folder's weights
    assert resolve(hf_clip, "stan", hub_family=no_hub).via == "clip"

    new_vip = folder(tmp_path / "new", model_type="clip_vip", family="clip-vip")
    assert resolve(new_vip, hub_family=no_hub).family == "clip-vip"
    stan = folder(tmp_path / "stan", model_type="stan", family="stan")
    assert resolve(stan, hub_family=no_hub).family == "stan"
    # Saved before vsearch's config classes: config.json says clip, vsearch.json the family.
    old_vip = folder(tmp_path / "old", model_type="clip", family="clip-vip")
    assert resolve(old_vip, hub_family=no_hub) == LoadPlan(str(old_vip), "folder", "clip-vip", "saved", str(old_vip))
    with pytest.raises(EncoderLoadError, match="holds a clip-vip model, not stan"):
        resolve(old_vip, "stan", hub_family=no_hub)

    saved_clip = folder(tmp_path / "mp", model_type="clip", family="mean-pool")
    assert resolve(saved_clip, "clip-vip", hub_family=no_hub).via == "encoder"  # keeps its pixel settings
    xclip = folder(tmp_path / "x", model_type="xclip")
    with pytest.raises(EncoderLoadError, match=r"holds a xclip model \(config.json\), not clip-vip"):
        resolve(xclip, "clip-vip", hub_family=no_hub)


def test_folders_that_contradict_themselves_or_hold_no_model_are_refused(tmp_path):
    with pytest.raises(EncoderLoadError, match="config.json describes a stan model, vsearch.json a clip-vip one"):
        resolve(folder(tmp_path / "both", model_type="stan", family="clip-vip"), hub_family=no_hub)
    with pytest.raises(EncoderLoadError, match="not a model folder"):
        resolve(folder(tmp_path / "empty"), hub_family=no_hub)
    with pytest.raises(EncoderLoadError, match="describes a bert model, not CLIP or X-CLIP"):
        resolve(folder(tmp_path / "bert", model_type="bert"), hub_family=no_hub)
    with pytest.raises(EncoderLoadError, match="no such model folder"):
        resolve(tmp_path / "missing" / "model", hub_family=no_hub)
    with pytest.raises(EncoderLoadError, match="unknown model 'nonsense'"):
        resolve("nonsense", hub_family=no_hub)


def test_a_local_folder_named_like_an_alias_wins(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder(tmp_path / "clip-vip", model_type="clip", family="clip-vip")
    plan = resolve("clip-vip", hub_family=no_hub)
    assert (plan.source, plan.location) == ("folder", "clip-vip")


def test_hub_ids_ask_the_hub_for_their_family():
    asked = []

    def hub(kind):
        return lambda ref: asked.append(ref) or kind

    assert resolve("org/clip", hub_family=hub("mean-pool")) == LoadPlan("org/clip", "hub", "mean-pool", "saved", "org/clip")
    assert resolve("org/clip", "xclip", hub_family=hub("mean-pool")).via == "clip"
    assert resolve("org/clip", "clip-vip", hub_family=hub("mean-pool")).via == "clip"
    assert resolve("org/x", hub_family=hub("xclip")).family == "xclip"
    assert resolve("org/unknown", "stan", hub_family=hub(None)).via == "clip"  # the family says what to build
    assert resolve("org/unknown", hub_family=hub(None)).family == "mean-pool"
    with pytest.raises(EncoderLoadError, match=r"org/x is a xclip model \(its config.json\), not stan"):
        resolve("org/x", "stan", hub_family=hub("xclip"))
    assert asked == ["org/clip", "org/clip", "org/clip", "org/x", "org/unknown", "org/unknown", "org/x"]


def test_a_checkpoint_file_is_planned_without_being_read(tmp_path):
    ckpt = tmp_path / "pretrain_clipvip_base_32.pt"
    ckpt.write_bytes(b"not read by resolve")
    plan = resolve(ckpt, hub_family=no_hub)
    assert plan == LoadPlan(
        f"checkpoint:{ckpt.resolve()}#base={DEFAULT_BASE}", "checkpoint", None, "official", str(ckpt.resolve()), base=DEFAULT_BASE
    )
    again = resolve(plan.ref, "stan", hub_family=no_hub)  # the reference a store records loads the same way
    assert (again.location, again.base, again.family) == (plan.location, DEFAULT_BASE, "stan")
    assert resolve(ckpt, base="org/base", hub_family=no_hub).base == "org/base"


def test_every_plan_names_a_known_way_to_load():
    for name in REGISTRY:
        assert resolve(name, hub_family=no_hub).via in VIA
    # The config classes vsearch writes carry the model types resolution dispatches on.
    assert MODEL_TYPES["clip_vip"] == "clip-vip" and MODEL_TYPES["stan"] == "stan"


def test_resolving_imports_no_torch():
    code = (
        "import sys; from vsearch.models.resolve import resolve; "
        "[resolve(n) for n in ('tiny-clip', 'tiny-stan:32', 'clip-vip-b16')]; print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
