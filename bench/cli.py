"""The command line's own latency, and what `vsearch serve` saves.

    python bench/cli.py                       # sample store, 5 runs each (~1 min)

Prints median wall times of:
- the floor: ``python -c "import torch, transformers"`` (a search cannot start faster);
- ``vsearch search`` on the sample store, and its ratio to the floor (goal <= 1.5x);
- ``vsearch --help``, ``vsearch status``, ``vsearch models`` (these must not import torch);
- ``vsearch serve``: p50 / p99 per query over HTTP, for new and for repeated queries.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VSEARCH = str(Path(sys.executable).parent / "vsearch")


def wall(cmd: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    work = Path(tempfile.mkdtemp(prefix="vsearch-cli-bench-"))
    store = work / "store"
    subprocess.run([VSEARCH, "index", str(ROOT / "sample_data" / "videos"), "--model", str(ROOT / "sample_data" / "model"), "--store", str(store)],
                   capture_output=True, check=True)  # fmt: skip
    floor = wall([sys.executable, "-c", "import torch, transformers"], runs)
    rows = [("python -c 'import torch, transformers' (floor)", floor)]
    for label, cmd in [
        ("vsearch search", [VSEARCH, "search", "a yellow triangle", "--store", str(store)]),
        ("vsearch search --json", [VSEARCH, "search", "a yellow triangle", "--store", str(store), "--json"]),
        ("vsearch --help", [VSEARCH, "--help"]),
        ("vsearch status", [VSEARCH, "status", "--store", str(store)]),
        ("vsearch models", [VSEARCH, "models"]),
    ]:
        rows.append((label, wall(cmd, runs)))
    print(f"{'command':<48}{'median s':>10}{'x floor':>9}")
    for label, t in rows:
        print(f"{label:<48}{t:>10.3f}{t / floor:>9.2f}")

    from vsearch.web.server import start

    server = start(store, "127.0.0.1", 0)
    base = f"{server.url}/search?k=10&q="
    words = ["red", "green", "blue", "yellow"]
    shapes = ["circle", "square", "triangle"]
    motions = ["left", "right", "up", "down"]
    new = [f"a {c} {s} moving {m}" for c in words for s in shapes for m in motions]
    lat: dict[str, list[float]] = {"new query": [], "repeated query": []}
    for q in new:
        for label in ("new query", "repeated query"):
            t0 = time.perf_counter()
            with urllib.request.urlopen(base + urllib.parse.quote(q)) as r:
                json.loads(r.read())
            lat[label].append((time.perf_counter() - t0) * 1000)
    server.stop()
    for label, xs in lat.items():
        xs.sort()
        print(
            f"vsearch serve, {label:<15} p50 {statistics.median(xs):6.1f} ms   p99 {xs[int(0.99 * (len(xs) - 1))]:6.1f} ms   ({len(xs)} queries)"
        )
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
