"""The search page in a real browser: Debian's chromium driven by Playwright, on sample_data,
against `vsearch serve` in a subprocess of its own (``live_server``).

CI installs chromium (`.ci/run`); where it is absent these tests skip with one line.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)"),
]


@pytest.fixture(scope="module")
def server(sample_server):
    return sample_server


@pytest.fixture
def page(browser):
    pg = browser.new_page()
    pg.console_errors = []
    pg.on("console", lambda m: pg.console_errors.append(m.text) if m.type == "error" else None)
    yield pg
    pg.close()


def cards(page):
    page.wait_for_selector("article.card")
    return page.query_selector_all("article.card")


def test_a_query_shows_cards_with_loaded_thumbnails_and_the_url_round_trips(server, page):
    page.goto(server.url + "/")
    page.fill("#q", "a yellow triangle")
    page.press("#q", "Enter")
    page.wait_for_function("() => document.querySelectorAll('article.card').length > 0")
    first = cards(page)[0].query_selector(".name").inner_text()
    assert first.startswith("yellow_triangle_")
    assert parse_qs(urlparse(page.url).query)["q"] == ["a yellow triangle"]
    page.wait_for_function(
        "() => [...document.querySelectorAll('article.card img')].slice(0, 6).every(i => i.complete && i.naturalWidth > 0)"
    )
    # Reloading the URL gives the same first result (a search can be bookmarked and shared).
    page.reload()
    page.wait_for_selector("article.card")
    assert cards(page)[0].query_selector(".name").inner_text() == first


def test_opening_a_card_plays_from_the_segment_start(server, page):
    page.goto(server.url + "/?q=a+yellow+triangle")
    later = [c for c in cards(page) if "00:10–00:20" in c.query_selector(".meta").inner_text()]
    assert later, "a compilation hit at 00:10 was expected"
    later[0].query_selector("a.name").click()
    page.wait_for_url("**/v/**")
    if page.evaluate("() => document.getElementById('player').canPlayType('video/mp4') === ''"):
        pytest.skip("this chromium build cannot play mp4 (H.264), so there is no playback to check")
    page.wait_for_function(
        "() => document.getElementById('player').readyState >= 1 && document.getElementById('player').currentTime > 0"
    )
    t = page.evaluate("() => document.getElementById('player').currentTime")
    assert abs(t - 10.0) <= 1.0, t
    assert page.query_selector(".segments li.current") is not None
    # "back" returns to the results (kept by the page itself: the server sends no Referer).
    assert page.get_attribute("#back", "href") == "/?q=a+yellow+triangle"


def test_more_like_this_returns_the_clip_itself_first(server, page):
    page.goto(server.url + "/?q=a+green+square")
    second = cards(page)[1]
    seg = second.get_attribute("data-segment")
    second.query_selector("button.like").click()
    page.wait_for_url(f"**like={seg}**")
    page.wait_for_function(f"() => document.querySelector('article.card')?.dataset.segment === '{seg}'")
    assert cards(page)[0].get_attribute("data-segment") == seg


def test_an_image_upload_finds_its_object_first(server, page, tmp_path):
    """A frame of a yellow triangle finds yellow triangles first, its own clip among them. (The
    page's store uses the mean-pool demo: a still frame cannot say which way its triangle moves,
    and the four yellow triangles' order among themselves shifts with a decoder's rounding.)"""
    from PIL import Image

    from vsearch.video.decode import VideoReader

    clip = SAMPLE / "videos" / "yellow_triangle_up_01.mp4"
    with VideoReader(str(clip)) as r:
        Image.fromarray(r.get([20])[0]).save(tmp_path / "frame.png")
    page.goto(server.url + "/")
    page.set_input_files("#image", str(tmp_path / "frame.png"))
    page.wait_for_function("() => document.querySelectorAll('article.card').length >= 4")
    names = [c.get_attribute("data-path") for c in cards(page)[:4]]
    assert all(Path(n).name.startswith("yellow_triangle_") for n in names[:3]), names
    assert str(clip.resolve()) in names, names


def test_the_status_view(server, page):
    page.goto(server.url + "/status-page")
    page.wait_for_selector("#status tr[data-key='videos']")
    assert page.inner_text("#status tr[data-key='videos'] td:nth-child(2)") == "40"
    assert page.inner_text("#failures") == "none"


def test_every_page_works_under_the_content_security_policy(server, page):
    """The CSP blocks inline scripts and styles: each page must still render, with no violation."""
    violations = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    page.goto(server.url + "/?q=a+red+circle")
    cards(page)
    page.click("article.card a.name")
    page.wait_for_selector(".segments li")
    page.goto(server.url + "/status-page")
    page.wait_for_selector("#status tr[data-key='videos']")
    assert violations == []
    assert not [e for e in page.console_errors if "Refused" in e], page.console_errors


@pytest.fixture(scope="module")
def scene_server(tmp_path_factory):
    """A store whose scenes span two segments each (``test_refine.build_scene_store``), served."""
    from tests.live_server import LiveServer
    from tests.test_refine import build_scene_store

    store, _enc = build_scene_store(tmp_path_factory.mktemp("scene-page"), thumbnails=True)
    with LiveServer(store) as srv:
        yield srv


def test_a_card_shows_the_moment_and_the_video_page_plays_and_marks_it(scene_server, page):
    page.goto(scene_server.url + "/?q=a+red+circle+moving+right&segments=1")
    first = cards(page)[0]
    assert first.query_selector(".moment").inner_text() == "00:10–00:20"  # the scene, not its 5 s segment
    assert first.query_selector(".best").inner_text() in ("(best 00:10–00:15)", "(best 00:15–00:20)")
    first.query_selector("a.name").click()
    page.wait_for_url("**/v/**")
    assert parse_qs(urlparse(page.url).query)["end"] == ["20.000"]
    page.wait_for_function("() => !document.getElementById('moment-mark').hidden")
    bar = page.evaluate(
        """() => ['moment-mark', 'range-mark'].map(id => {
             const s = document.getElementById(id).style; return [parseFloat(s.left), parseFloat(s.width)]; })"""
    )
    assert bar[0] == pytest.approx([100 / 3, 100 / 3], abs=0.1)  # 10-20 s of 30 s
    assert bar[1][1] == pytest.approx(100 / 6, abs=0.1)  # the best 5 s segment, inside the moment
    assert bar[1][0] in (pytest.approx(100 / 3, abs=0.1), pytest.approx(50, abs=0.1))
    assert page.inner_text("#range-text").startswith("moment 00:10–00:20 · best segment 00:1")
    if page.evaluate("() => document.getElementById('player').canPlayType('video/mp4') === ''"):
        return  # this chromium cannot play H.264: the marks are what there is to check
    page.wait_for_function(
        "() => document.getElementById('player').readyState >= 1 && document.getElementById('player').currentTime > 0"
    )
    assert abs(page.evaluate("() => document.getElementById('player').currentTime") - 10.0) <= 1.0


def test_cards_show_the_moment_the_api_sends(server, page):
    from tests.live_server import get_json

    page.goto(server.url + "/?q=a+yellow+triangle")
    shown = [c.query_selector(".moment").inner_text() for c in cards(page)[:5]]
    hits = get_json(server.url + "/api/search?q=a+yellow+triangle&k=5")[1]["hits"]
    assert shown == [h["moment_range"] for h in hits]
