"""`vsearch serve`: the JSON API over real HTTP (uvicorn), Range requests, traversal, tokens."""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request

import pytest

from vsearch.ingest import index
from vsearch.serve import is_loopback, start
from vsearch.store import Store
from vsearch.web.ranges import Unsatisfiable, parse_range


@pytest.fixture
def served(tmp_path, synth_dir, tiny_encoder):
    with Store.open(tmp_path / "s") as st:
        index(st, [synth_dir / "videos"], tiny_encoder, workers=0)
    server = start(tmp_path / "s", "127.0.0.1", 0)
    yield server, tmp_path
    server.stop()
    server.service.close()


def request(url, method="GET", headers=None, data=None):
    req = urllib.request.Request(url, method=method, headers=headers or {}, data=data)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def get_json(url, **kw):
    code, _h, body = request(url, **kw)
    return code, json.loads(body)


def test_search_status_and_the_earlier_api(served, synth_dir, tiny_encoder):
    server, tmp = served
    base = server.url
    code, body = get_json(f"{base}/search?q=a+red+circle&k=3")
    assert code == 200 and len(body["hits"]) == 3 and body["searched"] == 12
    assert set(body["hits"][0]) >= {"path", "score", "start", "end", "range", "thumb", "page", "media"}
    code, body = get_json(f"{base}/api/search?q=a+red+circle&k=5&segments=1")
    assert code == 200 and len(body["hits"]) == 5 and body["more"] is True
    code, page2 = get_json(f"{base}/api/search?q=a+red+circle&k=5&offset=5&segments=1")
    assert {h["segment_id"] for h in page2["hits"]}.isdisjoint({h["segment_id"] for h in body["hits"]})
    assert get_json(f"{base}/status")[1]["videos"] == 12
    assert get_json(f"{base}/health") == (200, {"ok": True})
    assert "paths" in get_json(f"{base}/openapi.json")[1]
    # New videos committed by an indexer show up without restarting the server.
    more = tmp / "more"
    more.mkdir()
    shutil.copy(next((synth_dir / "videos").iterdir()), more / "extra.mp4")
    with Store.open(tmp / "s") as st:
        index(st, [more], tiny_encoder, workers=0)
    assert get_json(f"{base}/search?q=x&k=50")[1]["searched"] == 13


def test_errors_are_json_with_the_right_codes(served):
    server, _tmp = served
    base = server.url
    assert get_json(f"{base}/search?q=%20")[0] == 400
    assert get_json(f"{base}/search?q=x&k=0")[0] == 400
    code, body = get_json(f"{base}/search?q=x&k=abc")
    assert code == 400 and body["error"] == "k must be a whole number, not 'abc'"
    code, headers, body = request(f"{base}/search?q=x", method="POST", data=b"{}")
    assert code == 405 and "GET" in headers.get("allow", headers.get("Allow", "")) and json.loads(body)["error"]
    code, body = get_json(f"{base}/nope")
    assert code == 404 and "no such page" in body["error"]
    assert get_json(f"{base}/api/video/999")[0] == 404
    assert get_json(f"{base}/media/999")[0] == 404
    assert get_json(f"{base}/api/like/999")[0] == 400


def test_more_like_this_returns_the_segment_itself_first(served):
    server, _tmp = served
    hits = get_json(f"{server.url}/api/search?q=a+green+square&k=3")[1]["hits"]
    like = get_json(f"{server.url}/api/like/{hits[1]['segment_id']}?k=3")[1]["hits"]
    assert like[0]["segment_id"] == hits[1]["segment_id"] and like[0]["score"] == pytest.approx(1.0, abs=1e-3)


def test_thumbnails_come_from_index_time_and_are_small_jpegs(served):
    server, tmp = served
    hit = get_json(f"{server.url}/api/search?q=a+red+circle&k=1")[1]["hits"][0]
    code, headers, body = request(server.url + hit["thumb"])
    assert code == 200 and headers["content-type"] == "image/jpeg" and body[:3] == b"\xff\xd8\xff"
    assert 200 < len(body) < 20_000
    with Store.open(tmp / "s") as st:
        assert st.thumbnail(hit["segment_id"]) == body  # stored by `index`, not made now


def test_video_files_by_id_with_range_requests(served):
    server, _tmp = served
    hit = get_json(f"{server.url}/api/search?q=a+red+circle&k=1")[1]["hits"][0]
    url = server.url + hit["media"]
    size = len(open(hit["path"], "rb").read())
    code, headers, body = request(url)
    assert code == 200 and headers["content-type"] == "video/mp4" and len(body) == size
    assert headers["accept-ranges"] == "bytes"
    code, headers, body = request(url, headers={"Range": "bytes=10-19"})
    assert code == 206 and headers["content-range"] == f"bytes 10-19/{size}" and body == open(hit["path"], "rb").read()[10:20]
    code, headers, body = request(url, headers={"Range": "bytes=-5"})
    assert code == 206 and len(body) == 5
    code, headers, _body = request(url, headers={"Range": f"bytes={size + 10}-"})
    assert code == 416 and headers["content-range"] == f"bytes */{size}"
    code, _headers, body = request(url, headers={"Range": "bytes=0-1,5-9"})
    assert code == 200 and len(body) == size  # multi-range: the whole file


@pytest.mark.parametrize(
    "path",
    ["/static/../vsearch.db", "/static/..%2f..%2fetc%2fpasswd", "/static/%2e%2e/%2e%2e/etc/passwd",
     "/static/..%5c..%5cvsearch.db", "/static/....//....//etc/passwd", "/media/..%2f1", "/thumb/..%2f..%2f1",
     "/static/%252e%252e%252fvsearch.db", "/v/../../etc/passwd"],
)  # fmt: skip
def test_no_path_traversal(served, path):
    server, _tmp = served
    code, _h, body = request(server.url + path)
    assert code in (400, 404), (path, code)
    assert b"root:" not in body and b"SQLite format" not in body


def test_image_upload_limits(served, monkeypatch):
    server, _tmp = served
    boundary = "xxBOUNDARYxx"

    def upload(payload: bytes):
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n'
                f"Content-Type: image/png\r\n\r\n"
            ).encode()
            + payload
            + f"\r\n--{boundary}--\r\n".encode()
        )
        return request(
            f"{server.url}/api/image?k=3", method="POST", data=body,
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )  # fmt: skip

    code, _h, body = upload(b"not an image")
    assert code == 400 and "not a readable image" in json.loads(body)["error"]
    import vsearch.web.app as web_app

    monkeypatch.setattr(web_app, "MAX_IMAGE_BYTES", 100)
    code, _h, body = upload(b"x" * 200)
    assert code == 413 and "larger than" in json.loads(body)["error"]


def test_a_token_is_required_when_set(tmp_path, synth_dir, tiny_encoder):
    with Store.open(tmp_path / "s") as st:
        index(st, [synth_dir / "videos"], tiny_encoder, workers=0)
    server = start(tmp_path / "s", "127.0.0.1", 0, token="s3cret")
    try:
        assert request(f"{server.url}/api/status")[0] == 401
        assert request(f"{server.url}/api/status", headers={"Authorization": "Bearer wrong"})[0] == 401
        assert request(f"{server.url}/api/status", headers={"Authorization": "Bearer s3cret"})[0] == 200
        code, headers, _b = request(f"{server.url}/?token=s3cret")
        assert code == 200 and "vsearch_token" in headers.get("set-cookie", "")
        assert request(f"{server.url}/health", headers={"Cookie": "vsearch_token=s3cret"})[0] == 200
    finally:
        server.stop()
        server.service.close()


def test_no_cors_headers_by_default(served):
    server, _tmp = served
    _code, headers, _b = request(f"{server.url}/api/status", headers={"Origin": "http://evil.example"})
    assert not any(k.lower().startswith("access-control-") for k in headers)


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


def test_loopback_detection():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")


def test_a_busy_port_is_one_line_naming_the_holder(served):
    import os

    from typer.testing import CliRunner

    from vsearch_cli.main import app

    server, tmp = served
    res = CliRunner().invoke(app, ["serve", "--store", str(tmp / "s"), "--port", str(server.port)])
    assert res.exit_code == 1
    lines = [x for x in res.output.strip().splitlines() if x.strip()]
    assert len(lines) == 1 and f"port {server.port}" in lines[0] and "already in use" in lines[0], res.output
    assert f"pid {os.getpid()}" in lines[0]


def test_a_store_without_thumbnails_gets_them_lazily_cached_outside_the_store(tmp_path, synth_dir, tiny_encoder, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with Store.open(tmp_path / "s") as st:
        index(st, [synth_dir / "videos"], tiny_encoder, workers=0, thumbnails=False)
    server = start(tmp_path / "s", "127.0.0.1", 0)
    try:
        hit = get_json(f"{server.url}/api/search?q=a+red+circle&k=1")[1]["hits"][0]
        code, headers, body = request(server.url + hit["thumb"])
        assert code == 200 and body[:3] == b"\xff\xd8\xff"
        cached = list((tmp_path / "cache" / "vsearch" / "thumbnails").glob("*.jpg"))
        assert len(cached) == 1 and cached[0].read_bytes() == body
        with Store.open(tmp_path / "s") as st:
            assert st.thumbnail(hit["segment_id"]) is None  # the server never writes to the store
    finally:
        server.stop()
        server.service.close()
