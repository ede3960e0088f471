"""`vsearch serve`: JSON over HTTP on loopback, errors as JSON, follows the store."""

import json
import shutil
import threading
import urllib.error
import urllib.request

import pytest

from vsearch.ingest import index
from vsearch.serve import SearchService, is_loopback, make_server
from vsearch.store import Store


@pytest.fixture
def server(tmp_path, synth_dir, tiny_encoder):
    with Store.open(tmp_path / "s") as st:
        index(st, [synth_dir / "videos"], tiny_encoder, workers=0)
    service = SearchService(tmp_path / "s")
    srv = make_server(service, "127.0.0.1", 0)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", tmp_path
    srv.shutdown()
    srv.server_close()
    service.close()


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_search_status_and_errors(server, synth_dir, tiny_encoder):
    base, tmp = server
    code, body = get(f"{base}/search?q=a+red+circle&k=3")
    assert code == 200 and len(body["hits"]) == 3 and body["searched"] == 12
    assert set(body["hits"][0]) >= {"path", "score", "start", "end", "range"}
    code, body = get(f"{base}/search?q=a+red+circle&k=5&segments=1")
    assert code == 200 and len(body["hits"]) == 5
    assert get(f"{base}/status")[1]["videos"] == 12
    assert get(f"{base}/health") == (200, {"ok": True})
    assert get(f"{base}/search?q=%20")[0] == 400
    assert get(f"{base}/search?q=x&k=0")[0] == 400
    assert get(f"{base}/search?q=x&k=abc")[0] == 400
    assert get(f"{base}/nope")[0] == 404
    # New videos committed by an indexer show up without restarting the server.
    more = tmp / "more"
    more.mkdir()
    shutil.copy(next((synth_dir / "videos").iterdir()), more / "extra.mp4")
    with Store.open(tmp / "s") as st:
        index(st, [more], tiny_encoder, workers=0)
    assert get(f"{base}/search?q=x&k=50")[1]["searched"] == 13


def test_loopback_detection():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")


def request(url, method):
    req = urllib.request.Request(url, method=method, data=b"{}" if method in ("POST", "PUT") else None)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, e.headers, json.loads(e.read())


def test_errors_are_json_with_the_right_codes(server):
    base, _tmp = server
    code, body = get(f"{base}/search?q=x&k=abc")
    assert code == 400 and body["error"] == "k must be a whole number, not 'abc'"
    code, headers, body = request(f"{base}/search?q=x", "POST")
    assert code == 405 and headers["Allow"] == "GET" and "use GET" in body["error"]
    code, _h, body = request(f"{base}/nope", "DELETE")
    assert code == 404 and "no such endpoint" in body["error"]
    code, _h, body = request(f"{base}/search", "OPTIONS")  # a method http.server does not know: JSON, not HTML
    assert code == 501 and body["error"]


def test_a_busy_port_is_one_line_naming_the_holder(server, tmp_path):
    import os

    from typer.testing import CliRunner

    from vsearch_cli.main import app

    base, tmp = server
    port = int(base.rsplit(":", 1)[1])
    res = CliRunner().invoke(app, ["serve", "--store", str(tmp / "s"), "--port", str(port)])
    assert res.exit_code == 1
    lines = [x for x in res.output.strip().splitlines() if x.strip()]
    assert len(lines) == 1 and f"port {port}" in lines[0] and "already in use" in lines[0], res.output
    assert f"pid {os.getpid()}" in lines[0]
