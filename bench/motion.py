"""Temporal order, learned or not: tiny encoders trained with one budget on the motion benchmark.

    python bench/motion.py --work /tmp/vsearch-motion            # ~3-4 h on 2 CPU cores (4 encoders, 45-75 min each)
    python bench/motion.py --work /tmp/vsearch-motion --steps 200 --encoders tiny-clip-vip
(a finished model under --work is resumed at its last step: only evaluated again)

Data: ``generate_motion_benchmark`` (2,000 training clips of the 36 training combinations; a
test set of 10 groups of 24 clips: each held-out combination next to its direction-flipped
twin). Every encoder starts from random weights (``tiny-clip``, ``tiny-clip-vip``,
``tiny-xclip``, ``tiny-stan``: the same 64 px CLIP size) and is trained
by ``vsearch.train`` with the same data, steps, batch, learning rate, frames and seed. Printed:
R@1 / R@5 inside a group (chance 4.2 / 20.8), direction accuracy (chance 50), top-1 colour+shape,
parameters, and CPU encoding throughput (segments/s). Trained models are kept under --work.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from encoders import rate  # bench/encoders.py: segments/s of encode_videos


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--encoders", default="tiny-clip,tiny-clip-vip,tiny-xclip,tiny-stan")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-count", type=int, default=2000)
    args = p.parse_args()

    from vsearch.data.synthetic import generate_motion_benchmark, write_seen_axis_set
    from vsearch.eval.motion import motion_benchmark
    from vsearch.models import load_encoder
    from vsearch.models.registry import FAMILIES, family_class
    from vsearch.train.loop import TrainConfig, train

    for family in FAMILIES:  # import every model now: a long run must not pick up later edits halfway
        family_class(family)

    data = args.work / "data"
    train_csv, test_csv = data / "train" / "captions.csv", data / "test" / "captions.csv"
    seen_csv = data / "seen" / "captions.csv"
    if not test_csv.exists():
        print(f"writing the benchmark to {data} ...", flush=True)
        generate_motion_benchmark(data, args.train_count, groups=10, seed=args.seed)
    if not seen_csv.exists():  # benchmarks written before the seen-axis set existed
        write_seen_axis_set(data / "seen", groups=10, seed=args.seed)

    rows = []
    for name in args.encoders.split(","):
        untrained = load_encoder(name, cache=False)
        untrained.spec = untrained.spec.with_frames(args.frames)
        base = motion_benchmark(untrained, test_csv, seen_csv=seen_csv, train_csv=train_csv)
        out = args.work / f"{name}-{args.steps}"
        cfg = TrainConfig(
            data=str(train_csv), model=name, out=str(out), steps=args.steps, batch_size=args.batch_size, lr=args.lr,
            weight_decay=0.05, warmup=0.05, frames=args.frames, seed=args.seed, cache_frames=True, checkpoint_every=250,
            save_dtype="float32",
        )  # fmt: skip
        result = train(
            cfg,
            progress=lambda r, n=name: (
                r["step"] % 100 == 0 and print(f"  {n} step {r['step']}/{r['total']} loss {r['loss']:.3f}", flush=True)
            ),
        )
        model = load_encoder(out, cache=False)
        bench = motion_benchmark(model, test_csv, seen_csv=seen_csv, train_csv=train_csv)
        rows.append(
            {
                "encoder": name,
                "family": model.family,
                "params_M": round(model.num_parameters() / 1e6, 2),
                "steps": result.steps,
                "train_samples_per_s": round(_logged_rate(out) or result.samples_per_s, 1),
                "untrained": base,
                "trained": bench,
                "segments_per_s": round(rate(model, args.frames, batch=8, repeats=3), 1),
            }
        )
        (args.work / "results.json").write_text(json.dumps(rows, indent=2) + "\n")

    print(
        f"\nmotion benchmark: {args.steps} steps x batch {args.batch_size}, {args.frames} frames, lr {args.lr}, seed {args.seed}"
    )
    print(
        f"{'encoder':<15}{'params':>8}{'R@1':>7}{'R@5':>7}{'col+shape':>11}"
        f"{'dir:held':>10}{'dir:seen':>10}{'dir:train':>10}{'seg/s':>8}{'train/s':>9}   untrained R@1 / dir:seen"
    )
    for r in rows:
        t, u = r["trained"], r["untrained"]
        print(
            f"{r['encoder']:<15}{r['params_M']:>7}M{t['R@1']:>7.1f}{t['R@5']:>7.1f}{t['top1_colour_shape']:>11.1f}"
            f"{t['direction_accuracy']:>10.1f}{t['direction_accuracy_seen_axis']:>10.1f}{t['direction_accuracy_train']:>10.1f}"
            f"{r['segments_per_s']:>8.1f}{r['train_samples_per_s']:>9.1f}   {u['R@1']:.1f} / {u['direction_accuracy_seen_axis']:.1f}"
        )
    print("chance: R@1 4.2, R@5 20.8, direction 50.0 (24 clips per group, 120 queries)")
    print("dir:held = held-out combinations (biased: their flipped caption was trained on); dir:seen = the unbiased")
    print("test (both directions seen in training); dir:train = 240 training clips (was direction fitted at all?)")


def _logged_rate(out: Path) -> float | None:
    """Median training samples/s from the run's log (a resumed run's own figure covers only its tail)."""
    import statistics

    log = out / "train_log.jsonl"
    if not log.exists():
        return None
    rates = [json.loads(line).get("samples_per_s") for line in log.read_text().splitlines() if line.strip()]
    rates = [r for r in rates if r]
    return statistics.median(rates) if rates else None


if __name__ == "__main__":
    main()
