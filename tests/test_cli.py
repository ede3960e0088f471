"""The command line: exit codes, --json output, help text, and the installed console script."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from vsearch_cli.main import app

from .videos import write_indexed

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


def run(*args, ok=True):
    result = runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


def out_json(result):
    return json.loads(result.stdout)


@pytest.fixture
def built(tmp_path, synth_dir):
    store = tmp_path / "store"
    videos = tmp_path / "videos"
    shutil.copytree(synth_dir / "videos", videos)
    result = run("index", videos, "--store", store, "--model", "tiny-clip", "--workers", "1", "--json")
    return store, videos, out_json(result)


def test_index_status_search_remove_check(built):
    store, videos, report = built
    assert report["counts"] == {"indexed": 12, "unchanged": 0, "moved": 0, "removed": 0, "failed": 0, "segments": 12, "not_video": 0}
    assert report["failed"] == [] and not report["interrupted"]
    status = out_json(run("status", "--store", store, "--json"))
    assert status["videos"] == 12 and status["encoder"]["name"] == "mean-pool:tiny-clip"
    hits = out_json(run("search", "a red circle", "-k", "3", "--store", store, "--json"))
    assert len(hits) == 3 and all(h["path"].startswith(str(videos)) for h in hits)
    assert re.fullmatch(r"\d\d:\d\d–\d\d:\d\d", hits[0]["range"])
    segs = out_json(run("search", "a red circle", "-k", "5", "--segments", "--store", store, "--json"))
    assert len(segs) == 5
    victim = hits[0]["path"]
    removed = out_json(run("remove", victim, "--store", store, "--json"))
    assert removed == {"removed": [victim]}
    check = out_json(run("check", "--store", store, "--json"))
    assert check["ok"] and check["db_vectors"] == check["index_vectors"] == 11
    again = out_json(run("index", videos, "--store", store, "--json"))  # store's own model is reused
    assert again["counts"]["indexed"] == 1 and again["counts"]["unchanged"] == 11
    human = run("search", "a red circle", "--store", store)
    assert "score" in human.stdout and "00:00–00:03" in human.stdout


def test_failed_files_give_exit_code_3_and_are_listed(tmp_path):
    d = tmp_path / "v"
    write_indexed(d / "good.mp4", n=10)
    (d / "broken.mp4").write_bytes(b"\x00" * 100)
    result = run("index", d, "--store", tmp_path / "s", "--model", "tiny-clip", "--workers", "0", "--json", ok=False)
    assert result.exit_code == 3
    data = out_json(result)
    assert data["counts"]["indexed"] == 1 and data["failed"][0]["path"].endswith("broken.mp4")
    status = run("status", "--store", tmp_path / "s", "--failures")
    assert "broken.mp4" in status.stdout and "not a readable video" in status.stdout


def test_errors_are_one_line_with_exit_code_1(tmp_path):
    result = run("search", "x", "--store", tmp_path / "none", ok=False)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: no vsearch store") and "Traceback" not in result.output
    result = run("index", tmp_path, "--store", tmp_path / "s", "--model", "no-such-model", ok=False)
    assert result.exit_code == 1 and "unknown model" in result.stderr


def test_search_refuses_empty_query_and_bad_k(built):
    store = built[0]
    assert "empty" in run("search", "  ", "--store", store, ok=False).stderr
    assert "k must be" in run("search", "x", "-k", "0", "--store", store, ok=False).stderr


def test_models_lists_families_without_importing_torch():
    code = "import sys; from vsearch_cli.main import app; from typer.testing import CliRunner; " \
        "r = CliRunner().invoke(app, ['models', '--json']); print(r.stdout.strip()); print('torch' in sys.modules)"  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout.splitlines()
    data = json.loads(out[0])
    assert {m["name"] for m in data["models"]} >= {"clip-b32", "tiny-clip"}
    assert "mean-pool" in data["families"]
    assert out[1] == "False"


def test_embed_videos_and_texts(tmp_path, synth_dir):
    videos = sorted((synth_dir / "videos").iterdir())[:3]
    args = [a for v in videos for a in ("--videos", v)]
    res = out_json(run("embed", "--model", "tiny-clip", *args, "--out", tmp_path / "v.npy", "--workers", "0", "--json"))
    assert res["rows"] == 3
    arr = np.load(tmp_path / "v.npy")
    assert arr.shape == (3, 64) and np.allclose(np.linalg.norm(arr, axis=1), 1, atol=1e-5)
    side = json.loads((tmp_path / "v.json").read_text())
    assert [r["path"] for r in side["rows"]] == [str(v) for v in videos] and side["normalized"]
    run("embed", "--model", "tiny-clip", "--texts", "a red circle", "--texts", "a dog", "--out", tmp_path / "t.npy")
    assert np.load(tmp_path / "t.npy").shape == (2, 64)
    both = run("embed", "--model", "tiny-clip", "--texts", "x", "--videos", videos[0], "--out", tmp_path / "z.npy", ok=False)
    assert both.exit_code == 1 and "exactly one" in both.stderr


def test_every_command_has_help_and_is_in_the_readme():
    import typer.main

    group = typer.main.get_command(app)
    readme = (REPO / "README.md").read_text()
    names = []
    for name, cmd in group.commands.items():
        sub = getattr(cmd, "commands", None)
        names += [f"{name} {s}" for s in sub] if sub else [name]
        assert (cmd.help or "").strip(), name
    for name in names:
        assert f"vsearch {name}" in readme, f"`vsearch {name}` is not documented in README.md"


def test_installed_console_script(built):
    store = built[0]
    exe = shutil.which("vsearch", path=str(Path(sys.executable).parent)) or shutil.which("vsearch")
    assert exe, "the `vsearch` console script is not installed"
    proc = subprocess.run(
        [exe, "search", "a blue square", "--store", str(store), "--json", "-k", "2"], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert len(json.loads(proc.stdout)) == 2
    synth = shutil.which("vsearch-synth", path=str(Path(sys.executable).parent))
    assert synth


def test_status_and_help_do_not_import_torch(built):
    store = built[0]
    code = (
        "import sys; from vsearch_cli.main import app; from typer.testing import CliRunner; "
        f"r = CliRunner().invoke(app, ['status', '--store', {str(store)!r}, '--json']); "
        "h = CliRunner().invoke(app, ['--help']); "
        "print(r.exit_code, h.exit_code, 'torch' in sys.modules, 'transformers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout.split()
    assert out == ["0", "0", "False", "False"]


def test_missing_faiss_names_the_extras(monkeypatch):
    import vsearch.store.vectors as vectors
    from vsearch.errors import FaissMissing

    monkeypatch.setattr(vectors, "_faiss", None)
    monkeypatch.setitem(sys.modules, "faiss", None)  # as if neither faiss-cpu nor faiss-gpu were installed
    with pytest.raises(FaissMissing, match=r"vsearch\[cpu\].*vsearch\[gpu\]"):
        vectors.import_faiss()


def test_plain_index_and_search_never_import_ray(tmp_path):
    # Ray is for --ray only: its import alone costs about a second and a few hundred MB.
    sample = Path(__file__).resolve().parents[1] / "sample_data"
    vids = tmp_path / "v"
    vids.mkdir()
    for f in sorted((sample / "videos").glob("red_*.mp4"))[:2]:
        shutil.copy(f, vids / f.name)
    store = tmp_path / "s"
    code = (
        "import sys; from vsearch_cli.main import app; from typer.testing import CliRunner; "
        f"a = CliRunner().invoke(app, ['index', {str(vids)!r}, '--model', {str(sample / 'model')!r}, '--store', {str(store)!r}]); "
        f"b = CliRunner().invoke(app, ['search', 'a red circle', '--store', {str(store)!r}, '--json']); "
        "print(a.exit_code, b.exit_code, 'ray' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.stdout.split()[-3:] == ["0", "0", "False"], out.stderr[-2000:]
