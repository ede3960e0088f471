"""What every request passes before a route: the Host check (DNS rebinding), tokens (any bytes,
any case of Bearer, ?token= dropped from the URL), security headers, HEAD, no Host-built
redirects, and ids past 64 bits. Over HTTP, against `vsearch serve` in a subprocess."""

from __future__ import annotations

import json

import pytest

from tests.live_server import LiveServer, get_json, raw, request
from vsearch.web.guard import CSP

TOKEN = "café"


@pytest.fixture(scope="module")
def locked(synth_store):
    """A synth_server with a non-ASCII token and one extra host name."""
    with LiveServer(synth_store, "--token", TOKEN, "--allow-host", "Box.Lan") as srv:
        yield srv


def get(port: int, path: str, *headers: bytes, method: bytes = b"GET"):
    head = b"%s %s HTTP/1.1\r\n" % (method, path.encode()) + b"".join(h + b"\r\n" for h in headers) + b"Connection: close\r\n\r\n"
    return raw(port, head)


@pytest.mark.parametrize(
    "host", [b"attacker.example", b"attacker.example:80", b"localhost.attacker.example", b"127.0.0.1.nip.io"]
)
def test_a_foreign_host_name_is_refused_with_json(synth_server, host):
    code, headers, body = get(synth_server.port, "/api/status", b"Host: " + host)
    assert code == 400 and headers["content-type"] == "application/json"
    assert "does not answer to the host name" in json.loads(body)["error"]
    assert b"vsearch.db" not in body and b'"store"' not in body


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "[::1]", "LOCALHOST"])
def test_loopback_names_are_answered_with_any_port(synth_server, host):
    for value in (host, f"{host}:{synth_server.port}"):
        code, _h, body = get(synth_server.port, "/api/status", b"Host: " + value.encode())
        assert code == 200 and json.loads(body)["videos"] == 12, value


def test_allow_host_adds_a_name(locked):
    auth = b"X-Vsearch-Token: " + TOKEN.encode()
    assert get(locked.port, "/health", b"Host: box.lan:8080", auth)[0] == 200
    assert get(locked.port, "/health", b"Host: other.lan", auth)[0] == 400


def test_no_redirect_is_built_from_the_host_header(synth_server):
    code, headers, body = get(synth_server.port, "/static/app.js/", b"Host: localhost")
    assert code == 404 and "location" not in headers and json.loads(body)["error"]


@pytest.mark.parametrize(
    "path", ["/api/video/9223372036854775808", "/media/9223372036854775808", "/thumb/9223372036854775808",
             "/api/like/9223372036854775808", "/api/video/-1", "/media/99999999999999999999999"],
)  # fmt: skip
def test_ids_past_64_bits_are_a_json_404(synth_server, path):
    code, headers, body = request(synth_server.url + path)
    assert code == 404 and headers["content-type"] == "application/json", (code, body[:200])
    assert "is not in the store" in json.loads(body)["error"]


def test_a_non_ascii_token_logs_in_by_header_bearer_and_url(locked):
    utf8 = TOKEN.encode()
    assert get(locked.port, "/api/status", b"Host: localhost", b"X-Vsearch-Token: " + utf8)[0] == 200
    for scheme in (b"Bearer", b"bearer", b"BEARER"):
        assert get(locked.port, "/api/status", b"Host: localhost", b"Authorization: " + scheme + b" " + utf8)[0] == 200
    code, headers, _b = request(f"{locked.url}/?q=a+red+circle&token=caf%C3%A9")
    assert code == 303 and headers["location"] == "/?q=a+red+circle"  # the token leaves the address bar
    cookie = headers["set-cookie"].split(";")[0]
    assert "httponly" in headers["set-cookie"].lower() and "samesite=strict" in headers["set-cookie"].lower()
    assert request(f"{locked.url}/api/status", headers={"Cookie": cookie})[0] == 200


@pytest.mark.parametrize(
    "header", [b"X-Vsearch-Token: th\xc3\xa9", b"Authorization: Bearer \xff\xfe", b"Cookie: vsearch_token=caf%C3%A8", b"X-Vsearch-Token: caf"]
)  # fmt: skip
def test_a_wrong_token_of_any_bytes_is_a_json_401_with_www_authenticate(locked, header):
    code, headers, body = get(locked.port, "/api/status", b"Host: localhost", header)
    assert code == 401 and headers["content-type"] == "application/json" and json.loads(body)["error"]
    assert headers["www-authenticate"].startswith("Bearer")


def test_a_wrong_token_in_the_url_is_a_401(locked):
    code, headers, body = request(f"{locked.url}/?token=th%C3%A9")
    assert code == 401 and headers["www-authenticate"].startswith("Bearer") and "set-cookie" not in headers


def test_security_headers_on_every_response(synth_server, locked):
    hit = get_json(f"{synth_server.url}/api/search?q=a+red+circle&k=1")[1]["hits"][0]
    urls = [f"{synth_server.url}{p}" for p in ("/", "/api/status", "/nope", "/static/app.js", hit["thumb"], hit["media"])]
    urls.append(f"{locked.url}/api/status")  # a 401
    for url in urls:
        _code, headers, _b = request(url)
        assert headers["x-content-type-options"] == "nosniff", url
        assert headers["content-security-policy"] == CSP and "frame-ancestors 'none'" in CSP, url
        assert headers["referrer-policy"] == "no-referrer", url


def test_head_answers_every_get_route_without_a_body(synth_server):
    hit = get_json(f"{synth_server.url}/api/search?q=a+red+circle&k=1")[1]["hits"][0]
    for path in ("/", "/api/status", "/api/search?q=x", f"/api/video/{hit['video_id']}", hit["thumb"], hit["media"], "/health"):
        code, headers, body = request(synth_server.url + path, method="HEAD")
        g_code, g_headers, g_body = request(synth_server.url + path)
        assert code == g_code == 200 and body == b"", path
        assert headers["content-type"] == g_headers["content-type"], path
        if path in (hit["thumb"], hit["media"]):
            assert int(headers["content-length"]) == len(g_body), path
