"""Shared fixtures: an isolated VSEARCH_HOME, no network, real generated videos, a tiny encoder."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a test must never wait on the network
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Cap native thread pools before torch or faiss is imported. torch and the faiss-cpu wheel each
# bring their own OpenMP runtime (two libgomp copies, plus an OpenMP OpenBLAS); every OS thread
# that enters a parallel region gets its own team from each runtime. Uncapped, a test that runs
# torch from server or reader threads leaves teams of spinning workers behind and a later test
# competes with them on 2 cores (the CI hang of issue 26). Subprocesses inherit the caps.
_THREADS = str(min(2, os.cpu_count() or 1))
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, _THREADS)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # idle OpenMP workers sleep instead of spinning


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    """Every test gets its own store location; nothing touches the user's home."""
    home = tmp_path / "vsearch-home"
    monkeypatch.setenv("VSEARCH_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return home


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory):
    """12 synthetic clips (one per colour x shape, varied motion), generated once per session."""
    from vsearch.synth.scenes import generate

    out = tmp_path_factory.mktemp("synth")
    generate(out, 12, seed=3)
    return out


@pytest.fixture(scope="session")
def tiny_encoder():
    from vsearch.models import load_encoder

    return load_encoder("tiny-clip", device="cpu")


@pytest.fixture(scope="session")
def micro_model_dir(tmp_path_factory):
    """A 32 px, 4-frame tiny CLIP saved as a model folder: the cheapest thing `train` can start from."""
    import torch

    from vsearch.models.mean_pool import MeanPoolEncoder
    from vsearch.models.tiny import tiny_clip_config

    torch.manual_seed(0)
    enc = MeanPoolEncoder.from_config(tiny_clip_config(image_size=32), resize="squash", frames=4)
    return enc.save_pretrained(tmp_path_factory.mktemp("micro") / "model")
