"""tools/tiny_clip.py: the README's capacity rows start from its folders."""

import importlib.util
from pathlib import Path

import torch

from vsearch.models import load_encoder

TOOL = Path(__file__).resolve().parents[1] / "tools" / "tiny_clip.py"


def _tool():
    spec = importlib.util.spec_from_file_location("tiny_clip_tool", TOOL)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_default_widths_are_the_registry_tiny_clip():
    """Same towers, same seed: a capacity row changes one tower and nothing else."""
    ours = _tool().build(size=32).state_dict()
    registry = load_encoder("tiny-clip:32", cache=False).state_dict()
    assert ours.keys() == registry.keys()
    assert all(torch.equal(ours[k], registry[k]) for k in ours)


def test_wider_vision_tower_saves_and_loads_as_clip_vip(tmp_path):
    enc = _tool().build(size=32, vision_width=96)
    enc.save_pretrained(tmp_path / "wide")
    vip = load_encoder(tmp_path / "wide", family="clip-vip", cache=False, frames=8)
    vision = vip.clip.config.vision_config
    assert (vision.hidden_size, vision.intermediate_size) == (96, 384)
    assert vip.clip.config.text_config.hidden_size == 32
    out = vip.embed_videos(torch.zeros(2, 8, 3, 32, 32))
    assert out.shape == (2, 64)
