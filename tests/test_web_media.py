"""``/media`` serves only the regular file the store indexed, as it was then: a symlink, a FIFO
or a changed file at the stored path is a JSON 404/409, never its bytes and never a hang."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from tests.live_server import LiveServer, get_json, request
from vsearch.ingest import index
from vsearch.store import Store


@pytest.fixture(scope="module")
def served(tmp_path_factory, synth_dir, tiny_encoder):
    """Four copied videos (the tests replace them), one indexed through a symlink."""
    work = tmp_path_factory.mktemp("media")
    videos = work / "videos"
    videos.mkdir()
    sources = sorted((synth_dir / "videos").iterdir())[:4]
    for src in sources[:3]:
        shutil.copy(src, videos / src.name)
    shutil.copy(sources[3], work / "elsewhere.mp4")
    os.symlink(work / "elsewhere.mp4", videos / "linked.mp4")
    with Store.open(work / "s") as st:
        index(st, [videos], tiny_encoder, workers=0)
    with LiveServer(work / "s") as srv:
        status = get_json(f"{srv.url}/api/status")[1]
        assert status["videos"] == 4
        yield srv, work


def video(served, name: str) -> tuple[str, str]:
    """(media URL, stored path) of the video called ``name``."""
    srv, work = served
    for vid in range(1, 5):
        code, v = get_json(f"{srv.url}/api/video/{vid}")
        if code == 200 and v["name"] == name:
            return f"{srv.url}/media/{vid}", v["path"]
    raise AssertionError(f"{name} is not in the store")


def names(served) -> list[str]:
    """The three copied videos, in the order the tests take them."""
    return sorted(p.name for p in (served[1] / "videos").iterdir() if p.name.endswith(".mp4") and p.name != "linked.mp4")


def test_a_symlink_swapped_in_is_refused_and_its_target_never_sent(served, tmp_path):
    url, path = video(served, names(served)[0])
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"TOP-SECRET " * 100)
    os.replace(path, path + ".bak")
    os.symlink(secret, path)
    code, headers, body = request(url)
    assert code == 409 and headers["content-type"] == "application/json", (code, body[:100])
    assert b"TOP-SECRET" not in body and "changed since it was indexed" in json.loads(body)["error"]


def test_a_fifo_is_refused_at_once_instead_of_blocking_a_worker(served):
    url, path = video(served, names(served)[1])
    os.replace(path, path + ".bak")
    os.mkfifo(path)
    code, headers, body = request(url, timeout=30)  # before: open() blocked until the client gave up
    assert code == 409 and headers["content-type"] == "application/json"
    assert "FIFO" in json.loads(body)["error"]
    assert request(url, method="HEAD", timeout=30)[0] == 409


def test_a_changed_or_deleted_file_is_not_served(served):
    url, path = video(served, names(served)[2])
    with open(path, "ab") as f:
        f.write(b"\0" * 10)  # same path, other bytes: the size and time no longer match
    code, _h, body = request(url)
    assert code == 409 and "changed since it was indexed" in json.loads(body)["error"]
    os.unlink(path)
    code, _h, body = request(url)
    assert code == 404 and "no longer on disk" in json.loads(body)["error"]


def test_a_video_indexed_through_a_symlink_still_plays(served):
    url, _path = video(served, "linked.mp4")
    data = (served[1] / "elsewhere.mp4").read_bytes()
    code, headers, body = request(url)
    assert code == 200 and headers["content-type"] == "video/mp4" and body == data


def test_range_positions_must_be_digits(served):
    url, _path = video(served, "linked.mp4")
    size = (served[1] / "elsewhere.mp4").stat().st_size
    code, headers, body = request(url, headers={"Range": "bytes=1_0-2_0"})
    assert code == 200 and "content-range" not in headers and len(body) == size  # ignored, not 206
    code, headers, body = request(url, headers={"Range": "bytes=10-20"})
    assert code == 206 and len(body) == 11
