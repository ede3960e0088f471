"""Filters and composed queries through the JSON API and the page: the same SearchFilter the CLI
uses, carried in the URL, refused in one JSON line when unreadable. `vsearch serve` in a subprocess."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, quote, urlencode, urlparse

import pytest

from tests.live_server import get_json

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"


@pytest.fixture(scope="module")
def server(sample_server):
    return sample_server


def search(server, **params) -> tuple[int, dict]:
    return get_json(f"{server.url}/api/search?{urlencode(params, doseq=True)}")


def names(page: dict) -> list[str]:
    return [Path(h["path"]).stem for h in page["hits"]]


@pytest.mark.slow
def test_api_filters_narrow_the_results(server):
    one = str(SAMPLE / "videos" / "red_circle_left_01.mp4")
    code, page = search(server, q="a circle", k=50, **{"in": [one]})
    assert code == 200 and names(page) == ["red_circle_left_01"]
    code, page = search(server, q="a circle", k=50, min_duration=1000)
    assert code == 200 and page["hits"] == []
    code, both = search(server, q="a circle", k=50)
    durations = {h["path"]: h for h in both["hits"]}
    assert len(durations) > 5
    # Every hit carries its recording time (ISO, UTC): the sample files' mtime.
    assert all(h["recorded_at"] and h["recorded_at"].endswith("Z") for h in both["hits"])
    code, page = search(server, q="a circle", k=50, **{"in": [str(SAMPLE / "nowhere")]})
    assert code == 200 and page["hits"] == [] and page["warnings"][0].startswith("0 results: no indexed video under")


@pytest.mark.slow
def test_api_not_moves_red_circles_down(server):
    _, plain = search(server, q="a circle", k=40)
    _, away = search(server, q="a circle", k=40, **{"not": ["a red circle"]})

    def first_red(page):
        return min(i for i, n in enumerate(names(page)) if n.startswith("red_circle"))

    assert first_red(away) >= first_red(plain) + 5, (names(plain)[:10], names(away)[:10])
    assert "not a red circle" in away["query"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "params, message",
    [
        ({"after": "soon"}, "cannot read"),
        ({"min_duration": 9, "max_duration": 2}, "inverted"),
        ({"after": "2025", "before": "2024"}, "empty"),
    ],
)
def test_api_refuses_bad_filters_in_one_json_line(server, params, message):
    code, body = search(server, q="a circle", **params)
    assert code == 400 and message in body["error"] and "\n" not in body["error"]


@pytest.mark.slow
def test_page_carries_filters_in_the_url(server, browser):
    one = str(SAMPLE / "videos" / "red_circle_left_01.mp4")
    page = browser.new_page()
    errors: list[str] = []
    # Every request the page makes must succeed (the browser's own /favicon.ico probe aside).
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 and "favicon" not in r.url else None)
    try:
        # A URL with filters: the form shows them and the results obey them.
        page.goto(f"{server.url}/?q=a+circle&in={quote(one)}")
        page.wait_for_selector("article.card")
        assert [c.get_attribute("data-path") for c in page.query_selector_all("article.card")] == [one]
        assert page.input_value("#f-in") == one and page.evaluate("document.getElementById('refine').open")
        # Filling the form puts the filters in the URL.
        page.fill("#f-in", "")
        page.fill("#f-not", "a red circle")
        page.fill("#f-min", "1")
        page.click("button[type=submit]")
        page.wait_for_function("() => location.search.includes('not=')")
        q = parse_qs(urlparse(page.url).query)
        assert q["not"] == ["a red circle"] and q["min_duration"] == ["1"] and "in" not in q
        # The old cards stay until the new answer arrives: wait for the search to finish, not for a card.
        # (a function, not an expression: polling an expression evals it, which the page's CSP refuses)
        page.wait_for_function("() => document.getElementById('results').getAttribute('aria-busy') === 'false'")
        first = page.query_selector("article.card").get_attribute("data-path")
        assert "red_circle" not in first
    finally:
        page.close()
    assert not errors, errors
