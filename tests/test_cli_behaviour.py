"""What the commands say and refuse: bad arguments before any model loads, an unreachable hub in one
short connect, help with an example for every command, readable titles, embed, synth, clip and export."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from vsearch_cli.main import app

from .conftest import run_cli

runner = CliRunner()
run = run_cli


def _all_commands():
    import typer.main

    group = typer.main.get_command(app)
    out = [[]]
    for name, cmd in group.commands.items():
        out.append([name])
        for sub in getattr(cmd, "commands", {}) or {}:
            out.append([name, sub])
    return out


SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"


def test_search_refuses_bad_arguments_before_loading_a_model(built, monkeypatch):
    from vsearch.models import registry

    store, _videos = built

    def no_loading(*a, **k):
        raise AssertionError("a model was loaded before the arguments were checked")

    monkeypatch.setattr(registry, "load_encoder", no_loading)
    from vsearch.models import query_path

    monkeypatch.setattr(query_path, "load", no_loading)
    assert "query is empty" in run("search", "   ", "--store", store, code=1).output
    assert "no re-ranker" in run("search", "x", "--rerank", "5", "--store", store, code=1).output
    res = run("search", "x", "--model", "openai/clip-vit-base-patch32", "--store", store, code=1)
    assert "not comparable" in res.output and len(res.output.strip().splitlines()) == 1


def test_an_unreachable_hub_fails_after_one_short_connect_with_a_hint(monkeypatch, tmp_path):
    """Bounded by work, not by the clock: one TCP connect with a timeout of seconds, and no
    download attempt (transformers' own retries take about 30 s)."""
    import socket

    import huggingface_hub
    from huggingface_hub import constants

    from vsearch.errors import EncoderLoadError
    from vsearch.models import load_encoder

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    connects, downloads = [], []
    real_connect = socket.create_connection

    def connect(address, timeout=None, *args, **kwargs):
        connects.append((address, timeout))
        return real_connect(address, timeout, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", connect)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda *a, **k: downloads.append(a))
    with pytest.raises(EncoderLoadError, match="cannot be reached") as err:
        load_encoder("someone/some-clip", cache=False)
    assert connects == [(("127.0.0.1", 9), 3.0)] and downloads == []
    assert "HF_HUB_OFFLINE=1" in str(err.value)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(EncoderLoadError, match="HF_HUB_OFFLINE is set"):
        load_encoder("someone/some-clip", cache=False)


def test_eval_writes_nothing_into_the_model_folder(tmp_path, micro_model_dir, synth_dir):
    model = tmp_path / "model"
    shutil.copytree(micro_model_dir, model)
    before = sorted(p.name for p in model.rglob("*"))
    run("eval", "retrieval", "--model", model, "--data", synth_dir / "captions.csv", "--workers", "0", "--json")
    assert sorted(p.name for p in model.rglob("*")) == before


@pytest.mark.parametrize("words", _all_commands(), ids=lambda w: " ".join(w) or "vsearch")
def test_every_help_renders_cleanly_with_an_example(words, monkeypatch):
    monkeypatch.setenv("COLUMNS", "120")
    res = run(*words, "--help")
    text = res.output
    assert "Example:" in text, f"`vsearch {' '.join(words)} --help` has no example"
    import re

    # Text cut out of a sentence leaves a space before punctuation ("Store folder .", "processes ; 0").
    cut = re.search(r"\w [.;,](\s|$)", text)
    assert cut is None, f"{cut.group(0)!r} in `vsearch {' '.join(words)} --help`"
    for fragment in ("<bool>", "<list[", "()"):
        assert fragment not in text, f"{fragment!r} in `vsearch {' '.join(words)} --help`"
    usage = next(line for line in text.splitlines() if "Usage:" in line)
    assert "{" not in usage, usage
    for line in text.splitlines():  # every option has words after it
        if not line.startswith("│"):
            continue
        cells = [c.strip() for c in line.strip("│ ").split("  ") if c.strip()]
        if cells and cells[0].startswith("--") and len(cells) == 1:
            raise AssertionError(f"an option without help: {line.strip()}")


def test_version_and_models_at_80_columns(monkeypatch):
    from vsearch.models.catalog import REGISTRY

    assert run("--version").output.startswith("vsearch ")
    monkeypatch.setenv("COLUMNS", "80")
    text = run("models").output
    for name in REGISTRY:
        assert f" {name} " in text, f"{name} truncated at 80 columns"


def test_search_title_is_short_and_says_what_was_searched(built, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    store, _videos = built
    long_query = "a red circle " * 150
    out = run("search", long_query, "--store", store, "-k", "3").output
    title = next(line for line in out.splitlines() if "“" in line)
    assert len(out.splitlines()) < 25 and "..." in title
    # (the title may wrap: a console made while COLUMNS was set elsewhere keeps that width)
    words = " ".join(out.split())
    assert "segments searched" in words and "video(s), best segment each" in words


def test_embed_takes_paths_as_a_shell_glob_gives_them(tmp_path, synth_dir):
    vids = sorted((synth_dir / "videos").glob("*.mp4"))[:3]
    out = tmp_path / "v.npy"
    res = json.loads(run("embed", *vids, "--model", "tiny-clip", "--out", out, "--workers", "0", "--json").stdout)
    assert res["rows"] == 3
    folder = json.loads(
        run("embed", synth_dir / "videos", "--model", "tiny-clip", "--out", tmp_path / "f.npy", "--workers", "0", "--json").stdout
    )
    assert folder["rows"] == 12
    assert "no such file" in run("embed", tmp_path / "nope.mp4", "--model", "tiny-clip", "--out", out, code=1).output


def test_clip_stream_copies_on_a_keyframe_and_reencodes_otherwise(tmp_path):
    from vsearch.video.decode import VideoReader

    sample = Path(__file__).resolve().parents[1] / "sample_data" / "videos" / "compilation_02.mp4"
    res = json.loads(run("clip", sample, "--start", "10", "--end", "20", "-o", tmp_path / "a.mp4", "--json").stdout)
    assert res["mode"] == "copy"
    res = json.loads(run("clip", sample, "--start", "11.3", "--end", "14", "-o", tmp_path / "b.mp4", "--json").stdout)
    assert res["mode"] == "reencode"
    with VideoReader(str(tmp_path / "a.mp4")) as a, VideoReader(str(sample)) as src:
        assert a.info.duration == pytest.approx(10.0, abs=0.1)
        # The first frame of the copy is the source's frame at 10 s (the red circle scene).
        first = a.get([0])[0].astype(int)
        at10 = src.get([150])[0].astype(int)
        assert abs(first - at10).mean() < 3
    with VideoReader(str(tmp_path / "b.mp4")) as b:
        assert b.info.duration == pytest.approx(2.7, abs=0.15)
    assert "must come after" in run("clip", sample, "--start", "5", "--end", "2", "-o", tmp_path / "c.mp4", code=1).output
    assert not (tmp_path / "c.mp4").exists()


def test_search_export_writes_each_moment(built, tmp_path):
    store, _videos = built
    out = tmp_path / "exported"
    hits = json.loads(run("search", "a red circle", "--store", store, "-k", "2", "--export", out, "--json").stdout)
    files = sorted(out.iterdir())
    assert len(files) == 2 and [h["export"] for h in hits] == [str(f) for f in files]
    assert files[0].name.startswith("01_") and files[0].stat().st_size > 500


def test_embed_segments_and_texts_file(tmp_path):
    out = tmp_path / "seg.npy"
    comp = SAMPLE / "videos" / "compilation_01.mp4"
    res = json.loads(run("embed", comp, "--model", "tiny-clip", "--segments", "--out", out, "--workers", "0", "--json").stdout)
    assert res["rows"] == 3  # a 30 s compilation: three 10 s segments
    rows = json.loads(out.with_suffix(".json").read_text())["rows"]
    assert [(r["start"], r["end"]) for r in rows] == [(0.0, 10.0), (10.0, 20.0), (20.0, 30.0)]
    texts = tmp_path / "t.txt"
    texts.write_text("a red circle\n\na blue square\n")
    res = json.loads(run("embed", "--texts-file", texts, "--model", "tiny-clip", "--out", tmp_path / "t.npy", "--json").stdout)
    v = np.load(tmp_path / "t.npy")
    assert res["rows"] == 2 and v.shape == (2, 64) and np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)


def test_synth_from_the_cli(tmp_path):
    run("synth", tmp_path / "s", "--count", "3", "--seed", "4")
    lines = (tmp_path / "s" / "captions.csv").read_text().splitlines()
    assert lines[0] == "path,caption" and len(lines) == 4
    assert len(list((tmp_path / "s" / "videos").glob("*.mp4"))) == 3
    run("synth", tmp_path / "d", "--direction-set", "--count", "1")
    assert len((tmp_path / "d" / "captions.csv").read_text().splitlines()) == 17  # 16 held-out scenes
