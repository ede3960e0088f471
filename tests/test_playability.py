"""Playability in a real browser (issue 24): an HEVC .mp4 that Chromium cannot play shows the
segment pictures with the reason instead of a dead player; an H.264 one plays.

Debian's chromium driven by Playwright against `vsearch serve` in a subprocess (as test_page).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.live_server import LiveServer

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)"),
    pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="Debian's ffmpeg writes the HEVC file"),
]


def _film(path: Path, *codec: str) -> Path:
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=10", "-t", "4",
         *codec, "-pix_fmt", "yuv420p", str(path)],
        check=True, timeout=120,
    )  # fmt: skip
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from vsearch.index_command import index_folders
    from vsearch.store import Store

    root = tmp_path_factory.mktemp("play")
    vids = root / "vids"
    vids.mkdir()
    _film(vids / "hevc.mp4", "-c:v", "libx265", "-tag:v", "hvc1", "-x265-params", "log-level=error")
    _film(vids / "avc.mp4", "-c:v", "libx264", "-preset", "veryfast")
    # MPEG-2 in MP4: "maybe" for video/mp4, a codec the page has no codec string for; only the
    # element's error event can tell.
    _film(vids / "mpeg2.mp4", "-c:v", "mpeg2video")
    store = root / "store"
    index_folders(store, [vids], model=str(SAMPLE / "model"), workers=0)
    with Store.open(store, create=False) as st:
        ids = {Path(v["path"]).name: v["id"] for v in st.list_videos()}
    with LiveServer(store) as srv:
        srv.ids = ids
        yield srv


@pytest.fixture
def page(browser):
    pg = browser.new_page(device_scale_factor=2)  # a HiDPI screen
    yield pg
    pg.close()


def test_hevc_shows_the_segment_pictures_with_the_reason(server, page):
    page.goto(f"{server.url}/v/{server.ids['hevc.mp4']}")
    # Either canPlayType refuses hvc1 outright, or the element's error event fires: both end here.
    page.wait_for_selector("#fallback:not([hidden])", timeout=30_000)
    why = page.inner_text("#fallback-why")
    assert "HEVC" in why or "hevc" in why, why
    assert page.is_hidden("#player-box")
    page.wait_for_function(
        "() => { const i = [...document.querySelectorAll('#strip img')];"
        " return i.length > 0 && i.every(x => x.complete && x.naturalWidth > 0); }"
    )
    # The picture is 320 px (the film's width) and declared 2x, so the browser sizes it as 160 CSS
    # px of twice the density: sharp on this HiDPI screen. A 1x picture would report 320.
    assert page.evaluate("() => [...document.querySelectorAll('#strip img')].map(x => x.naturalWidth)") == [160]


def test_h264_plays_instead(server, page):
    page.goto(f"{server.url}/v/{server.ids['avc.mp4']}")
    page.wait_for_selector("#title:not(:empty)")
    if page.evaluate("() => document.getElementById('player').canPlayType('video/mp4; codecs=\"avc1.640028\"') === ''"):
        pytest.skip("this chromium build cannot play H.264 either")
    page.wait_for_function("() => document.getElementById('player').readyState >= 1", timeout=30_000)
    assert page.is_hidden("#fallback") and page.is_visible("#player-box")


def test_a_file_the_decoder_refuses_falls_back_on_the_error_event(server, page):
    page.goto(f"{server.url}/v/{server.ids['mpeg2.mp4']}")
    page.wait_for_selector("#title:not(:empty)")
    page.wait_for_function(
        "() => !document.getElementById('fallback').hidden || document.getElementById('player').readyState >= 2",
        timeout=30_000,
    )
    if page.is_hidden("#fallback"):
        pytest.skip("this chromium build plays MPEG-2: no decoder error to fall back from")
    why = page.inner_text("#fallback-why")
    assert why.startswith("This browser could not play the file (") and "mpeg2video" in why, why
    assert page.is_hidden("#player-box")
