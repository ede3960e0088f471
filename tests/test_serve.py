"""`vsearch serve`: the JSON API over real HTTP, from a synth_server in a subprocess of its own
(``live_server``): search, Range requests, traversal, tokens, thumbnails, a busy port."""

from __future__ import annotations

import json
import shutil
import sys

import pytest

from tests import procs
from tests.live_server import LiveServer, get_json, request
from vsearch.ingest import index
from vsearch.store import Store
from vsearch.web.guard import allowed_hosts
from vsearch.web.ranges import Unsatisfiable, parse_range
from vsearch.web.server import is_loopback


def test_search_status_and_the_earlier_api(synth_server):
    base = synth_server.url
    code, body = get_json(f"{base}/search?q=a+red+circle&k=3")
    assert code == 200 and len(body["hits"]) == 3 and body["searched"] == 12
    assert set(body["hits"][0]) >= {"path", "score", "start", "end", "range", "thumb", "page", "media"}
    code, body = get_json(f"{base}/api/search?q=a+red+circle&k=5&segments=1")
    assert code == 200 and len(body["hits"]) == 5 and body["more"] is True
    code, page2 = get_json(f"{base}/api/search?q=a+red+circle&k=5&offset=5&segments=1")
    assert {h["segment_id"] for h in page2["hits"]}.isdisjoint({h["segment_id"] for h in body["hits"]})
    assert get_json(f"{base}/status")[1]["videos"] == 12
    assert get_json(f"{base}/health") == (200, {"ok": True})
    assert "/api/search" in get_json(f"{base}/openapi.json")[1]["paths"]


def test_new_videos_show_up_without_a_restart(tmp_path, synth_dir, tiny_encoder):
    videos = sorted((synth_dir / "videos").iterdir())
    first, more = tmp_path / "first", tmp_path / "more"
    first.mkdir(), more.mkdir()
    for v in videos[:3]:
        shutil.copy(v, first / v.name)
    shutil.copy(videos[3], more / videos[3].name)
    with Store.open(tmp_path / "s") as st:
        index(st, [first], tiny_encoder, workers=0)
    with LiveServer(tmp_path / "s") as srv:
        assert get_json(f"{srv.url}/api/status")[1]["videos"] == 3
        with Store.open(tmp_path / "s") as st:
            index(st, [more], tiny_encoder, workers=0)
        assert get_json(f"{srv.url}/search?q=x&k=50")[1]["searched"] == 4


def test_errors_are_json_with_the_right_codes(synth_server):
    base = synth_server.url
    assert get_json(f"{base}/search?q=%20")[0] == 400
    code, body = get_json(f"{base}/search?q=x&k=0")
    assert code == 400 and body["error"] == "k must be between 1 and 10000, got 0"
    code, body = get_json(f"{base}/search?q=x&k=abc")
    assert code == 400 and body["error"] == "k must be a whole number, not 'abc'"
    code, headers, body = request(f"{base}/search?q=x", method="POST", data=b"{}")
    assert code == 405 and "GET" in headers["allow"] and json.loads(body)["error"]
    code, body = get_json(f"{base}/nope")
    assert code == 404 and "no such page" in body["error"]
    assert get_json(f"{base}/api/video/999")[0] == 404
    assert get_json(f"{base}/media/999")[0] == 404
    assert get_json(f"{base}/api/like/999") == (404, {"error": "segment 999 is not in the store"})


def test_more_like_this_returns_the_segment_itself_first(synth_server):
    hits = get_json(f"{synth_server.url}/api/search?q=a+green+square&k=3")[1]["hits"]
    like = get_json(f"{synth_server.url}/api/like/{hits[1]['segment_id']}?k=3")[1]["hits"]
    assert like[0]["segment_id"] == hits[1]["segment_id"] and like[0]["score"] == pytest.approx(1.0, abs=1e-3)


def test_thumbnails_come_from_index_time_and_are_small_jpegs(synth_server, synth_store):
    hit = get_json(f"{synth_server.url}/api/search?q=a+red+circle&k=1")[1]["hits"][0]
    code, headers, body = request(synth_server.url + hit["thumb"])
    assert code == 200 and headers["content-type"] == "image/jpeg" and body[:3] == b"\xff\xd8\xff"
    assert 200 < len(body) < 20_000
    with Store.open(synth_store) as st:
        assert st.thumbnail(hit["segment_id"]) == body  # stored by `index`, not made now


def test_video_files_by_id_with_range_requests(synth_server):
    hit = get_json(f"{synth_server.url}/api/search?q=a+red+circle&k=1")[1]["hits"][0]
    url = synth_server.url + hit["media"]
    with open(hit["path"], "rb") as f:
        data = f.read()
    size = len(data)
    code, headers, body = request(url)
    assert code == 200 and headers["content-type"] == "video/mp4" and body == data
    assert headers["accept-ranges"] == "bytes"
    code, headers, body = request(url, headers={"Range": "bytes=10-19"})
    assert code == 206 and headers["content-range"] == f"bytes 10-19/{size}" and body == data[10:20]
    code, headers, body = request(url, headers={"Range": "bytes=-5"})
    assert code == 206 and body == data[-5:]
    code, headers, body = request(url, headers={"Range": f"bytes={size + 10}-"})
    assert code == 416 and headers["content-range"] == f"bytes */{size}" and json.loads(body)["error"]
    code, _headers, body = request(url, headers={"Range": "bytes=0-1,5-9"})
    assert code == 200 and body == data  # multi-range: the whole file


@pytest.mark.parametrize(
    "path",
    ["/static/../vsearch.db", "/static/..%2f..%2fetc%2fpasswd", "/static/%2e%2e/%2e%2e/etc/passwd",
     "/static/..%5c..%5cvsearch.db", "/static/....//....//etc/passwd", "/media/..%2f1", "/thumb/..%2f..%2f1",
     "/static/%252e%252e%252fvsearch.db", "/v/../../etc/passwd"],
)  # fmt: skip
def test_no_path_traversal(synth_server, path):
    code, _h, body = request(synth_server.url + path)
    assert code in (400, 404), (path, code)
    assert b"root:" not in body and b"SQLite format" not in body


def test_an_unreadable_image_is_a_400(synth_server):
    boundary = "xxBOUNDARYxx"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n'
        f"Content-Type: image/png\r\n\r\nnot an image\r\n--{boundary}--\r\n"
    ).encode()
    code, _h, out = request(
        f"{synth_server.url}/api/image?k=3", method="POST", data=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )  # fmt: skip
    assert code == 400 and "not a readable image" in json.loads(out)["error"]


def test_a_token_is_required_when_set(synth_store):
    with LiveServer(synth_store, "--token", "s3cret") as srv:
        assert request(f"{srv.url}/api/status")[0] == 401
        assert request(f"{srv.url}/api/status", headers={"Authorization": "Bearer wrong"})[0] == 401
        assert request(f"{srv.url}/api/status", headers={"Authorization": "Bearer s3cret"})[0] == 200
        code, headers, _b = request(f"{srv.url}/?token=s3cret")
        assert code == 303 and "vsearch_token=s3cret" in headers["set-cookie"]
        assert request(f"{srv.url}/health", headers={"Cookie": "vsearch_token=s3cret"})[0] == 200


def test_no_cors_headers_by_default(synth_server):
    _code, headers, _b = request(f"{synth_server.url}/api/status", headers={"Origin": "http://evil.example"})
    assert not any(k.startswith("access-control-") for k in headers)


def test_parse_range():
    assert parse_range(None, 100) is None
    assert parse_range("bytes=0-9", 100) == (0, 9)
    assert parse_range("bytes=90-", 100) == (90, 99)
    assert parse_range("bytes=90-500", 100) == (90, 99)
    assert parse_range("bytes=-10", 100) == (90, 99)
    assert parse_range("bytes=-500", 100) == (0, 99)
    assert parse_range("bytes=0-1,4-5", 100) is None
    assert parse_range("items=0-1", 100) is None
    assert parse_range("bytes=5-2", 100) is None
    assert parse_range("bytes=abc", 100) is None
    for bad in ("bytes=100-", "bytes=200-300", "bytes=-0"):
        with pytest.raises(Unsatisfiable):
            parse_range(bad, 100)


@pytest.mark.parametrize("header", ["bytes=1_0-2_0", "bytes=+1-2", "bytes=1-+2", "bytes=\u0661-2", "bytes=0x1-2", "bytes=-"])
def test_range_positions_are_ascii_digits_only(header):
    assert parse_range(header, 100) is None  # ignored: the whole file, as RFC 9110 allows


def test_loopback_detection_and_allowed_hosts():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    assert allowed_hosts("0.0.0.0", ["Box.Lan"]) == {"localhost", "127.0.0.1", "::1", "0.0.0.0", "box.lan"}
    assert allowed_hosts("[::1]") == {"localhost", "127.0.0.1", "::1"}


def test_a_busy_port_is_one_line_naming_the_holder(synth_server, synth_store):
    res = procs.run(
        [sys.executable, "-m", "vsearch", "serve", "--store", synth_store, "--port", synth_server.port], timeout=120, env=synth_server.env
    )
    assert res.returncode == 1, res.stderr
    lines = [x for x in (res.stdout + res.stderr).strip().splitlines() if x.strip()]
    assert len(lines) == 1 and f"port {synth_server.port}" in lines[0] and "already in use" in lines[0], lines
    assert f"pid {synth_server.proc.pid}" in lines[0]


def test_a_store_without_thumbnails_gets_them_lazily_cached_outside_the_store(tmp_path, synth_dir, tiny_encoder):
    with Store.open(tmp_path / "s") as st:
        index(st, [synth_dir / "videos"], tiny_encoder, workers=0, thumbnails=False)
    with LiveServer(tmp_path / "s", env={"XDG_CACHE_HOME": str(tmp_path / "cache")}) as srv:
        hit = get_json(f"{srv.url}/api/search?q=a+red+circle&k=1")[1]["hits"][0]
        code, headers, body = request(srv.url + hit["thumb"])
        assert code == 200 and body[:3] == b"\xff\xd8\xff"
    cached = list((tmp_path / "cache" / "vsearch" / "thumbnails").glob("*.jpg"))
    assert len(cached) == 1 and cached[0].read_bytes() == body
    with Store.open(tmp_path / "s") as st:
        assert st.thumbnail(hit["segment_id"]) is None  # the synth_server never writes to the store
