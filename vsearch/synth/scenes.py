"""Procedural video-caption sets: coloured shapes moving on plain backgrounds.

No weights or datasets can be downloaded here, yet the engine must be shown to find the right
video. These clips are real H.264 mp4 files (PyAV + libx264) with captions that are true by
construction ("a red circle moving left"), so a model trained on one set can be measured on
another. Motion direction is the part a frame-averaging encoder cannot see: "moving left" and
"moving right" use the same frames in reverse order.

Command line: ``vsearch-synth OUT --count 40`` or ``python -m vsearch.synth.scenes OUT``.
"""

from __future__ import annotations

import csv
import itertools
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SHAPES = ("circle", "square", "triangle")
COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (50, 90, 230),
    "yellow": (235, 205, 40),
}
MOTIONS = ("left", "right", "up", "down")
OPPOSITE = {"left": "right", "right": "left", "up": "down", "down": "up"}
_DIRECTION = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}


@dataclass(frozen=True)
class Scene:
    shape: str
    colour: str
    motion: str

    @property
    def caption(self) -> str:
        return f"a {self.colour} {self.shape} moving {self.motion}"

    @property
    def slug(self) -> str:
        return f"{self.colour}_{self.shape}_{self.motion}"

    @classmethod
    def parse(cls, caption: str) -> Scene:
        words = caption.strip().split()
        if len(words) != 5 or words[0] != "a" or words[3] != "moving":
            raise ValueError(f"not a synthetic caption: {caption!r}")
        return cls(words[2], words[1], words[4])


ALL_SCENES = tuple(Scene(s, c, m) for c, s, m in itertools.product(COLOURS, SHAPES, MOTIONS))


@dataclass
class RenderSettings:
    width: int = 128
    height: int = 96
    fps: int = 15
    seconds: float = 3.0
    crf: int = 28


@dataclass
class SyntheticClip:
    path: str
    caption: str
    scenes: list[tuple[float, float, Scene]] = field(default_factory=list)


def render_scene(scene: Scene, frames: int, width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """``(frames, height, width, 3)`` uint8: one shape crossing a plain background.

    Background shade, size, start position and speed are random; the shape always stays fully
    inside the frame so its colour and outline are visible in every frame.
    """
    bg, half, span_x, span_y = _object_layout(width, height, rng)
    dx, dy = _DIRECTION[scene.motion]
    # Travel a random share of the free span along the motion axis; random position across it.
    travel = rng.uniform(0.45, 0.9) * (span_x if dx else span_y)
    if dx:
        x0 = half + (rng.uniform(0, span_x - travel) if dx > 0 else rng.uniform(travel, span_x))
        y0 = half + rng.uniform(0, span_y)
    else:
        y0 = half + (rng.uniform(0, span_y - travel) if dy > 0 else rng.uniform(travel, span_y))
        x0 = half + rng.uniform(0, span_x)
    p = np.arange(frames) / max(frames - 1, 1)
    return _draw(scene, x0 + dx * travel * p, y0 + dy * travel * p, half, bg, width, height)


def render_wander(scene: Scene, frames: int, width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """``(frames, height, width, 3)`` uint8: one shape drifting with no direction (``scene.motion``
    is ignored): a random walk of independent steps, each up to 15% of the free span, held inside
    the frame. Played backwards it is another draw of the same walk, so a caption that names only
    colour and shape is true of it either way: the object is seen in motion without seeing where
    it goes (camera shake, a thing bobbing in place)."""
    bg, half, span_x, span_y = _object_layout(width, height, rng)
    step = 0.15 * min(span_x, span_y)
    xs, ys = [half + rng.uniform(0, span_x)], [half + rng.uniform(0, span_y)]
    for _ in range(frames - 1):
        angle, length = rng.uniform(0, 2 * np.pi), step * np.sqrt(rng.uniform())
        xs.append(float(np.clip(xs[-1] + length * np.cos(angle), half, half + span_x)))
        ys.append(float(np.clip(ys[-1] + length * np.sin(angle), half, half + span_y)))
    return _draw(scene, np.array(xs), np.array(ys), half, bg, width, height)


def _object_layout(width: int, height: int, rng: np.random.Generator) -> tuple[int, float, int, int]:
    """Background shade, half the shape's size, and the free span (x, y) its centre may move over."""
    bg = int(rng.integers(30, 226))
    size = int(rng.uniform(0.22, 0.36) * min(width, height))
    return bg, size / 2, width - size, height - size


def _draw(scene: Scene, cx: np.ndarray, cy: np.ndarray, half: float, bg: int, width: int, height: int) -> np.ndarray:
    """The shape centred at ``(cx[t], cy[t])`` in frame t, on a plain ``bg`` background."""
    colour = np.array(COLOURS[scene.colour], dtype=np.uint8)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32) + 0.5
    out = np.full((len(cx), height, width, 3), bg, dtype=np.uint8)
    for t, (x, y) in enumerate(zip(cx.tolist(), cy.tolist())):  # Python floats: float32 masks, as before
        out[t][_mask(scene.shape, xx - x, yy - y, half)] = colour
    return out


def _mask(shape: str, x: np.ndarray, y: np.ndarray, r: float) -> np.ndarray:
    if shape == "circle":
        return x * x + y * y <= r * r
    if shape == "square":
        s = r * 0.85
        return (np.abs(x) <= s) & (np.abs(y) <= s)
    if shape == "triangle":  # apex up, base at the bottom
        yb = y + r * 0.2
        return (yb <= r * 0.8) & (yb >= -r) & (np.abs(x) <= (yb + r) * 0.58)
    raise ValueError(f"unknown shape {shape!r}")


def write_mp4(path: str | os.PathLike[str], frames: np.ndarray, fps: int, crf: int = 28, codec: str = "libx264") -> None:
    """Encode uint8 RGB frames as a real video file (H.264 in mp4 by default)."""
    import av

    n, h, w, _ = frames.shape
    with av.open(os.fspath(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = w, h
        stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": str(crf), "preset": "veryfast", "tune": "animation"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_clip(
    path: str | os.PathLike[str],
    scenes: Sequence[Scene],
    settings: RenderSettings,
    rng: np.random.Generator,
) -> SyntheticClip:
    """One file holding ``scenes`` back to back, each ``settings.seconds`` long."""
    per_scene = max(1, int(round(settings.seconds * settings.fps)))
    parts = [render_scene(s, per_scene, settings.width, settings.height, rng) for s in scenes]
    write_mp4(path, np.concatenate(parts), settings.fps, settings.crf)
    timeline = [(i * settings.seconds, (i + 1) * settings.seconds, s) for i, s in enumerate(scenes)]
    return SyntheticClip(os.fspath(path), "; ".join(s.caption for s in scenes), timeline)


def generate(
    out_dir: str | os.PathLike[str],
    count: int,
    *,
    seed: int = 0,
    scenes: Iterable[Scene] | None = None,
    settings: RenderSettings | None = None,
    scenes_per_clip: int = 1,
    prefix: str = "",
    csv_name: str = "captions.csv",
) -> list[SyntheticClip]:
    """Write ``count`` clips under ``out_dir/videos`` and a ``captions.csv`` (``path,caption``).

    Scenes cycle through ``scenes`` (all 48 colour x shape x motion combinations by default) in
    a seeded random order, so every combination appears about equally often. Paths in the CSV
    are relative to the CSV's folder. Multi-scene clips also get ``segments.csv``
    (``path,start,end,caption``).
    """
    settings = settings or RenderSettings()
    pool = list(scenes) if scenes is not None else list(ALL_SCENES)
    if not pool:
        raise ValueError("no scenes to render")
    rng = np.random.default_rng(seed)
    out = Path(out_dir)
    (out / "videos").mkdir(parents=True, exist_ok=True)
    order: list[Scene] = []
    while len(order) < count * scenes_per_clip:
        order.extend(pool[i] for i in rng.permutation(len(pool)))
    clips = []
    counters: dict[str, int] = {}
    for i in range(count):
        chosen = order[i * scenes_per_clip : (i + 1) * scenes_per_clip]
        stem = chosen[0].slug if scenes_per_clip == 1 else "compilation"
        counters[stem] = counters.get(stem, 0) + 1
        name = f"{prefix}{stem}_{counters[stem]:02d}.mp4"
        clip_rng = np.random.default_rng([seed, i])
        clips.append(write_clip(out / "videos" / name, chosen, settings, clip_rng))
    with open(out / csv_name, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "caption"])
        for c in clips:
            w.writerow([os.path.relpath(c.path, out), c.caption])
    if scenes_per_clip > 1:
        with open(out / "segments.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["path", "start", "end", "caption"])
            for c in clips:
                for start, end, scene in c.scenes:
                    w.writerow([os.path.relpath(c.path, out), f"{start:g}", f"{end:g}", scene.caption])
    return clips


def motion_split() -> tuple[list[Scene], list[Scene]]:
    """Compositional split: for each colour x shape pair, one motion is held out of training.

    Every colour, shape and motion word is seen in training, but the 12 held-out combinations
    ("a red circle moving left", ...) never are. The motion held out rotates over the pairs, so
    each motion is held out three times.
    """
    pairs = list(itertools.product(COLOURS, SHAPES))
    heldout = [Scene(shape, colour, MOTIONS[i % len(MOTIONS)]) for i, (colour, shape) in enumerate(pairs)]
    train = [s for s in ALL_SCENES if s not in heldout]
    return train, heldout


def write_seen_axis_set(
    out_dir: str | os.PathLike[str], groups: int = 10, *, seed: int = 0, settings: RenderSettings | None = None
) -> Path:
    """Clips of the motion axis each colour x shape pair kept whole in training.

    The held-out motion of a pair ("left") has a seen twin ("right"), so comparing those two
    captions also compares a caption the model never saw with one it saw many times: a bias,
    not temporal order. The other axis ("up" and "down") was seen in both directions, so on
    these clips only the order of the frames can tell the two captions apart.
    """
    settings = settings or RenderSettings()
    out = Path(out_dir)
    (out / "videos").mkdir(parents=True, exist_ok=True)
    _train, heldout = motion_split()
    rows = []
    for g in range(groups):
        for i, held in enumerate(heldout):
            axis = ("up", "down") if held.motion in ("left", "right") else ("left", "right")
            for k, motion in enumerate(axis):
                sc = Scene(held.shape, held.colour, motion)
                path = out / "videos" / f"g{g:02d}_{sc.slug}.mp4"
                write_clip(path, [sc], settings, np.random.default_rng([seed + 2, g, i, k]))
                rows.append([os.path.relpath(path, out), sc.caption, str(g), "0"])
    return _write_grouped_csv(out / "captions.csv", rows)


AXES = {"horizontal": ("left", "right"), "vertical": ("up", "down")}
#: Held out of the reversal-closed split: whole (colour, shape, axis) groups, both directions
#: together, plus two whole (colour, shape) pairs (both axes). Every colour, shape and direction
#: word still occurs in training.
REVERSAL_HELDOUT_GROUPS = (
    ("red", "circle", "horizontal"),
    ("green", "square", "vertical"),
    ("blue", "triangle", "horizontal"),
    ("yellow", "square", "vertical"),
)
REVERSAL_HELDOUT_PAIRS = (("green", "triangle"), ("blue", "circle"))


def static_caption(scene: Scene) -> str:
    """What an image captioner would say about one frame: colour and shape, no motion."""
    return f"a {scene.colour} {scene.shape}"


def reversal_split() -> tuple[list[Scene], list[Scene]]:
    """(train, held-out) scenes, closed under time reversal.

    A held-out single direction would leak through its reversed training twin (reversing a
    "moving right" clip *is* a "moving left" clip), so whole axis groups are held out: both
    directions of (colour, shape, axis), plus every motion of a few (colour, shape) pairs.
    """
    held = set()
    for colour, shape, axis in REVERSAL_HELDOUT_GROUPS:
        held.update(Scene(shape, colour, m) for m in AXES[axis])
    for colour, shape in REVERSAL_HELDOUT_PAIRS:
        held.update(Scene(shape, colour, m) for m in MOTIONS)
    train = [s for s in ALL_SCENES if s not in held]
    return train, [s for s in ALL_SCENES if s in held]


def write_direction_set(
    out_dir: str | os.PathLike[str],
    groups: int = 5,
    *,
    seed: int = 1000,
    settings: RenderSettings | None = None,
    scenes: Sequence[Scene] | None = None,
) -> Path:
    """Fixed-seed evaluation clips of the held-out scenes of ``reversal_split`` (files, so that
    every model is measured on the same bytes). ``groups`` clips per scene; ``eval.direction``
    adds each clip's time reversal in memory. Columns ``path,caption,group,heldout``."""
    settings = settings or RenderSettings(width=64, height=64, fps=8, seconds=1.0)
    out = Path(out_dir)
    (out / "videos").mkdir(parents=True, exist_ok=True)
    pool = list(scenes) if scenes is not None else reversal_split()[1]
    rows = []
    for g in range(groups):
        for i, sc in enumerate(pool):
            path = out / "videos" / f"g{g:02d}_{sc.slug}.mp4"
            write_clip(path, [sc], settings, np.random.default_rng([seed, g, i]))
            rows.append([os.path.relpath(path, out), sc.caption, str(g), "1"])
    return _write_grouped_csv(out / "captions.csv", rows)


def _write_grouped_csv(path: Path, rows: list[list[str]]) -> Path:
    """The benchmark file format ``eval.motion`` reads: ``path,caption,group,heldout``."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "caption", "group", "heldout"])
        w.writerows(rows)
    return path


def main(argv: Sequence[str] | None = None) -> None:
    import argparse

    p = argparse.ArgumentParser(prog="vsearch-synth", description="Write synthetic captioned video clips.")
    p.add_argument("out", help="output folder (gets videos/ and captions.csv)")
    p.add_argument("--count", type=int, default=40)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--height", type=int, default=96)
    p.add_argument("--fps", type=int, default=15)
    p.add_argument("--seconds", type=float, default=3.0, help="length of each scene")
    p.add_argument("--scenes-per-clip", type=int, default=1)
    args = p.parse_args(argv)
    settings = RenderSettings(args.width, args.height, args.fps, args.seconds)
    clips = generate(args.out, args.count, seed=args.seed, settings=settings, scenes_per_clip=args.scenes_per_clip)
    print(f"wrote {len(clips)} clips to {args.out}")


if __name__ == "__main__":
    main()
