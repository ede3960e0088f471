"""Finding the moment: films of synthetic scenes with random lengths and random cut points,
indexed like any folder, each scene's caption asked for, the answer's time range scored.

A film is ``scenes_per_film`` scenes back to back, each 2.2-8.6 s long (drawn per scene), so
cuts fall anywhere, never on a segment boundary by design. Each of the 48 colour x shape x
motion scenes appears in exactly one film (12 films of 4), so every caption has one right film
and one right time range. Measures, as Charades-STA and QVHighlights report them:

- ``mean_iou``: temporal IoU of the best hit *inside the right film* with the scene;
- ``r1_iou50`` / ``r1_iou70``: the first hit overall is in the right film with IoU >= 0.5 / 0.7;
- ``video_r1``: the first hit overall is in the right film.

Fixed seeds make a run repeatable; the default seed is this benchmark's own (no film is shared
with any other measurement).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..synth.scenes import ALL_SCENES, Scene, render_scene, write_mp4

#: Scene lengths are drawn uniformly from this range (seconds).
SCENE_SECONDS = (2.2, 8.6)
DEFAULT_SEED = 20261207


@dataclass
class Film:
    path: str
    #: (start s, end s, scene), back to back from 0.
    scenes: list[tuple[float, float, Scene]] = field(default_factory=list)


def render_films(
    out_dir: str | os.PathLike[str],
    count: int = 12,
    scenes_per_film: int = 4,
    seed: int = DEFAULT_SEED,
    fps: int = 10,
    size: tuple[int, int] = (96, 64),
) -> list[Film]:
    """Write ``count`` films under ``out_dir``; each scene is used once across all of them."""
    if count * scenes_per_film > len(ALL_SCENES):
        raise ValueError(f"{count} films of {scenes_per_film} scenes need more than the {len(ALL_SCENES)} distinct scenes")
    rng = np.random.default_rng(seed)
    order = [ALL_SCENES[i] for i in rng.permutation(len(ALL_SCENES))]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    films = []
    for f in range(count):
        parts, timeline, t = [], [], 0
        for scene in order[f * scenes_per_film : (f + 1) * scenes_per_film]:
            n = max(1, int(round(rng.uniform(*SCENE_SECONDS) * fps)))
            parts.append(render_scene(scene, n, size[0], size[1], rng))
            timeline.append((t / fps, (t + n) / fps, scene))
            t += n
        path = out / f"film_{f:02d}.mp4"
        write_mp4(path, np.concatenate(parts), fps)
        films.append(Film(str(path), timeline))
    return films


def temporal_iou(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Intersection over union of two time ranges (0 when they do not meet)."""
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(a[1], b[1]) - min(a[0], b[0])
    return inter / union if union > 0 else 0.0


def match_cuts(found: list[float], truth: list[float], tolerance: float) -> tuple[int, int, int]:
    """(true positives, false positives, misses): each true cut is matched by at most one found
    cut within ``tolerance`` seconds, nearest first."""
    pairs = sorted((abs(f - t), i, j) for i, f in enumerate(found) for j, t in enumerate(truth) if abs(f - t) <= tolerance + 1e-6)
    used_f: set[int] = set()
    used_t: set[int] = set()
    for _d, i, j in pairs:
        if i not in used_f and j not in used_t:
            used_f.add(i)
            used_t.add(j)
    return len(used_f), len(found) - len(used_f), len(truth) - len(used_t)


def boundary_scores(tp: int, fp: int, fn: int) -> dict:
    """Precision, recall and F1 of cut detection (1.0 where nothing was there to find or claim)."""
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 3), "recall": round(recall, 3), "f1": round(f1, 3), "cuts": tp + fn}


def cut_tolerance(fps: float) -> float:
    """A found cut matches a true one within one frame or 0.1 s, whichever is more."""
    return max(1.0 / fps if fps > 0 else 0.0, 0.1)


def hit_range(hit) -> tuple[float, float]:
    """The time range a hit answers with: its refined moment where search gives one
    (``moment_start`` / ``moment_end``), else its segment's range."""
    start, end = getattr(hit, "moment_start", None), getattr(hit, "moment_end", None)
    if start is not None and end is not None:
        return float(start), float(end)
    return float(hit.start), float(hit.end)


def moment_report(store, encoder, films: list[Film]) -> dict:
    """Ask every scene's caption of ``store`` (all segments ranked) and score the answers: a
    hit's refined moment where search gives one (``hit_range``); ``segment_ranges`` holds the
    same measures on the hits' segment ranges, to tell the segments' share from the refinement's."""
    from ..search import MAX_K, search

    asked = []
    for film in films:
        path = os.path.abspath(film.path)
        for start, end, scene in film.scenes:
            hits = search(store, scene.caption, MAX_K, encoder=encoder, segments=True).hits
            asked.append((path, (start, end), scene, hits))
    report = {"films": len(films), "queries": len(asked), **_scores(asked, hit_range, rows=True)}
    report["segment_ranges"] = _scores(asked, lambda h: (float(h.start), float(h.end)))
    return report


def _scores(asked: list, ranged, rows: bool = False) -> dict:
    """Mean IoU of the best hit in the right film, R@1 at IoU 0.5 / 0.7 and video R@1, with
    ``ranged(hit)`` as each hit's answer."""
    ious, r50, r70, video, out = [], [], [], [], []
    for path, scene_range, scene, hits in asked:
        inside = [h for h in hits if os.path.abspath(h.path) == path]
        best = inside[0] if inside else None
        iou = temporal_iou(ranged(best), scene_range) if best else 0.0
        top = hits[0] if hits else None
        first_right = top is not None and os.path.abspath(top.path) == path
        top_iou = temporal_iou(ranged(top), scene_range) if first_right else 0.0
        ious.append(iou)
        r50.append(first_right and top_iou >= 0.5)
        r70.append(first_right and top_iou >= 0.7)
        video.append(first_right)
        out.append(
            {"film": os.path.basename(path), "caption": scene.caption, "scene": [round(t, 2) for t in scene_range],
             "hit": [round(t, 2) for t in ranged(best)] if best else None, "iou": round(iou, 3),
             "first_is_right_film": first_right}
        )  # fmt: skip
    pct = lambda xs: round(100.0 * float(np.mean(xs)), 1) if xs else 0.0  # noqa: E731
    scores = {
        "mean_iou": round(float(np.mean(ious)), 3) if ious else 0.0,
        "r1_iou50": pct(r50),
        "r1_iou70": pct(r70),
        "video_r1": pct(video),
    }
    return {**scores, "rows": out} if rows else scores


def evaluate_moments(
    model: str,
    work: str | os.PathLike[str],
    *,
    count: int = 12,
    seed: int = DEFAULT_SEED,
    segment_seconds: float | None = None,
    segmenter: str = "shots",
    device: str | None = None,
    load=None,
    fps: int = 10,
) -> dict:
    """Render the films into ``work``, index them with ``model`` into a store there, and score.
    ``segmenter``: "shots" (segments end at the films' detected cuts, as `vsearch index` cuts a
    new store's videos) or "fixed" windows. With shots the report scores the cuts found too."""
    from ..ingest import index
    from ..models import load_encoder
    from ..store import Store

    encoder = (load or load_encoder)(model, device=device)
    films = render_films(Path(work) / "films", count, seed=seed, fps=fps)
    with Store.open(Path(work) / "store") as st:
        kwargs = {} if segment_seconds is None else {"segment_seconds": segment_seconds}
        index(st, [Path(work) / "films"], encoder, workers=0, segmenter=segmenter, **kwargs)
        report = moment_report(st, encoder, films)
        report["segment_seconds"] = st.segmenting()[0]
        report["segmenter"] = st.segmenter()
        report["segments"] = st.count_segments()
        if report["segmenter"] == "shots":  # how well the store found the films' cuts
            known = st.known_videos([os.path.abspath(Path(work) / "films")])
            counts = [0, 0, 0]
            for film in films:
                stored = known.get(os.path.abspath(film.path))
                found = (st.cuts(stored.id) or []) if stored is not None else []
                got = match_cuts(found, [b for _a, b, _s in film.scenes[:-1]], cut_tolerance(fps))
                counts = [c + g for c, g in zip(counts, got)]
            report["cut_detection"] = boundary_scores(*counts)
    report.update(model=str(model), seed=seed)
    return report
