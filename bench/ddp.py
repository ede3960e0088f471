"""Data-parallel overhead on CPU: step time at world size 2 vs 1 for the same global batch.

    python bench/ddp.py [--global-batch 32] [--steps 30]

Both runs use ``vsearch train retrieval`` on ``synth:motion`` with the tiny CLIP-ViP (32 px, 8
frames), one thread per process. On a 2-core machine two processes cannot be faster than one
(they share the cores); the ratio measures what gathering features and averaging gradients
cost. Printed: median seconds per step of each (from the training log), and the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path


def step_time(stdout: str) -> float:
    """Seconds per step of the training loop (``--json`` summary of rank 0; model loading excluded)."""
    summary = json.loads(stdout.strip().splitlines()[-1])
    return summary["seconds"] / summary["steps"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--global-batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=30)
    args = p.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    common = ["--data", "synth:motion,size=32", "--model", "tiny-clip-vip:32", "--frames", "8", "--steps", str(args.steps),
              "--lr", "1e-4", "--workers", "0", "--seed", "0", "--checkpoint-every", "0", "--json"]  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        one, two = Path(tmp) / "one", Path(tmp) / "two"
        r1 = subprocess.run([sys.executable, "-m", "vsearch", "train", "retrieval", *common, "--batch-size", str(args.global_batch),
                        "--out", str(one)], check=True, env=env, capture_output=True, text=True)  # fmt: skip
        r2 = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "vsearch",
                        "train", "retrieval", *common, "--batch-size", str(args.global_batch // 2), "--out", str(two)],
                       check=True, env=env, capture_output=True, text=True)  # fmt: skip
        t1, t2 = step_time(r1.stdout), step_time(r2.stdout)
    print(f"global batch {args.global_batch}, {args.steps} steps, tiny CLIP-ViP 32 px x 8 frames, 1 thread per process")
    print(f"{'':<28}{'s/step':>8}")
    print(f"{'1 process (baseline)':<28}{t1:>8.3f}")
    print(f"{'2 processes, torchrun/gloo':<28}{t2:>8.3f}")
    print(f"ratio 2/1: {t2 / t1:.2f}x (goal <= 1.3x; 2 cores: an overhead check, not a speed-up)")


if __name__ == "__main__":
    main()
