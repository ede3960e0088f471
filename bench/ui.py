"""The search page, measured in a real browser (Debian's chromium) on a store of 50,000 segments.

    python bench/ui.py --work /tmp/vsearch-ui [--segments 50000]

Builds the store once: `sample_data` indexed with the sample model, then copied (as symlinked
files with their own rows, vectors jittered and re-normalised, thumbnails reused) up to the
wanted size. Starts `vsearch serve` as its own process, then measures with Playwright:

- page load (navigation to `load`), baseline: the same HTML fetched by urllib;
- a text query to cards on screen with their thumbnails loaded (p50 of 15), baseline: the
  `/api/search` JSON call alone;
- more-like-this (p50 of 15 API calls: no text encoding), baseline: raw FAISS search of the
  same vector in this process;
- the first byte of a video seek (a Range request in the middle of a file; p50 of 30),
  baseline: reading the same bytes from disk;
- the server's resident memory before any page and with the page open (ratio).

Screenshots of the results and of a video page go to WORK/. Targets (2 cores, model loaded):
cards ≤ 300 ms p50, more-like-this ≤ 100 ms, seek first byte ≤ 50 ms, memory ≤ 1.2x.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data"
QUERIES = ["a yellow triangle", "a red circle", "a blue square moving up", "a green circle", "a red square moving left"]


def build(work: Path, target: int) -> Path:
    from vsearch.ingest import index
    from vsearch.models import load_encoder
    from vsearch.store import Store
    from vsearch.store.store import SegmentWrite, VideoWrite

    store_dir = work / "store"
    if (work / "built.json").exists():
        return store_dir
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    with Store.open(store_dir) as st:
        index(st, [SAMPLE / "videos"], load_encoder(SAMPLE / "model"), workers=0)
        rec = st.encoder()
        base = []
        for v in st.list_videos():
            info = st.video(v["id"])
            segs = []
            for g in info["segments"]:
                segs.append((g, st.segment_vector(g["segment_id"]), st.thumbnail(g["segment_id"])))
            base.append((info, segs))
        per_copy = sum(len(s) for _i, s in base)
        copies = max(0, (target - per_copy) // per_copy)
        rng = np.random.default_rng(0)
        links = work / "links"
        batch: list = []
        for c in range(copies):
            d = links / f"c{c:05d}"
            d.mkdir(parents=True)
            for info, segs in base:
                p = d / os.path.basename(info["path"])
                p.symlink_to(info["path"])
                writes = []
                for g, vec, thumb in segs:
                    v = vec + rng.normal(0, 0.02, vec.shape).astype(np.float32)
                    v /= np.linalg.norm(v)
                    writes.append(
                        SegmentWrite(g["index"], g["start"], g["end"], 0, 1, [0], v, (thumb, 64, 48) if thumb else None)
                    )
                vinfo = {"duration": info["duration"], "fps": 15.0, "num_frames": 1, "width": info["width"],
                         "height": info["height"], "codec": info["codec"], "backend": "copy"}  # fmt: skip
                batch.append(VideoWrite(str(p), info["size"], 0, f"copy-{c}-{info['id']}", vinfo, writes))
            if len(batch) >= 400:
                st.commit(rec.id, batch)
                batch = []
        if batch:
            st.commit(rec.id, batch)
        st.save_index()
        total = st.status()["segments"]
    (work / "built.json").write_text(json.dumps({"segments": total}))
    return store_dir


def rss_kb(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--segments", type=int, default=50_000)
    args = p.parse_args()
    chromium = shutil.which("chromium")
    if not chromium:
        raise SystemExit("needs Debian's chromium (apt-get install -y chromium)")
    t0 = time.perf_counter()
    store = build(args.work, args.segments)
    print(
        f"store ready ({json.loads((args.work / 'built.json').read_text())['segments']} segments) in {time.perf_counter() - t0:.0f} s"
    )
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "vsearch", "serve", "--store", str(store), "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, "OMP_NUM_THREADS": "2"})  # fmt: skip
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(base + "/health", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        urllib.request.urlopen(base + "/api/search?q=warm+up&k=24").read()
        rss_before = rss_kb(proc.pid)
        rows = measure(base, chromium, args.work)
        rows["rss_before_mb"] = rss_before / 1024
        rows["rss_page_mb"] = rss_kb(proc.pid) / 1024
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    (args.work / "results.json").write_text(json.dumps(rows, indent=2))
    r = rows
    print(f"{'measure (p50)':<44}{'baseline':>12}{'vsearch':>12}{'ratio':>8}")
    for label, b, v in (
        ("page load (urllib HTML / browser load)", r["html_fetch_ms"], r["page_load_ms"]),
        ("text query → cards with thumbnails", r["api_search_ms"], r["cards_ms"]),
        ("more like this (raw FAISS / API)", r["faiss_ms"], r["like_ms"]),
        ("video seek first byte (disk / HTTP Range)", r["disk_read_ms"], r["seek_first_byte_ms"]),
        ("server memory, MB (no page / page open)", r["rss_before_mb"], r["rss_page_mb"]),
    ):
        print(f"{label:<44}{b:>12.1f}{v:>12.1f}{v / b if b else float('nan'):>8.2f}")
    print("targets: cards <= 300 ms, more-like-this <= 100 ms, seek first byte <= 50 ms, memory <= 1.2x")


def measure(base: str, chromium: str, work: Path) -> dict:
    from playwright.sync_api import sync_playwright

    out: dict = {}
    t = []
    for _ in range(10):
        t0 = time.perf_counter()
        urllib.request.urlopen(base + "/").read()
        t.append((time.perf_counter() - t0) * 1000)
    out["html_fetch_ms"] = statistics.median(t)
    api = []
    for i in range(15):
        t0 = time.perf_counter()
        urllib.request.urlopen(base + "/api/search?" + urllib.parse.urlencode({"q": QUERIES[i % 5] + f" {i}", "k": 24})).read()
        api.append((time.perf_counter() - t0) * 1000)
    out["api_search_ms"] = statistics.median(api)
    hits = json.loads(urllib.request.urlopen(base + "/api/search?q=a+red+circle&k=24").read())["hits"]
    like = []
    for h in hits[:15]:
        t0 = time.perf_counter()
        urllib.request.urlopen(f"{base}/api/like/{h['segment_id']}?k=24").read()
        like.append((time.perf_counter() - t0) * 1000)
    out["like_ms"] = statistics.median(like)
    out["faiss_ms"] = faiss_baseline(work / "store", hits[0]["segment_id"])
    seek, disk = [], []
    path = hits[0]["path"]
    size = os.path.getsize(path)
    for _ in range(30):
        req = urllib.request.Request(f"{base}/media/{hits[0]['video_id']}", headers={"Range": f"bytes={size // 2}-"})
        t0 = time.perf_counter()
        with urllib.request.urlopen(req) as r:
            r.read(1)
            seek.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        with open(path, "rb") as f:
            f.seek(size // 2)
            f.read(1)
        disk.append((time.perf_counter() - t0) * 1000)
    out["seek_first_byte_ms"], out["disk_read_ms"] = statistics.median(seek), statistics.median(disk)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        loads = []
        for _ in range(5):
            t0 = time.perf_counter()
            page.goto(base + "/", wait_until="load")
            loads.append((time.perf_counter() - t0) * 1000)
        out["page_load_ms"] = statistics.median(loads)
        cards = []
        for i in range(15):
            page.fill("#q", QUERIES[i % 5] + f" {i}")
            t0 = time.perf_counter()
            page.press("#q", "Enter")
            page.wait_for_function(
                "(q) => document.getElementById('summary').textContent.includes(q) && "
                "[...document.querySelectorAll('article.card img')].slice(0, 8).every(i => i.complete && i.naturalWidth > 0)",
                arg=f"{QUERIES[i % 5]} {i}",
            )
            cards.append((time.perf_counter() - t0) * 1000)
        out["cards_ms"] = statistics.median(cards)
        page.goto(base + "/?q=a+yellow+triangle", wait_until="load")
        page.wait_for_selector("article.card img")
        page.wait_for_timeout(500)
        page.screenshot(path=str(work / "results.png"))
        page.click("article.card a.name")
        page.wait_for_url("**/v/**")
        page.wait_for_timeout(1500)
        page.screenshot(path=str(work / "video.png"))
        browser.close()
    return out


def faiss_baseline(store_dir: Path, segment_id: int) -> float:
    from vsearch.store import Store

    with Store.open(store_dir, create=False) as st:
        qv = st.segment_vector(segment_id)[None, :]
        index = st.vector_index()
        index.search(qv, 25)
        t = []
        for _ in range(15):
            t0 = time.perf_counter()
            index.search(qv, 100)
            t.append((time.perf_counter() - t0) * 1000)
    return statistics.median(t)


if __name__ == "__main__":
    main()
