"""Temporal order, learned or not: one budget, one held-out set, every encoder family.

    python bench/motion.py --work /tmp/vsearch-motion                 # every row, one after another (~15-20 min each, 1 core)
    python bench/motion.py --work /tmp/vsearch-motion --rows clip-vip-image-rev
    python bench/motion.py --work /tmp/vsearch-motion --table         # print the merged table only

Each finished row is written to ``WORK/results.jsonl`` at once (a row already there is not run
again; delete its line to redo it), so rows can run one at a time, in separate sessions, and
be merged. Trainings checkpoint every 250 steps and resume where they stopped.

Data: ``synth:motion`` rendered on the fly (fresh clips every step, scenes of the
reversal-closed training split only: ``data.synthetic.reversal_split``), evaluated on a
fixed-seed file set of the held-out scenes (whole colour+shape+axis groups and whole
colour+shape pairs, never a single direction) plus each clip's exact time reversal
(``eval.direction``). Every row: same steps, batch, lr, frames, size, seed. Rows marked
"image" start from ``image-clip``: a tiny CLIP trained by ``vsearch train`` on 1-frame stills
("a red circle"), the offline stand-in for OpenAI CLIP. Every family can start from it, as each
paper starts from OpenAI CLIP: CLIP-ViP adds proxies and a temporal table, STAN its branch,
X-CLIP its message tokens, MIT and prompt generator (``new`` in each training log).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import NamedTuple


class Row(NamedTuple):
    """One row: where it starts, what goes on top, and how it trains."""

    #: "image": the image CLIP trained on stills of the motion training split's objects;
    #: "image-all": on stills of every (colour, shape), as OpenAI CLIP has seen every object
    #: (stills carry no direction, so nothing about order leaks); or a tiny registry model.
    model: str
    #: The family put on top of the start (None: the start's own).
    family: str | None
    reversal: str
    note: str = ""
    #: Options appended to ``synth:motion,size=32``.
    stream: str = ""
    #: Draw the temporal table from N(0, --temporal-init-std²); False keeps the reference's zeros.
    temporal_init: bool = True


ROWS: dict[str, Row] = {
    "mean-pool-image-rev": Row("image", None, "twins", "leak check: must be exactly 50"),
    "mean-pool-image-all-rev": Row("image-all", None, "twins", "leak check, all-objects image CLIP"),
    "clip-vip-image-all-rev": Row("image-all", "clip-vip", "twins"),
    "clip-vip-image-all-rev-stills": Row(
        "image-all", "clip-vip", "twins", "a quarter of the items still objects", ",stills=0.25"
    ),
    "mean-pool-image-all-rev-stills": Row("image-all", None, "twins", "leak check, with stills", ",stills=0.25"),
    "clip-vip-image-all-stills": Row(
        "image-all", "clip-vip", "off", "no reversal, zero temporal table: appearance lost before order", ",stills=0.25", False
    ),
    "mean-pool-image-all-rev-wander": Row(
        "image-all", None, "twins", "leak check, stills and objects on random walks", ",stills=0.25,wander=0.25"
    ),
    "clip-vip-image-all-rev-wander": Row(
        "image-all", "clip-vip", "twins", "stills and objects on random walks", ",stills=0.25,wander=0.25"
    ),
    "clip-vip-scratch": Row("tiny-clip-vip:32", None, "off"),
    "clip-vip-scratch-rev": Row("tiny-clip-vip:32", None, "twins"),
    "clip-vip-image": Row("image", "clip-vip", "off"),
    "clip-vip-image-rev": Row("image", "clip-vip", "twins", "the recipe"),
    "stan-image-rev": Row("image", "stan", "twins"),
    "xclip-image-rev": Row("image", "xclip", "twins"),
}


def image_clip(work: Path, args, split: str = "train") -> Path:
    """The image-CLIP stand-in: tiny CLIP, 32 px, trained on 1-frame stills."""
    from vsearch.train.loop import TrainConfig, train

    out = work / ("image-clip" if split == "train" else "image-clip-all")
    if not (out / "train_config.json").exists():
        cfg = TrainConfig(
            data="synth:static,size=32" + (",split=all" if split == "all" else ""), model="tiny-clip:32", out=str(out),
            frames=1, steps=args.image_steps,
            batch_size=64, lr=1e-3, weight_decay=0.05, warmup=0.05, seed=args.seed, workers=0, checkpoint_every=500,
        )  # fmt: skip
        train(cfg)
    return out


def run_row(name: str, work: Path, args, test_csv: Path) -> dict:
    from vsearch.eval.direction import evaluate_direction
    from vsearch.models import load_encoder
    from vsearch.train.loop import TrainConfig, train

    row = ROWS[name]
    model, family, reversal = row.model, row.family, row.reversal
    start = "scratch" if model.startswith("tiny-") else "image CLIP" if model == "image" else "image CLIP (all)"
    if model in ("image", "image-all"):
        model = str(image_clip(work, args, "train" if model == "image" else "all"))
    out = work / name
    cfg = TrainConfig(
        data="synth:motion,size=32" + row.stream, model=model, family=family, out=str(out),
        frames=args.frames, steps=args.steps,
        batch_size=args.batch_size, lr=args.lr, weight_decay=0.05, warmup=0.05, seed=args.seed, workers=0,
        checkpoint_every=250, time_reversal=reversal, pair_weight=args.pair_weight if reversal != "off" else 0.0,
        temporal_init_std=args.temporal_init_std if row.temporal_init and (family or not row.model.startswith("image")) else None,
    )  # fmt: skip
    t0 = time.perf_counter()
    if not (out / "train_config.json").exists():
        result = train(
            cfg,
            progress=lambda r: r["step"] % 250 == 0 and print(f"  {name} step {r['step']}/{r['total']} loss {r['loss']:.3f}", flush=True),
        )  # fmt: skip
        rate = result.samples_per_s
        wall = time.perf_counter() - t0
    else:  # trained earlier (another session): its own log has the figures
        log = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines() if '"loss"' in x]
        rate, wall = log[-1]["samples_per_s"], cfg.steps * cfg.batch_size / log[-1]["samples_per_s"]
    enc = load_encoder(out, cache=False)
    report = evaluate_direction(enc, test_csv)
    return {
        "row": name, "family": enc.family, "start": start,
        "reversal": reversal, "data": cfg.data, "pair_weight": cfg.pair_weight, "temporal_init_std": cfg.temporal_init_std, "note": row.note,
        "steps": args.steps, "batch": args.batch_size, "lr": args.lr, "frames": args.frames, "size": 32, "seed": args.seed,
        "train_wall_s": round(wall, 1), "samples_per_s": round(rate, 1), **report,
    }  # fmt: skip


def print_table(results: list[dict]) -> None:
    head = f"{'row':<31}{'start':<17}{'rev':<7}{'text':>6}{'ties':>6}{'video':>7}{'ties':>6}{'4-way':>7}{'R@1':>6}{'R@5':>6}{'col+sh':>8}{'rsens':>7}{'steps':>7}{'min':>6}"
    print(head)
    for r in results:
        print(
            f"{r['row']:<31}{r['start']:<17}{r['reversal']:<7}{r['text_side']:>6.1f}{r['text_side_ties']:>6.0f}"
            f"{r['video_side']:>7.1f}{r['video_side_ties']:>6.0f}{r['four_way']:>7.1f}{r['R@1']:>6.1f}{r['R@5']:>6.1f}"
            f"{r['colour_shape_top1']:>8.1f}{r['reversal_sensitivity']:>7.3f}{r['steps']:>7}{r['train_wall_s'] / 60:>6.1f}"
        )
    print("held-out scenes only; text = clip picks its caption over the swapped one; video = caption picks its clip over")
    print("the reversed clip (ties: % within 1e-5); 4-way among the 4 motions (chance 25); R@K inside a group (v and")
    print("reversed v of every held-out scene); rsens = 1 - cos(clip, reversed clip); min = training wall time.")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, required=True)
    # The recipe first and the leak check second: the rows a short session most needs.
    first = ("clip-vip-image-rev", "mean-pool-image-rev")
    order = [*first, *(r for r in ROWS if r not in first)]
    p.add_argument("--rows", default=",".join(order), help=f"comma-separated, from: {', '.join(ROWS)}")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--image-steps", type=int, default=4000)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--pair-weight", type=float, default=1.0)
    p.add_argument("--temporal-init-std", type=float, default=0.5)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--table", action="store_true", help="print the merged results and exit")
    args = p.parse_args()

    args.work.mkdir(parents=True, exist_ok=True)
    results_file = args.work / "results.jsonl"
    done = {}
    if results_file.exists():
        for line in results_file.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                done[row["row"]] = row
    if not args.table:
        from vsearch.models.catalog import FAMILIES, family_class
        from vsearch.synth.scenes import write_direction_set

        for family in FAMILIES:  # import every model now: a long run must not pick up later edits halfway
            family_class(family)
        import vsearch.eval.direction  # noqa: F401 - and the training and evaluation code
        import vsearch.train.loop  # noqa: F401
        import vsearch.train.tasks  # noqa: F401

        test_csv = args.work / "direction" / "captions.csv"
        if not test_csv.exists():
            write_direction_set(args.work / "direction", groups=5, seed=1000)
        for name in args.rows.split(","):
            if name not in ROWS:
                raise SystemExit(f"unknown row {name!r} (choose from {', '.join(ROWS)})")
            if name in done:
                continue
            print(f"row {name} ...", flush=True)
            row = run_row(name, args.work, args, test_csv)
            done[name] = row
            with open(results_file, "a") as f:
                f.write(json.dumps(row) + "\n")
                f.flush()
                os.fsync(f.fileno())
    print_table([done[n] for n in ROWS if n in done])


if __name__ == "__main__":
    main()
