"""Indexing on a local Ray vs the local pipeline, same clips, same 2 CPUs.

    python bench/ray_index.py [--clips 120] [--work /tmp/vsearch-ray-bench]

Clips: synthetic 10 s videos (128x96, 15 fps), written once. Model: the tiny sample CLIP
(64 px, 8 frames), so decoding dominates as it does for real models on a GPU box. Local: 1
decode process + the encoder in the main process. Ray: 1 CPU decode task at a time + 1 CPU
encoder actor (the same split). Ray's start-up (``ray.init`` + the actor loading the model;
target <= 15 s) is timed first and apart; ``index`` then reuses that actor, so the timed run is
throughput after start-up (target >= 0.8x the local pipeline). Also printed: peak resident
memory of driver + workers (sampled every 0.2 s).
"""

from __future__ import annotations

import argparse
import os
import shutil
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def tree_rss_mb(root_pid: int) -> float:
    """Resident memory of ``root_pid``, its descendants, and Ray's worker processes (MB)."""
    total = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            cmd = open(f"/proc/{pid}/cmdline", "rb").read()
            if int(pid) == root_pid or ppid == root_pid or b"ray::" in cmd or b"raylet" in cmd or b"gcs_server" in cmd:
                for line in open(f"/proc/{pid}/status"):
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except (OSError, ValueError, IndexError):
            continue
    return total / 1024


class Peak:
    def __init__(self):
        self.peak, self._stop = 0.0, threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss_mb(os.getpid()))
            time.sleep(0.2)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clips", type=int, default=120)
    p.add_argument("--work", type=Path, default=Path("/tmp/vsearch-ray-bench"))
    args = p.parse_args()

    from vsearch.ingest import index
    from vsearch.models import load_encoder
    from vsearch.scale.ray_pipeline import connect, start_actors
    from vsearch.store import Store
    from vsearch.synth.scenes import RenderSettings, generate

    clips = args.work / f"clips-{args.clips}"
    if not (clips / "captions.csv").exists():
        generate(clips, args.clips, seed=5, settings=RenderSettings(seconds=10.0))
    enc = load_encoder(ROOT / "sample_data" / "model")
    results = {}
    for mode in ("local", "ray"):
        store = args.work / f"store-{mode}"
        shutil.rmtree(store, ignore_errors=True)
        with Peak() as peak:
            startup = 0.0
            if mode == "ray":
                t0 = time.perf_counter()
                rmod = connect(num_cpus=2)
                rmod.get([a.fingerprint.remote() for a in start_actors(rmod, enc)])
                startup = time.perf_counter() - t0
            t0 = time.perf_counter()
            with Store.open(store) as st:
                rep = index(st, [clips / "videos"], enc, workers=1, ray=(mode == "ray") or None)
            wall = time.perf_counter() - t0
        results[mode] = {"segments": rep.segments, "wall": wall, "startup": startup, "peak_mb": peak.peak}
        print(f"{mode}: {rep.segments} segments in {wall:.1f} s, peak {peak.peak:.0f} MB", flush=True)
    loc, ray = results["local"], results["ray"]
    loc_rate = loc["segments"] / loc["wall"]
    ray_rate = ray["segments"] / ray["wall"]
    print(f"\n{args.clips} clips of 10 s, tiny sample CLIP (64 px, 8 frames), 2 CPUs")
    print(f"{'':<36}{'segments/s':>11}{'peak MB':>9}")
    print(f"{'local pipeline (baseline)':<36}{loc_rate:>11.1f}{loc['peak_mb']:>9.0f}")
    print(f"{'local Ray (1 decode CPU + 1 actor)':<36}{ray_rate:>11.1f}{ray['peak_mb']:>9.0f}")
    print(f"ratio Ray/local: {ray_rate / loc_rate:.2f}x after start-up (target >= 0.8x)")
    print(f"Ray start-up (ray.init + an actor loading the model): {ray['startup']:.1f} s (target <= 15 s)")


if __name__ == "__main__":
    main()
