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


SAMPLE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "sample_data")


@pytest.fixture(scope="session")
def synth_store(tmp_path_factory, synth_dir, tiny_encoder):
    """The 12 synthetic clips indexed with the tiny encoder, once per session. Read-only for
    tests (servers, searches, CLI refusals); a test that changes a store copies it first."""
    from vsearch.ingest import index
    from vsearch.store import Store

    root = tmp_path_factory.mktemp("synth-store") / "s"
    with Store.open(root) as st:
        index(st, [synth_dir / "videos"], tiny_encoder, workers=0)
    return root


@pytest.fixture(scope="session")
def sample_store(tmp_path_factory):
    """``sample_data/videos`` indexed with the mean-pool demo model (good at colour and shape),
    once per session; read-only for tests, like ``synth_store``."""
    from pathlib import Path

    from vsearch.ingest import index
    from vsearch.models import load_encoder
    from vsearch.store import Store

    root = tmp_path_factory.mktemp("sample-store") / "s"
    with Store.open(root) as st:
        index(st, [Path(SAMPLE) / "videos"], load_encoder(Path(SAMPLE) / "model"), workers=0)
    return root


@pytest.fixture(scope="session")
def sample_server(sample_store):
    """`vsearch serve` on ``sample_store`` (the page tests), once per session."""
    from tests.live_server import LiveServer

    with LiveServer(sample_store) as srv:
        yield srv


@pytest.fixture(scope="session")
def browser():
    """Debian's chromium driven by Playwright (skips with one line where it is absent). One for
    the session: the sync API runs an event loop in this thread, so a second ``sync_playwright``
    in the same process fails; every browser test takes this fixture."""
    import shutil

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"])
        yield b
        b.close()


def run_cli(*args, code: int = 0):
    """The CLI in-process (Typer's runner), asserting its exit code; for tests that do not need
    a real process (tests/procs.py runs one)."""
    from typer.testing import CliRunner

    from vsearch_cli.main import app

    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == code, result.output
    return result


@pytest.fixture
def built(tmp_path, synth_dir):
    """A store of its own (the 12 clips copied, indexed by the CLI) that a test may change."""
    import shutil

    store = tmp_path / "store"
    videos = tmp_path / "vids"
    shutil.copytree(synth_dir / "videos", videos)
    run_cli("index", videos, "--store", store, "--model", "tiny-clip", "--workers", "0", "--json")
    return store, videos


@pytest.fixture(scope="session")
def synth_server(synth_store):
    """`vsearch serve` on ``synth_store`` in a subprocess of its own, once per session (tests
    that need other server flags start their own ``LiveServer``)."""
    from tests.live_server import LiveServer

    with LiveServer(synth_store) as srv:
        yield srv
