"""Shot boundaries: ``vsearch.video.shots`` beside PySceneDetect 0.7 on the same rendered films.

    pip install scenedetect==0.7.2                      # the baseline; measured only, not a dependency
    python bench/shots.py --work /tmp/vsearch-shots     # every set
    python bench/shots.py --work /tmp/vsearch-shots --sets films --films 12

Sets (each film's true cuts are known from its timeline):

- ``films``: the films ``vsearch eval moments`` renders (96x64, 10 fps, written by PyAV's
  libx264: a keyframe at most cuts, otherwise none, so vsearch reads them sequentially).
- ``cam1080``: the same timelines rendered at 480x270 and 30 fps, scaled to 1920x1080 with film
  grain and encoded like a camera: H.264 at 16 Mb/s, a keyframe every 2 s and none at the cuts
  (``-sc_threshold 0``). vsearch reads keyframes first and decodes only the GOPs that change.

Per film and detector: the cuts found against the truth (a found cut matches a true one within
one frame or 0.1 s, each at most once), wall seconds and CPU seconds (both detectors run in this
process with one decoder thread: ``OPENCV_FFMPEG_CAPTURE_OPTIONS=threads;1`` for OpenCV), and for
vsearch the frames it decoded. Detectors alternate film by film, so background load falls on
both alike. Every row is appended to ``WORK/shots.jsonl`` as it finishes; the summary (F1 and
s/film per set and detector, and the baseline / vsearch ratio) is printed at the end.
The baseline runs with its defaults: ``ContentDetector()`` (threshold 27, 15-frame minimum
scene) and ``AdaptiveDetector()``, OpenCV backend, automatic downscaling.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "threads;1")  # before cv2 is imported

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vsearch.eval.moments import boundary_scores, cut_tolerance, match_cuts, render_films  # noqa: E402


def films_set(work: Path, count: int) -> list[dict]:
    """The eval's films (rendered once into ``work/films``)."""
    films = render_films(work / "films", count)
    return [{"path": f.path, "fps": 10.0, "cuts": [b for _a, b, _s in f.scenes[:-1]]} for f in films]


def cam1080_set(work: Path, count: int) -> list[dict]:
    """The same timelines as camera-like 1080p files (encoded once; about 30 s a film on 1 core)."""
    out = work / "cam1080"
    films = render_films(out / "src", count, fps=30, size=(480, 270))
    rows = []
    for f in films:
        dst = out / Path(f.path).name
        if not dst.exists():
            tmp = dst.with_suffix(".part.mp4")
            subprocess.run(
                ["ffmpeg", "-loglevel", "error", "-y", "-i", f.path, "-vf", "scale=1920:1080:flags=bicubic,noise=alls=6:allf=t",
                 "-c:v", "libx264", "-preset", "veryfast", "-b:v", "16M", "-maxrate", "16M", "-bufsize", "32M", "-g", "60",
                 "-keyint_min", "60", "-sc_threshold", "0", "-pix_fmt", "yuv420p", str(tmp)],
                check=True,
            )  # fmt: skip
            tmp.rename(dst)
        rows.append({"path": str(dst), "fps": 30.0, "cuts": [b for _a, b, _s in f.scenes[:-1]]})
    return rows


SETS = {"films": films_set, "cam1080": cam1080_set}


def run_vsearch(path: str, keyframes: bool = True) -> dict:
    """What a ``shots`` decode job does for cuts: the keyframe table (none with open GOPs), then
    the scan at 64 px. ``keyframes=False``: the sequential read whatever the GOPs."""
    from vsearch.video.decode import VideoReader
    from vsearch.video.pyav_reader import has_open_gops
    from vsearch.video.shots import detect_shots

    with VideoReader(path) as r:
        table = r.keyframes()
        if table is not None and has_open_gops(r.decoder_path, r.header.stream_index):
            table = None
    scan = detect_shots(path, table if keyframes else None, threads=1)
    return {"cuts": scan.times, "method": scan.method, "decoded": scan.decoded}


def run_scenedetect(path: str, detector: str) -> dict:
    from scenedetect import AdaptiveDetector, ContentDetector, SceneManager, open_video

    video = open_video(path)
    manager = SceneManager()
    manager.add_detector(ContentDetector() if detector == "content" else AdaptiveDetector())
    manager.detect_scenes(video)
    return {"cuts": [round(start.seconds, 3) for start, _end in manager.get_scene_list()[1:]]}


DETECTORS = {
    "vsearch": run_vsearch,
    "vsearch-sequential": lambda p: run_vsearch(p, keyframes=False),
    "pyscenedetect-content": lambda p: run_scenedetect(p, "content"),
    "pyscenedetect-adaptive": lambda p: run_scenedetect(p, "adaptive"),
}


def measure(name: str, film: dict) -> dict:
    wall, cpu = time.perf_counter(), time.process_time()
    found = DETECTORS[name](film["path"])
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    tp, fp, fn = match_cuts(found["cuts"], film["cuts"], cut_tolerance(film["fps"]))
    return {"detector": name, "film": Path(film["path"]).name, "tp": tp, "fp": fp, "fn": fn,
            "wall_s": round(wall, 3), "cpu_s": round(cpu, 3), **found, "truth": [round(c, 3) for c in film["cuts"]]}  # fmt: skip


def summary(rows: list[dict]) -> None:
    by: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        by.setdefault((r["set"], r["detector"]), []).append(r)
    print(
        f"\n{'set':8} {'detector':24} {'films':>5} {'P':>6} {'R':>6} {'F1':>6} {'wall s/film':>11} {'cpu s/film':>10} {'cpu x vsearch':>13}"
    )
    for (set_name, det), rs in sorted(by.items()):
        sc = boundary_scores(sum(r["tp"] for r in rs), sum(r["fp"] for r in rs), sum(r["fn"] for r in rs))
        wall = sum(r["wall_s"] for r in rs) / len(rs)
        cpu = sum(r["cpu_s"] for r in rs) / len(rs)
        ours = by.get((set_name, "vsearch"))
        ratio = cpu / (sum(r["cpu_s"] for r in ours) / len(ours)) if ours else float("nan")
        print(
            f"{set_name:8} {det:24} {len(rs):5d} {sc['precision']:6.3f} {sc['recall']:6.3f} {sc['f1']:6.3f} {wall:11.3f} {cpu:10.3f} {ratio:13.2f}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("/tmp/vsearch-shots"))
    ap.add_argument("--sets", default="films,cam1080", help="comma-separated: " + ", ".join(SETS))
    ap.add_argument("--films", type=int, default=12, help="films in the films set (at most 12)")
    ap.add_argument("--cam-films", type=int, default=4, help="films in the cam1080 set")
    ap.add_argument("--detectors", default=",".join(DETECTORS), help="comma-separated: " + ", ".join(DETECTORS))
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    out = args.work / "shots.jsonl"
    detectors = args.detectors.split(",")
    rows = []
    for set_name in args.sets.split(","):
        films = SETS[set_name](args.work, args.films if set_name == "films" else args.cam_films)
        for film in films:
            for name in detectors:
                row = {"set": set_name, **measure(name, film)}
                rows.append(row)
                with out.open("a") as fh:
                    fh.write(json.dumps(row) + "\n")
                print(f"{set_name} {row['film']} {name}: tp {row['tp']} fp {row['fp']} fn {row['fn']}, "
                      f"{row['wall_s']:.2f} s wall, {row['cpu_s']:.2f} s cpu", flush=True)  # fmt: skip
    summary(rows)
    print(f"\nrows appended to {out}")


if __name__ == "__main__":
    main()
