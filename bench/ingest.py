"""Ingest throughput against its physical limits, and memory as the collection grows.

    python bench/ingest.py                 # every part (~25 min on 2 cores)
    python bench/ingest.py --only footage,quality   # real-GOP footage and the exact/fast table (~8 min)
    python bench/ingest.py --skip b32      # without the slow ViT-B/32 part

0. **Real footage (issue 24):** 4 x 30 s of 1080p30 H.264 with 2 s GOPs (motion and cuts:
   testsrc2, mandelbrot, life), the mean-pool sample model, the whole `vsearch index` command in
   a fresh process: fast and exact sampling with a new store's segments (shots), fast with fixed
   windows (no cut scan), and the no-op re-run, each started as a user's second run with the
   model (its first load recorded it in the user cache; ``..._cold_s`` times that first run);
   wall and CPU seconds (user + system of the command and its workers: a shared machine
   inflates wall time, not CPU). Baseline, measured in
   the same run: PyAV decoding every frame (thread_type AUTO) of the same files on both cores
   (one process per core). Goal: >= 3x faster than the baseline, or >= 30 video-seconds per second.
   The same again with one take per file (a camera's footage: no cuts, so segment ends that
   no cut falls on). Also 10 s of 4K HEVC 10-bit and a 1-hour 360p file (fast sampling), same
   baseline.
   ``--footage DIR`` keeps the generated files for the next run (writing them takes minutes).
   **Quality:** the sample data re-encoded with 2 s GOPs; fast against exact, mean pool and
   CLIP-ViP: cosine per segment, same top-1 on the sample queries, R@1 of each.

1. **Tiny encoder: decoding is the limit.** Baseline: decord alone decoding the same frames of
   the same files (one ``get_batch`` per segment, decoded at the encoder's size), in as many
   processes as vsearch uses, no model, no store. vsearch: ``index`` on a fresh store. Goal:
   vsearch >= 0.85x the baseline's segments/s.
2. **ViT-B/32-sized encoder (random weights): the encoder is the limit.** Baseline: the
   encoder alone on pre-decoded pixels in the same batch size. Goal: >= 0.9x.
3. **Memory:** peak RSS of ``vsearch index`` (its largest process: the indexer or a decode
   worker) on 200 videos against 20. Goal: <= 1.5x (segments stream; nothing accumulates).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from multiprocessing import get_context
from pathlib import Path


def _decode_file(args) -> int:
    """Baseline worker: decord alone, the same frames vsearch would sample."""
    path, frames, size, seg_s = args
    import decord

    from vsearch.video.sampling import plan_segments, uniform_indices

    vr = decord.VideoReader(path, ctx=decord.cpu(0), width=size, height=size, num_threads=1)
    import numpy as np

    times = np.asarray(vr.get_frame_timestamp(np.arange(len(vr))))
    n = 0
    for p in plan_segments(times, seg_s):
        vr.get_batch(uniform_indices(p.start_frame, p.end_frame, frames)).asnumpy()
        n += 1
    return n


def _warm(_=None) -> int:
    import decord  # noqa: F401
    import numpy  # noqa: F401

    import vsearch.video.sampling  # noqa: F401

    return os.getpid()


def decode_baseline(paths: list[str], frames: int, size: int, workers: int, seg_s: float) -> tuple[int, float]:
    """Segments decoded and seconds, by ``workers`` warm processes (start-up not counted: the
    physical limit is decoding, not spawning interpreters)."""
    with get_context("spawn").Pool(workers, initializer=_warm) as pool:
        pool.map(_warm, range(workers * 4))
        t0 = time.perf_counter()
        segs = sum(pool.map(_decode_file, [(p, frames, size, seg_s) for p in paths], chunksize=1))
        return segs, time.perf_counter() - t0


def vsearch_index(paths_dir: Path, encoder, workers: int, batch: int) -> tuple[int, float, dict]:
    from vsearch.ingest import index
    from vsearch.store import Store

    store_dir = Path(tempfile.mkdtemp(prefix="vsearch-ingest-"))
    st = Store.open(store_dir)
    t0 = time.perf_counter()
    report = index(st, [paths_dir], encoder, workers=workers, batch_size=batch)
    seconds = time.perf_counter() - t0
    st.close()
    shutil.rmtree(store_dir, ignore_errors=True)
    return report.counts()["segments"], seconds, report.timings


def encoder_alone(encoder, segments: int, batch: int) -> float:
    import torch

    spec = encoder.spec
    px = torch.randn(batch, spec.frames, 3, spec.pixels.image_size, spec.pixels.image_size)
    encoder.encode_videos(px)  # warm-up
    t0 = time.perf_counter()
    done = 0
    while done < segments:
        encoder.encode_videos(px)
        done += batch
    return done / (time.perf_counter() - t0)


def index_peak_rss(folder: Path, *options: str) -> tuple[float, int]:
    """Peak RSS (MB) of the largest process of ``vsearch index FOLDER`` (the indexer or one of its
    decode workers: ``ru_maxrss`` of waited-for descendants is a maximum, not a sum) and its exit
    code. Run from a fresh interpreter, so nothing this benchmark loaded counts."""
    cmd = [
        sys.executable,
        "-m",
        "vsearch_cli.main",
        "index",
        str(folder),
        "--store",
        str(folder / "store"),
        "--model",
        "tiny-clip",
        *options,
    ]
    code = (
        "import json, resource, subprocess; "
        f"p = subprocess.run({cmd!r}, capture_output=True); "
        "print(json.dumps([resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, p.returncode]))"
    )
    rss, rc = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    return rss, rc


# -- real footage (issue 24) ---------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data"
#: Three sources concatenated: a test pattern, a zooming fractal and the game of life (motion, two cuts).
SCENES = (
    "testsrc2=size={size}:rate={fps}",
    "mandelbrot=size={size}:rate={fps}:start_scale={scale}",
    "life=size={size}:rate={fps}:mold=10:ratio=0.1:seed={seed}:death_color=#C83232:life_color=#00ff00",
)


def camera_footage(
    path: Path, seconds: int, size: str, fps: int = 30, gop_s: float = 2.0, codec: str = "h264", variant: int = 0,
    take: bool = False,
) -> Path:  # fmt: skip
    """Like a camera writes it: a keyframe every ``gop_s`` seconds, B-frames, motion and cuts.
    ``codec`` "hevc10": HEVC Main 10. ``variant`` changes the fractal's zoom and the game of
    life's seed, so files of one case differ. ``take``: one scene the whole time (the
    ``variant``-th), as a camera records it: no cuts. Kept when ``path`` already exists (--footage)."""
    if path.exists():
        return path
    scenes = [SCENES[variant % len(SCENES)]] if take else list(SCENES)
    part_s = seconds / len(scenes)
    inputs, chains = [], []
    for i, src in enumerate(scenes):
        inputs += ["-f", "lavfi", "-i", src.format(size=size, fps=fps, scale=3.0 + 0.5 * variant, seed=variant + 1)]
        chains.append(f"[{i}]trim=0:{part_s:g},setpts=PTS-STARTPTS,format=yuv420p[s{i}]")
    graph = ";".join(chains) + ";" + "".join(f"[s{i}]" for i in range(len(scenes))) + f"concat=n={len(scenes)}:v=1[v]"
    gop = str(round(gop_s * fps))
    if codec == "hevc10":
        enc = ["-c:v", "libx265", "-preset", "ultrafast", "-pix_fmt", "yuv420p10le", "-tag:v", "hvc1",
               "-x265-params", f"keyint={gop}:min-keyint={gop}:scenecut=0:open-gop=0:log-level=error"]  # fmt: skip
    else:
        enc = ["-c:v", "libx264", "-preset", "veryfast", "-g", gop, "-keyint_min", gop, "-sc_threshold", "0", "-bf", "2",
               "-pix_fmt", "yuv420p"]  # fmt: skip
    part = path.with_name(path.stem + ".part" + path.suffix)
    cmd = ["ffmpeg", "-loglevel", "error", "-y", *inputs, "-filter_complex", graph, "-map", "[v]", *enc, str(part)]
    subprocess.run(cmd, check=True)
    os.replace(part, path)
    return path


def long_file(path: Path, piece: Path, copies: int) -> Path:
    """``copies`` of ``piece`` back to back by stream copy (an hour of footage in seconds)."""
    if path.exists():
        return path
    listing = path.with_suffix(".txt")
    listing.write_text("".join(f"file '{piece}'\n" for _ in range(copies)))
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy", str(path)],
                   check=True)  # fmt: skip
    return path


def _pyav_all_frames(path: str) -> int:
    """Baseline worker: decode every frame with PyAV, threads on (no conversion: the decode floor)."""
    import av

    with av.open(path) as c:
        stream = c.streams.video[0]
        stream.thread_type = "AUTO"
        return sum(1 for _ in c.decode(stream))


def pyav_baseline(paths: list[str], processes: int = 2) -> tuple[int, float, float]:
    """Frames, seconds and CPU seconds (its processes' user + system, their start included) for
    PyAV to decode every frame of ``paths`` on ``processes`` cores."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with get_context("spawn").Pool(processes) as pool:
        pool.map(_warm_av, range(processes))
        t0 = time.perf_counter()
        frames = sum(pool.map(_pyav_all_frames, paths, chunksize=1))
        seconds = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return frames, seconds, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def _warm_av(_=None) -> int:
    import av  # noqa: F401

    return os.getpid()


def timed_index(
    folder: Path, store: Path, *options: str, code: Path | None = None, home: Path | None = None
) -> tuple[float, dict]:
    """Wall-clock seconds of the whole `vsearch index` command in a fresh process, and its report
    with ``cpu_s`` added: the CPU seconds (user + system) of the command and its decode workers,
    which a machine shared with other work does not inflate the way it inflates wall time.
    ``code``: a source tree of another revision (``git archive``) to run instead of this one.
    ``home``: the command's VSEARCH_HOME (its user cache: whether the model was loaded before)."""
    import resource

    module = "cli.main" if code else "vsearch_cli.main"
    cmd = [sys.executable, "-m", module, "index", str(folder), "--store", str(store), "--json", *options]
    env = {**os.environ, **({"VSEARCH_HOME": str(home)} if home else {})}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=code, env=env)
    seconds = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        raise SystemExit(f"vsearch index failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    report = json.loads(done.stdout)
    report["cpu_s"] = round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 2)
    return seconds, report


def remember_model(model: Path, home: Path, code: Path | None = None) -> None:
    """Load ``model`` in full once, as a user's first `vsearch index` with it does, so that the
    user cache in ``home`` holds it (an entry it already holds is left as it is; the load itself
    still takes its seconds, outside every timed run). ``code``: another revision's source tree,
    which loads it its own way (a revision without a user cache has nothing to remember)."""
    load = f"from vsearch.models import load_encoder; load_encoder({str(model)!r}, remember=True)"
    done = subprocess.run([sys.executable, "-c", load], cwd=code, capture_output=True, text=True,
                          env={**os.environ, "VSEARCH_HOME": str(home)})  # fmt: skip
    if done.returncode and code is None:
        raise SystemExit(f"loading {model} failed: {done.stderr.strip()[-500:]}")


def _video_seconds(paths: list[str]) -> float:
    import av

    total = 0.0
    for p in paths:
        with av.open(p) as c:
            total += float(c.duration or 0) / 1_000_000
    return total


def decoder_rows(path: str, frames: int = 8, seg_s: float = 10.0) -> list[dict]:
    """decord2, PyAV and torchcodec on the same frames of one file, one thread each: every frame,
    the exact sampled frames, the fast plan's frames. torchcodec is reported as unavailable with
    the reason when it cannot load (the PyPI wheel of 0.17 links CUDA torch)."""
    import decord
    import numpy as np

    from vsearch.video.readplan import KeyframeTable, fast_unusable, snap_to_keyframes
    from vsearch.video.sampling import plan_segments, uniform_indices

    vr = decord.VideoReader(path, ctx=decord.cpu(0), width=224, height=224, num_threads=1)
    n = len(vr)
    times = np.asarray(vr.get_frame_timestamp(np.arange(n)))
    table = KeyframeTable.build(vr.get_key_indices(), n)
    plans = plan_segments(times, seg_s)
    exact = sorted({i for p in plans for i in uniform_indices(p.start_frame, p.end_frame, frames)})
    fast = sorted(
        {
            i
            for p in plans
            for i in snap_to_keyframes(uniform_indices(p.start_frame, p.end_frame, frames), p.start_frame, p.end_frame, table)
        }
    )
    assert fast_unusable(table, float(vr.get_avg_fps())) is None
    del vr
    sets = {"every frame": list(range(n)), "exact sampled": exact, "fast sampled": fast}

    def with_decord(idx):
        r = decord.VideoReader(path, ctx=decord.cpu(0), width=224, height=224, num_threads=1)
        for i in range(0, len(idx), 64):
            r.get_batch(idx[i : i + 64]).asnumpy()

    def with_pyav(idx):
        import av

        want = set(idx)
        with av.open(path) as c:
            st = c.streams.video[0]
            st.codec_context.thread_count = 1
            last = max(idx)
            for k, f in enumerate(c.decode(st)):
                if k in want:
                    f.to_ndarray(format="rgb24", width=224, height=224)
                if k >= last:
                    break

    def with_gop_reader(idx):
        from vsearch.video.gop_reader import GopReader

        r = GopReader.open(path, 0, n, (224, 224), threads=1, interpolation="BICUBIC")
        for i in range(0, len(idx), 64):
            r.get(idx[i : i + 64])
        r.close()

    def with_torchcodec(idx):
        from torchcodec.decoders import VideoDecoder

        d = VideoDecoder(path, seek_mode="approximate", num_ffmpeg_threads=1)
        for i in range(0, len(idx), 64):
            d.get_frames_at(indices=idx[i : i + 64])

    rows = []
    decoders = (("decord2", with_decord), ("pyav", with_pyav), ("pyav by GOP (vsearch)", with_gop_reader),
                ("torchcodec", with_torchcodec))  # fmt: skip
    for name, fn in decoders:
        row = {"decoder": name}
        for what, idx in sets.items():
            try:
                t0 = time.perf_counter()
                fn(idx)
                row[what] = round(time.perf_counter() - t0, 2)
            except (ImportError, OSError, RuntimeError) as exc:
                cause = f" ({exc.__cause__})" if exc.__cause__ else ""
                row["unavailable"] = (str(exc).strip().splitlines()[-1] + cause)[:300]
                break
        rows.append(row)
        print("decoders:", json.dumps({**row, "frames": {k: len(v) for k, v in sets.items()}}), flush=True)
    return rows


#: (name, size, files, seconds, codec, one take per file). The first case's scenes change at 10 and
#: 20 s, where fixed windows end too; the takes (``--skip takes``) are what a camera records, and
#: show what a segment end that no cut falls on saves (``jobs.CROSSING_CHANGE``).
CASES = (
    ("1080p30 H.264, 2 s GOP, 4 x 30 s", "1920x1080", 4, 30, "h264", False),
    ("1080p30 H.264, 2 s GOP, 4 x 30 s, one take each", "1920x1080", 4, 30, "h264", True),
    ("4K HEVC 10-bit, 2 s GOP (closed), 10 s", "3840x2160", 1, 10, "hevc10", False),
    ("360p30 H.264, 2 s GOP, 1 hour", "640x360", 1, 3600, "h264", False),
)


def _skipped(skip: set[str], count: int, seconds: int, codec: str, take: bool) -> bool:
    return (("4k" in skip and codec == "hevc10") or ("hour" in skip and seconds > 60)
            or ("1080p" in skip and count > 1 and not take) or ("takes" in skip and take))  # fmt: skip


def write_footage(store: Path, skip: set[str] = frozenset()) -> dict[str, list[Path]]:
    """The cases' files under ``store`` (kept there: written once, ffmpeg takes minutes)."""
    store.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, size, count, seconds, codec, take in CASES:
        if _skipped(skip, count, seconds, codec, take):
            continue
        if seconds > 60:  # an hour: one minute written, copied 60 times
            piece = camera_footage(store / f"piece-{size}-{codec}.mp4", 60, size, codec=codec)
            out[name] = [long_file(store / f"hour-{size}-{codec}.mp4", piece, seconds // 60)]
        else:
            kind = "take" if take else "cam"
            out[name] = [
                camera_footage(
                    store / f"{kind}-{size}-{codec}-{seconds}s-{i}.mp4", seconds, size, codec=codec, variant=i, take=take
                )
                for i in range(count)
            ]
    return out


def source_tree(rev: str, into: Path) -> Path:
    """The package as it was at ``rev`` (read from git, the repository untouched)."""
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", rev], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def footage_rows(work: Path, out, skip: set[str], footage: Path | None = None, before: str | None = None) -> list[dict]:
    """The issue-24 table: baseline, vsearch fast / exact / no-op, per kind of footage; with
    ``before`` (a git revision), that revision's `vsearch index` too, in the same run."""
    rows = []
    old = source_tree(before, work / "before") if before else None
    t0 = time.perf_counter()
    files = write_footage(footage or work / "footage", skip)
    print(f"footage ready in {time.perf_counter() - t0:.0f} s", flush=True)
    for name, size, count, seconds, codec, take in CASES:
        if name not in files:
            continue
        folder = work / f"footage-{size}-{codec}-{seconds}{'-takes' if take else ''}"
        folder.mkdir(parents=True)
        paths = []
        for src in files[name]:
            os.link(src, folder / src.name)  # the case's own folder, without copying gigabytes
            paths.append(str(folder / src.name))
        video_s = _video_seconds(paths)
        if count > 1 and not take and "decoders" not in skip:
            for row in decoder_rows(paths[0]):
                out.write(json.dumps({"case": f"decoders on one file of {name}", **row}) + "\n")
        frames, base_s, base_cpu = pyav_baseline(paths)
        row = {"case": name, "video_seconds": round(video_s, 1), "baseline_pyav_all_frames_s": round(base_s, 2),
               "baseline_cpu_s": round(base_cpu, 2), "baseline_frames": frames}  # fmt: skip
        model = ["--model", str(SAMPLE / "model")]
        # Each revision's user cache of its own. The model is loaded once before the timed runs
        # (a user's first run with a model; ``cold`` below times that run) so that every timed
        # run starts as a user's second run does.
        home, home_old = work / "home", work / "home-before"
        if old is not None and count > 1:
            remember_model(SAMPLE / "model", home_old, code=old)  # (its timed runs start warm too)
            store = work / "store-before"
            secs, rep = timed_index(folder, store, *model, code=old, home=home_old)
            noop_s, _ = timed_index(folder, store, code=old, home=home_old)
            row.update(before_rev=before, before_s=round(secs, 2), before_ratio=round(base_s / secs, 2),
                       before_cpu_s=rep["cpu_s"], before_noop_s=round(noop_s, 2), before_timings=rep["timings"])  # fmt: skip
            shutil.rmtree(store, ignore_errors=True)
            try:  # fixed windows (a revision from before --segments has nothing else)
                secs, rep = timed_index(folder, store, *model, "--segments", "fixed", code=old, home=home_old)
                row.update(before_fixed_s=round(secs, 2), before_fixed_ratio=round(base_s / secs, 2),
                           before_fixed_cpu_s=rep["cpu_s"])  # fmt: skip
            except SystemExit:
                pass
            shutil.rmtree(store, ignore_errors=True)
        # A new store's default segments (shots), and fixed windows (no cut scan) on the 1080p case.
        runs = [("fast", []), ("exact", [])] + ([("fast_fixed", ["--segments", "fixed"])] if count > 1 else [])
        if count > 1:
            # The model's first load on this machine (an empty user cache): the full model.
            shutil.rmtree(home, ignore_errors=True)
            store = work / "store-cold"
            secs, rep = timed_index(folder, store, "--segments", "fixed", *model, home=home)
            row.update(vsearch_fast_fixed_cold_s=round(secs, 2), vsearch_fast_fixed_cold_cpu_s=rep["cpu_s"])
            shutil.rmtree(store, ignore_errors=True)
        remember_model(SAMPLE / "model", home)
        for mode, extra in runs:
            if mode == "exact" and seconds > 60:
                continue  # an hour exactly: the baseline's order of magnitude, not worth the wait
            store = work / f"store-{size}-{codec}-{mode}"
            secs, rep = timed_index(folder, store, "--sampling", mode.split("_")[0], *extra, *model, home=home)
            row[f"vsearch_{mode}_s"] = round(secs, 2)
            row[f"vsearch_{mode}_ratio"] = round(base_s / secs, 2)
            row[f"vsearch_{mode}_cpu_s"] = rep["cpu_s"]
            row[f"vsearch_{mode}_video_s_per_s"] = round(video_s / secs, 1)
            row[f"vsearch_{mode}_timings"] = rep["timings"]
            # From the command's start to the first decoded segment: the process start-up (wall
            # clock minus the run's own seconds) plus the run's first_segment.
            first = rep["timings"].get("first_segment")
            if first is not None:
                row[f"vsearch_{mode}_first_segment_after_start_s"] = round(secs - rep["seconds"] + first, 2)
            if mode == "fast":
                noop_s, noop = timed_index(folder, store, home=home)
                row["noop_rerun_s"] = round(noop_s, 2)
                row["noop_model_loaded"] = noop["model_loaded"]
            if mode == "fast" and count > 1:
                # A changed folder: one more file (a copy under a new name), the store's model.
                shutil.copy(paths[0], folder / "added.mp4")
                changed_s, changed = timed_index(folder, store, home=home)
                os.remove(folder / "added.mp4")
                row["changed_folder_s"] = round(changed_s, 2)
                first = changed["timings"].get("first_segment")
                if first is not None:
                    row["changed_first_segment_after_start_s"] = round(changed_s - changed["seconds"] + first, 2)
            shutil.rmtree(store, ignore_errors=True)
        rows.append(row)
        out.write(json.dumps(row) + "\n")
        out.flush()
        print(json.dumps(row), flush=True)
        shutil.rmtree(folder, ignore_errors=True)
    return rows


def quality_rows(work: Path, out, models: tuple[str, ...] = ("model", "clip-vip")) -> list[dict]:
    """fast against exact on the sample data re-encoded with camera GOPs (2 s), per model
    (``models``: folders of sample_data, or paths to model folders)."""
    import csv

    import numpy as np

    from vsearch.embedding import SegmentBatcher, StageTimes, encode_stream
    from vsearch.models import load_encoder
    from vsearch.video.workers import DecodeJob, DecodePool

    folder = work / "gop2s"
    folder.mkdir()
    for src in sorted((SAMPLE / "videos").glob("*.mp4")):
        subprocess.run(
            ["ffmpeg", "-loglevel", "error", "-y", "-i", str(src), "-c:v", "libx264", "-preset", "veryfast", "-g", "30",
             "-keyint_min", "30", "-sc_threshold", "0", "-bf", "2", "-pix_fmt", "yuv420p", str(folder / src.name)],
            check=True,
        )  # fmt: skip
    paths = sorted(str(p) for p in folder.iterdir())
    queries = [(r["caption"], r["path"].split("/")[-1], None) for r in csv.DictReader(open(SAMPLE / "captions.csv"))]
    queries += [(r["caption"], r["path"].split("/")[-1], int(float(r["start"]) // 10))
                for r in csv.DictReader(open(SAMPLE / "segments.csv"))]  # fmt: skip
    rows = []
    for model in models:
        enc = load_encoder(str(SAMPLE / model) if (SAMPLE / model).is_dir() else model, device="cpu")
        spec = enc.spec
        got = {}
        for mode in ("exact", "fast"):
            jobs = [DecodeJob(i, p, spec.frames, spec.pixels.image_size, spec.pixels.resize, 10.0, 2.0, sampling=mode)
                    for i, p in enumerate(paths)]  # fmt: skip
            vecs, idx, times = {}, {}, StageTimes()
            for kind, jid, video in encode_stream(DecodePool(2).messages(jobs), SegmentBatcher(enc, 8, times), times):
                if kind == "video":
                    for seg, v in video.vectors.items():
                        vecs[(os.path.basename(paths[jid]), seg)] = v
                        idx[(os.path.basename(paths[jid]), seg)] = video.frame_idx[seg]
            got[mode] = (vecs, idx)
        keys = sorted(got["exact"][0])
        cos = np.array([float(got["exact"][0][k] @ got["fast"][0][k]) for k in keys])
        moved = [k for k in keys if got["exact"][1][k] != got["fast"][1][k]]
        texts = np.asarray(enc.encode_texts([q[0] for q in queries]))
        top, r1 = {}, {}
        for mode in ("exact", "fast"):
            best = (texts @ np.stack([got[mode][0][k] for k in keys]).T).argmax(1)
            top[mode] = [keys[i] for i in best]
            r1[mode] = sum(t[0] == q[1] and (q[2] is None or t[1] == q[2]) for t, q in zip(top[mode], queries))
        row = {
            "model": model, "segments": len(keys), "segments_moved": len(moved),
            "mean_cos": round(float(cos.mean()), 4), "mean_cos_moved": round(float(cos[[keys.index(k) for k in moved]].mean()), 4)
            if moved else None, "min_cos": round(float(cos.min()), 4),
            "same_top1": f"{sum(a == b for a, b in zip(top['exact'], top['fast']))}/{len(queries)}",
            "r1_exact": f"{r1['exact']}/{len(queries)}", "r1_fast": f"{r1['fast']}/{len(queries)}",
        }  # fmt: skip
        rows.append(row)
        out.write(json.dumps(row) + "\n")
        out.flush()
        print("quality:", json.dumps(row), flush=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--videos", type=int, default=24)
    p.add_argument("--size", default="640x360", help="synthetic video size (decode cost grows with it; real footage is larger)")
    p.add_argument("--seconds", type=float, default=20.0, help="length of each synthetic video (2 segments of 10 s)")
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--b32-videos", type=int, default=24, help="videos for the ViT-B/32 part (2 segments each)")
    p.add_argument("--skip", default="", help="parts to leave out: footage, decoders, 1080p, takes, 4k, hour, quality, tiny, b32, memory")
    p.add_argument("--only", default="", help="run only these parts (same names)")
    p.add_argument("--rows", default="bench-ingest-rows.jsonl", help="each finished row is appended here")
    p.add_argument("--footage", type=Path, default=None, help="keep (and reuse) the generated footage in this folder")
    p.add_argument("--before", default=None, help="also time `vsearch index` of this git revision on the 1080p case")
    p.add_argument("--quality-models", default="model,clip-vip", help="models of the quality table (sample_data folders or paths)")
    args = p.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    if args.only:
        skip |= {"footage", "quality", "tiny", "b32", "memory"} - set(args.only.split(","))

    from vsearch.embedding import default_workers
    from vsearch.models import load_encoder
    from vsearch.synth.scenes import RenderSettings, generate

    workers = args.workers or default_workers()
    work = Path(tempfile.mkdtemp(prefix="vsearch-ingest-bench-"))
    os.environ["VSEARCH_HOME"] = str(work / "home")
    report = {"machine": f"{os.cpu_count()} cores", "workers": workers}
    try:
        with open(args.rows, "a") as rows_out:
            if "footage" not in skip:
                report["footage"] = footage_rows(work, rows_out, skip, args.footage, args.before)
            if "quality" not in skip:
                report["quality"] = quality_rows(work, rows_out, tuple(args.quality_models.split(",")))
        width, height = (int(x) for x in args.size.split("x"))
        paths = []
        if not {"tiny", "b32"} <= skip:
            settings = RenderSettings(width=width, height=height, fps=25, seconds=args.seconds)
            generate(work / "set", args.videos, seed=5, settings=settings)
            paths = sorted(str(x) for x in (work / "set" / "videos").iterdir())
        if "tiny" not in skip:
            enc = load_encoder("tiny-clip")
            base_segs, base_s = decode_baseline(paths, enc.spec.frames, enc.spec.pixels.image_size, workers, 10.0)
            segs, secs, timings = vsearch_index(work / "set" / "videos", enc, workers, 16)
            report["tiny"] = {
                "segments": segs,
                "baseline_segments_per_s": round(base_segs / base_s, 2),
                "vsearch_segments_per_s": round(segs / secs, 2),
                "ratio": round((segs / secs) / (base_segs / base_s), 3),
                "vsearch_timings": timings,
            }
            print("tiny encoder:", json.dumps(report["tiny"]), flush=True)
        if "b32" not in skip:
            import torch
            from transformers import CLIPConfig

            from vsearch.models.mean_pool import MeanPoolEncoder

            torch.manual_seed(0)
            big = MeanPoolEncoder.from_config(CLIPConfig(projection_dim=512), frames=12).eval()
            subset = work / "b32"
            (subset / "videos").mkdir(parents=True)
            for x in paths[: args.b32_videos]:
                shutil.copy(x, subset / "videos")
            # The encoder alone, on as many segments, before and after vsearch: a shared machine
            # drifts over minutes, and the faster of the two is the conservative baseline.
            before = encoder_alone(big, 2 * args.b32_videos, 8)
            segs, secs, timings = vsearch_index(subset / "videos", big, workers, 8)
            alone = max(before, encoder_alone(big, segs, 8))
            report["b32"] = {
                "segments": segs,
                "encoder_alone_segments_per_s": round(alone, 3),
                "vsearch_segments_per_s": round(segs / secs, 3),
                "ratio": round((segs / secs) / alone, 3),
                "vsearch_timings": timings,
            }
            print("ViT-B/32-sized encoder:", json.dumps(report["b32"]), flush=True)
        if "memory" not in skip:
            small, large = work / "m20", work / "m200"
            generate(small, 20, seed=6)
            generate(large, 200, seed=6)
            (r20, rc20), (r200, rc200) = index_peak_rss(small / "videos"), index_peak_rss(large / "videos")
            if rc20 or rc200:
                raise SystemExit(f"vsearch index failed (exit codes {rc20}, {rc200}): the memory figures would not mean anything")
            report["memory"] = {"peak_rss_mb_20": round(r20, 1), "peak_rss_mb_200": round(r200, 1), "ratio": round(r200 / r20, 3)}
            print("memory:", json.dumps(report["memory"]), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
