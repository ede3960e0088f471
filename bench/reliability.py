"""Reliability under abuse, measured: SIGKILL trials, concurrent readers, long-video memory.

    python bench/reliability.py                  # 25 kill trials, 4 readers, 2-hour video (~10 min)
    python bench/reliability.py --trials 50 --readers 8

1. **Kill trials.** ``vsearch index`` on 36 clips (a fresh store per trial) is SIGKILLed at a
   random moment after its first commit; ``vsearch check`` must then report a consistent store
   (FAISS ids == SQLite segment ids, no half-written video); a rerun must finish with every clip
   indexed once, consistent, and no video stored at kill time missing.
2. **Concurrent readers.** Reader processes search in a loop while ``vsearch index`` runs;
   every error is counted, and each reader's result counts must never go backwards.
3. **Memory.** Peak RSS of ``vsearch index`` (its largest process: the indexer or a decode
   worker) on a 2-minute and on a 2-hour video: streaming segments should keep them close.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
from ingest import index_peak_rss  # bench/ingest.py: the same memory measure

VSEARCH = [sys.executable, "-m", "vsearch_cli.main"]


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([*VSEARCH, *args], capture_output=True, text=True, check=check)


def _videos(store: Path) -> set[str]:
    from vsearch.store import Store

    with Store.open(store, create=False) as st:
        return set(st.known_videos(["/"]))


def kill_trials(work: Path, trials: int, seed: int) -> dict:
    """Each trial: a fresh store, SIGKILL at a random moment after the first video is committed,
    check, rerun to the end, check again; nothing stored at kill time may go missing."""
    from vsearch.synth.scenes import generate

    rng = random.Random(seed)
    src = work / "clips"
    generate(src, 36, seed=11)
    folder = src / "videos"
    outcomes = []
    for t in range(trials):
        store = work / f"kill-store-{t}"
        cmd = [
            *VSEARCH,
            "index",
            str(folder),
            "--store",
            str(store),
            "--model",
            "tiny-clip",
            "--workers",
            "1",
            "--batch-size",
            "2",
        ]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 300
        while proc.poll() is None and time.monotonic() < deadline:  # wait until indexing is under way
            if (store / "vsearch.db").exists():
                try:
                    if _videos(store):
                        break
                except Exception:  # noqa: BLE001 - the store may be mid-creation; poll again
                    pass
            time.sleep(0.05)
        delay = rng.uniform(0.0, 3.0)
        time.sleep(delay)
        killed = proc.poll() is None
        proc.kill()
        proc.wait()
        after_kill = json.loads(run("check", "--store", str(store), "--json", check=False).stdout or "{}")
        at_kill = _videos(store)
        final = run("index", str(folder), "--store", str(store), "--model", "tiny-clip", "--json", check=False)
        after_rerun = json.loads(run("check", "--store", str(store), "--json", check=False).stdout or "{}")
        final_set = _videos(store)
        o = {
            "trial": t,
            "delay_after_first_commit_s": round(delay, 2),
            "killed_mid_run": killed,
            "videos_at_kill": len(at_kill),
            "consistent_after_kill": bool(after_kill.get("ok")),
            "rerun_exit": final.returncode,
            "consistent_after_rerun": bool(after_rerun.get("ok")),
            "complete_after_rerun": len(final_set) == 36,
            "none_lost": at_kill <= final_set,
        }
        outcomes.append(o)
        print(f"  trial {t + 1}/{trials}: {json.dumps(o)}", flush=True)
        shutil.rmtree(store, ignore_errors=True)
    ok = [
        o
        for o in outcomes
        if o["consistent_after_kill"] and o["consistent_after_rerun"] and o["complete_after_rerun"] and o["none_lost"]
    ]
    return {
        "trials": trials,
        "killed_mid_run": sum(o["killed_mid_run"] for o in outcomes),
        "videos_at_kill": [o["videos_at_kill"] for o in outcomes],
        "passed": len(ok),
    }


READER = """
import json, sys, time
from vsearch.store import Store
from vsearch.search import search
store, seconds = sys.argv[1], float(sys.argv[2])
st = Store.open(store, create=False)
ok = err = back = 0; last = 0; errors = []
end = time.monotonic() + seconds
while time.monotonic() < end:
    try:
        n = len(search(st, "a red circle", k=1000, segments=True).hits)
        ok += 1; back += n < last; last = max(last, n)
    except Exception as e:
        err += 1; errors.append(repr(e)[:200])
print(json.dumps({"ok": ok, "errors": err, "went_back": back, "last": last, "first_errors": errors[:3]}))
"""


def concurrent_readers(work: Path, readers: int) -> dict:
    from vsearch.synth.scenes import generate

    src = work / "readers-clips"
    generate(src, 150, seed=12)
    store = work / "readers-store"
    seed_dir = work / "readers-seed"
    seed_dir.mkdir()
    shutil.copy(sorted((src / "videos").iterdir())[0], seed_dir / "seed.mp4")
    run("index", str(seed_dir), "--store", str(store), "--model", "tiny-clip")  # binds the encoder
    t0 = time.monotonic()
    writer = subprocess.Popen([*VSEARCH, "index", str(src / "videos"), "--store", str(store), "--workers", "1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    procs = [
        subprocess.Popen([sys.executable, "-c", READER, str(store), "40"], stdout=subprocess.PIPE, text=True)
        for _ in range(readers)
    ]
    writer.wait()
    index_seconds = time.monotonic() - t0
    results = [json.loads(p.communicate()[0]) for p in procs]
    return {
        "readers": readers,
        "reader_seconds": 40,
        "index_seconds": round(index_seconds, 1),
        "searches": sum(r["ok"] for r in results),
        "errors": sum(r["errors"] for r in results),
        "went_backwards": sum(r["went_back"] for r in results),
        "first_errors": [e for r in results for e in r["first_errors"]][:3],
    }


def peak_rss(work: Path) -> dict:
    """Peak RSS (MB) of `vsearch index` (its largest process) on a short and a long video."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.videos import write_video

    out = {}
    for label, seconds in (("2 min", 120), ("2 h", 7200)):
        folder = work / f"rss-{label.replace(' ', '')}"
        frames = np.zeros((seconds // 2, 48, 64, 3), np.uint8)
        frames[:, :, :, 1] = (np.arange(len(frames)) % 200)[:, None, None]
        write_video(folder / "v.mp4", frames, fps=Fraction(1, 2))
        rss, rc = index_peak_rss(folder, "--workers", "1")
        out[label] = {"peak_rss_mb": round(rss, 1), "segments": seconds // 10, "exit_code": rc}
    out["ratio_2h_over_2min"] = round(out["2 h"]["peak_rss_mb"] / out["2 min"]["peak_rss_mb"], 2)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=25)
    p.add_argument("--readers", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip", default="", help="comma list of parts to skip: kill,readers,memory")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vsearch-reliability-"))
    os.environ["VSEARCH_HOME"] = str(work / "home")
    report = {}
    skip = set(filter(None, args.skip.split(",")))
    parts = {  # name (for --skip): (label, measurement)
        "kill": (f"kill trials ({args.trials})", lambda: kill_trials(work, args.trials, args.seed)),
        "readers": ("concurrent readers", lambda: concurrent_readers(work, args.readers)),
        "memory": ("memory", lambda: peak_rss(work)),
    }
    try:
        for name, (label, measure) in parts.items():
            if name not in skip:
                print(f"{label} ...", flush=True)
                report[name] = measure()
                print(f"{label}:", json.dumps(report[name]), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
