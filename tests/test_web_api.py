"""The JSON API's limits: k (one depth for the CLI and the API, exact messages), images (aspect
and size bounded before any scaling), uploads (refused at the cap, not after it is on disk),
and an OpenAPI document that says what the server sends. Over HTTP, `vsearch serve` in a subprocess."""

from __future__ import annotations

import io
import json
import socket

import numpy as np
import pytest

from tests.live_server import get_json, request
from vsearch.image_query import MAX_ASPECT, MAX_IMAGE_BYTES, fit_image
from vsearch.search import MAX_K
from vsearch.video.transforms import PixelSpec, to_pixels
from vsearch.web.app import MAX_PAGE, MULTIPART_ENVELOPE

BOUNDARY = "xxBOUNDARYxx"


@pytest.fixture(scope="module")
def server(synth_server):
    return synth_server


def png(width: int, height: int) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(out, format="PNG", optimize=True)
    return out.getvalue()


def multipart(payload: bytes) -> tuple[bytes, dict]:
    head = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\nContent-Type: image/png\r\n\r\n'
    body = head.encode() + payload + f"\r\n--{BOUNDARY}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


def test_k_messages_name_the_value_sent(server):
    assert get_json(f"{server.url}/api/search?q=x&k={MAX_PAGE + 1}") == (
        400, {"error": f"k must be between 1 and {MAX_PAGE}, got {MAX_PAGE + 1}"},
    )  # fmt: skip
    assert get_json(f"{server.url}/search?q=x&k={MAX_K + 1}") == (
        400,
        {"error": f"k must be between 1 and {MAX_K}, got {MAX_K + 1}"},
    )
    assert get_json(f"{server.url}/api/search?q=x&offset=-1")[1] == {"error": f"offset must be between 0 and {MAX_K}, got -1"}


def test_the_api_reaches_as_deep_as_the_cli(server):
    code, body = get_json(f"{server.url}/search?q=x&k={MAX_K}")  # the CLI's -k limit; was 'got 10001'
    assert code == 200 and len(body["hits"]) == 12
    code, body = get_json(f"{server.url}/api/search?q=x&k={MAX_PAGE}&offset={MAX_K - 1}")
    assert code == 200 and body["hits"] == [] and body["more"] is False


def test_more_like_a_missing_segment_is_a_404_like_a_missing_video(server):
    assert get_json(f"{server.url}/api/like/424242") == (404, {"error": "segment 424242 is not in the store"})
    assert get_json(f"{server.url}/api/video/424242") == (404, {"error": "video 424242 is not in the store"})


@pytest.mark.parametrize("size", [(1, 40_000), (40_000, 1), (1, 1_000_000), (MAX_ASPECT * 10 + 1, 10)])
def test_a_strip_image_is_a_400_before_any_scaling(server, size):
    data = png(*size)
    assert len(data) < 5_000  # a few hundred bytes that once asked for gigabytes
    body, headers = multipart(data)
    code, h, out = request(f"{server.url}/api/image?k=3", method="POST", data=body, headers=headers)
    assert code == 400 and h["content-type"] == "application/json", (code, out[:200])
    assert f"more than {MAX_ASPECT}:1 apart" in json.loads(out)["error"]


def test_an_image_at_the_aspect_limit_is_searched(server):
    body, headers = multipart(png(MAX_ASPECT * 10, 10))
    code, out = get_json(f"{server.url}/api/image?k=3", method="POST", data=body, headers=headers)
    assert code == 200 and len(out["hits"]) == 3


def test_fit_image_crops_before_scaling_to_the_model_size():
    rng = np.random.default_rng(0)
    strip = rng.integers(0, 256, (40, 800, 3), dtype=np.uint8)
    spec = PixelSpec(224, "crop", (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    fitted = fit_image(strip, spec)
    assert fitted.shape == (224, 224, 3) and fitted.dtype == np.uint8
    # The same pixels as scaling the whole strip to 224 x 4480 and cutting its centre.
    assert float((to_pixels(fitted[None], spec) - to_pixels(strip[None], spec)).abs().mean()) < 0.05
    assert fit_image(strip, PixelSpec(32, "squash", (0, 0, 0), (1, 1, 1))).shape == (32, 32, 3)


def _read_response(sock: socket.socket) -> tuple[int, bytes]:
    """(status, body) of the answer on ``sock``, read while the request is still unfinished."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the server closed the connection without an answer: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(x for x in head.lower().split(b"\r\n") if x.startswith(b"content-length:")).split(b":")[1])
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "the answer was cut short"
        body += chunk
    return int(head.split(b" ")[1]), body


def test_an_upload_over_the_cap_is_refused_on_its_content_length_before_the_body(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
        s.sendall(
            b"POST /api/image HTTP/1.1\r\nHost: localhost\r\nContent-Type: multipart/form-data; boundary=x\r\n"
            b"Content-Length: %d\r\n\r\n" % (1 << 30)
        )  # and not a byte of the gigabyte: the answer must come anyway (before: a wait for the body)
        code, rest = _read_response(s)
    assert code == 413 and b"larger than" in rest


def test_an_upload_without_a_length_is_cut_at_the_cap(server):
    chunks = [b"x" * (1 << 20)] * (MAX_IMAGE_BYTES >> 20) + [b"x" * (MULTIPART_ENVELOPE + 1)]
    assert sum(map(len, chunks)) == MAX_IMAGE_BYTES + MULTIPART_ENVELOPE + 1  # one byte past the cap
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
        s.sendall(
            b"POST /api/image HTTP/1.1\r\nHost: localhost\r\nContent-Type: multipart/form-data; boundary=x\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        for chunk in chunks:  # and no last chunk: the body never ends (before: a wait for it)
            s.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        code, rest = _read_response(s)
    assert code == 413 and b"larger than" in rest


def test_the_openapi_document_says_what_the_server_sends(server):
    doc = get_json(f"{server.url}/openapi.json")[1]
    ops = {(path, m): op for path, item in doc["paths"].items() for m, op in item.items()}
    assert all("422" not in op["responses"] for op in ops.values())
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    media = ops[("/media/{video_id}", "get")]["responses"]
    assert {"200", "206", "404", "409", "416"} <= set(media) and "application/json" not in media["200"]["content"]
    assert "video/mp4" in media["200"]["content"] and media["404"]["content"]["application/json"]
    assert list(ops[("/thumb/{segment_id}", "get")]["responses"]["200"]["content"]) == ["image/jpeg"]
    assert "413" in ops[("/api/image", "post")]["responses"] and "404" in ops[("/api/like/{segment_id}", "get")]["responses"]
    q = next(p for p in ops[("/api/search", "get")]["parameters"] if p["name"] == "q")
    assert q["required"] is True and q["schema"]["minLength"] == 1
    video_id = ops[("/api/video/{video_id}", "get")]["parameters"][0]["schema"]
    assert video_id["maximum"] == 2**63 - 1 and video_id["minimum"] == 1


def test_hits_carry_their_moment_and_the_card_opens_it(server):
    code, page = get_json(f"{server.url}/api/search?q=a+red+circle&k=3")
    assert code == 200 and page["hits"]
    for h in page["hits"]:
        assert h["moment_start"] <= h["start"] < h["end"] <= h["moment_end"] + 0.001
        assert h["moment_range"] and f"t={h['moment_start']:.3f}&end={h['moment_end']:.3f}&seg={h['segment_id']}" in h["page"]
    code, page = get_json(f"{server.url}/api/search?q=a+red+circle&k=3&refine=false")
    assert code == 200 and all(h["moment_start"] is None and h["moment_range"] is None for h in page["hits"])
    assert all(f"t={h['start']:.3f}&end={h['end']:.3f}" in h["page"] for h in page["hits"])
    seg = page["hits"][0]["segment_id"]
    code, like = get_json(f"{server.url}/api/like/{seg}?k=2")
    assert code == 200 and like["hits"][0]["moment_start"] is not None
