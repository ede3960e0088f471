"""A newcomer's first hour: the data-safety and honesty fixes, each on real files and a real store."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vsearch_cli.main import app

runner = CliRunner()


def run(*args, code=0):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == code, result.output
    return result


@pytest.fixture
def built(tmp_path, synth_dir):
    store = tmp_path / "store"
    videos = tmp_path / "vids"
    shutil.copytree(synth_dir / "videos", videos)
    run("index", videos, "--store", store, "--model", "tiny-clip", "--workers", "0", "--json")
    return store, videos


def count(store) -> int:
    return json.loads(run("status", "--store", store, "--json").stdout)["videos"]


def test_a_missing_folder_removes_nothing_and_fails(built, tmp_path):
    store, videos = built
    gone = tmp_path / "unmounted"
    videos.rename(gone)  # the drive is not mounted: the folder the store knows is not there
    res = run("index", videos, "--store", store, code=1)
    assert "does not exist" in res.output and "12 videos" in res.output and "vsearch remove" in res.output
    assert len(res.output.strip().splitlines()) == 1
    assert count(store) == 12


def test_an_empty_mount_point_removes_nothing_and_fails(built, tmp_path):
    store, videos = built
    holding = tmp_path / "elsewhere"
    holding.mkdir()
    for f in videos.iterdir():
        f.rename(holding / f.name)  # the mount point exists but is empty
    res = run("index", videos, "--store", store, code=1)
    assert "holds no videos" in res.output and "nothing was" in res.output
    assert count(store) == 12


def test_files_missing_inside_a_present_root_are_still_removed(built):
    store, videos = built
    victim = sorted(videos.iterdir())[0]
    victim.unlink()
    report = json.loads(run("index", videos, "--store", store, "--json").stdout)
    assert report["counts"]["removed"] == 1 and count(store) == 11


def test_a_folder_moved_across_roots_is_recognised_and_search_flags_stale_paths(built, tmp_path):
    store, videos = built
    moved = tmp_path / "vids2"
    videos.rename(moved)
    report = json.loads(run("index", moved, "--store", store, "--json").stdout)
    assert report["counts"]["moved"] == 12 and report["counts"]["indexed"] == 0
    assert count(store) == 12
    hits = json.loads(run("search", "a red circle", "--store", store, "-k", "3", "--json").stdout)
    assert all(h["path"].startswith(str(moved)) and h["missing"] is False for h in hits)
    # A file deleted behind the store's back: search still shows it, flagged, and list says so.
    victim = Path(hits[0]["path"])
    victim.unlink()
    again = runner.invoke(app, ["search", "a red circle", "--store", str(store), "-k", "3", "--json"])
    flagged = [h for h in json.loads(again.stdout) if h["path"] == str(victim)]
    assert flagged and flagged[0]["missing"] is True
    listed = json.loads(run("list", "--missing", "--store", store, "--json").stdout)
    assert [v["path"] for v in listed] == [str(victim)] and listed[0]["exists"] is False
    assert len(json.loads(run("list", "--store", store, "--json").stdout)) == 12


def test_check_finds_and_repairs_a_damaged_index_file_and_status_warns(built):
    store, _videos = built
    (faiss_file,) = (store / "index").glob("vectors-*.faiss")
    faiss_file.write_bytes(bytes(range(100)))
    res = run("check", "--store", store, "--json", code=1)
    data = json.loads(res.stdout)
    assert data["ok"] is False and "cannot be read" in data["index_file_problem"]
    status = json.loads(run("status", "--store", store, "--json").stdout)
    assert status["index"]["problem"]
    assert "damaged" in run("status", "--store", store).output
    fixed = json.loads(run("check", "--store", store, "--repair", "--json").stdout)
    assert fixed["repaired"] is True
    after = json.loads(run("check", "--store", store, "--json").stdout)
    assert after["ok"] is True and after["index_vectors"] == 12


def test_a_refused_run_leaves_no_store_behind(tmp_path, synth_dir):
    store = tmp_path / "S"
    res = run("index", synth_dir / "videos", "--model", "no-such-model", "--store", store, code=1)
    assert "unknown model" in res.output
    assert not store.exists()
    res = run("index", tmp_path / "nowhere", "--model", "tiny-clip", "--store", store, code=1)
    assert "no such file or folder" in res.output and not store.exists()


def test_removing_a_path_that_was_never_indexed_says_so(built, tmp_path):
    store, _videos = built
    res = run("remove", tmp_path / "never", "--store", store, code=1)
    assert "not in the store" in res.output and res.output.strip().endswith(".")
    assert count(store) == 12


def test_search_refuses_bad_arguments_before_loading_a_model(built, monkeypatch):
    import time

    from vsearch.models import registry

    store, _videos = built

    def no_loading(*a, **k):
        raise AssertionError("a model was loaded before the arguments were checked")

    monkeypatch.setattr(registry, "load_encoder", no_loading)
    from vsearch.models import query_path

    monkeypatch.setattr(query_path, "load", no_loading)
    t0 = time.perf_counter()
    assert "query is empty" in run("search", "   ", "--store", store, code=1).output
    assert "no re-ranker" in run("search", "x", "--rerank", "5", "--store", store, code=1).output
    res = run("search", "x", "--model", "openai/clip-vit-base-patch32", "--store", store, code=1)
    assert "not comparable" in res.output and len(res.output.strip().splitlines()) == 1
    assert time.perf_counter() - t0 < 5


def test_an_unreachable_hub_fails_in_seconds_with_a_hint(monkeypatch, tmp_path):
    import time

    from huggingface_hub import constants

    from vsearch.errors import EncoderLoadError
    from vsearch.models import load_encoder

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    t0 = time.perf_counter()
    with pytest.raises(EncoderLoadError, match="cannot be reached") as err:
        load_encoder("someone/some-clip", cache=False)
    assert time.perf_counter() - t0 < 5
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


def _all_commands():
    import typer.main

    group = typer.main.get_command(app)
    out = [[]]
    for name, cmd in group.commands.items():
        out.append([name])
        for sub in getattr(cmd, "commands", {}) or {}:
            out.append([name, sub])
    return out


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
    assert "segments searched" in out and "video(s), best segment each" in out


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


def test_thumbnails_are_made_at_index_time_removed_with_their_video_and_backfilled(tmp_path, synth_dir):
    store = tmp_path / "s"
    vids = tmp_path / "v"
    shutil.copytree(synth_dir / "videos", vids)
    run("index", vids, "--store", store, "--model", "tiny-clip", "--workers", "0", "--no-thumbnails")
    assert json.loads(run("check", "--store", store, "--json").stdout)["without_thumbnail"] == 12
    made = json.loads(run("thumbnails", "--store", store, "--json").stdout)
    assert made == {"made": 12, "failed": 0}
    data = json.loads(run("check", "--store", store, "--json").stdout)
    assert data["ok"] and data["without_thumbnail"] == 0
    victim = sorted(vids.iterdir())[0]
    run("remove", victim, "--store", store)
    status = json.loads(run("status", "--store", store, "--json").stdout)
    assert status["thumbnails"] == 11  # removed with its video


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


def test_store_location_precedence(tmp_path, monkeypatch, synth_dir):
    """--store, else $VSEARCH_HOME, else $XDG_DATA_HOME/vsearch, else ~/.local/share/vsearch."""
    one = sorted((synth_dir / "videos").iterdir())[:1]
    vids = tmp_path / "v"
    vids.mkdir()
    shutil.copy(one[0], vids / one[0].name)
    monkeypatch.delenv("VSEARCH_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    args = ["--model", "tiny-clip", "--workers", "0"]
    run("index", vids, *args)
    assert (tmp_path / "home" / ".local" / "share" / "vsearch" / "vsearch.db").is_file()
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    run("index", vids, *args)
    assert (tmp_path / "xdg" / "vsearch" / "vsearch.db").is_file()
    monkeypatch.setenv("VSEARCH_HOME", str(tmp_path / "vh"))
    run("index", vids, *args)
    assert (tmp_path / "vh" / "vsearch.db").is_file()
    run("index", vids, *args, "--store", tmp_path / "explicit")
    assert (tmp_path / "explicit" / "vsearch.db").is_file()
    assert json.loads(run("status", "--json").stdout)["store"] == str((tmp_path / "vh").resolve())
