"""Regenerate ``sample_data/``: the demo clips and the tiny model trained by vsearch itself.

    python tools/make_sample_data.py clips              # sample_data/videos + captions.csv (seconds)
    python tools/make_sample_data.py model [--steps N]  # train sample_data/model (about 30 min, 2 CPU cores)

The model is trained on a separate, larger synthetic set (2,000 clips, seed 1) with the
project's own command, ``vsearch train retrieval``; the demo clips use other seeds, so the demo
searches clips the model never saw. The model folder carries no tokenizer files: every CLIP
model uses the same BPE vocabulary, which ships once, inside the package
(``vsearch/models/assets/clip_bpe``), and is used when a model folder has none.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data"


def make_clips() -> None:
    from vsearch.data.synthetic import RenderSettings, generate

    videos = SAMPLE / "videos"
    shutil.rmtree(videos, ignore_errors=True)
    # 36 single-scene clips (3 s each) and 4 compilations of three 10 s scenes, so the demo shows
    # time ranges inside longer videos.
    generate(SAMPLE, 36, seed=7)
    generate(SAMPLE, 4, seed=8, settings=RenderSettings(seconds=10.0), scenes_per_clip=3, csv_name="compilations.csv")
    print(f"wrote {len(list(videos.iterdir()))} clips to {videos}")


def make_model(steps: int, work: Path | None) -> None:
    work = work or Path(tempfile.mkdtemp(prefix="vsearch-sample-"))
    train_set = work / "train"
    val_set = work / "val"
    vs = [sys.executable, "-m", "vsearch_cli.main"]
    if not (train_set / "captions.csv").exists():
        subprocess.run([*vs, "synth", str(train_set), "--count", "2000", "--seed", "1"], check=True)
    if not (val_set / "captions.csv").exists():
        subprocess.run([*vs, "synth", str(val_set), "--count", "96", "--seed", "2"], check=True)
    out = work / "model"
    subprocess.run(
        [
            *vs, "train", "retrieval", "--data", str(train_set / "captions.csv"), "--val", str(val_set / "captions.csv"),
            "--model", "tiny-clip", "--out", str(out), "--steps", str(steps), "--batch-size", "64", "--lr", "1e-3",
            "--weight-decay", "0.05", "--warmup", "0.05", "--frames", "8", "--cache-frames", "--save-dtype", "float16",
            "--checkpoint-every", "250",
        ],
        check=True,
    )  # fmt: skip
    install_model(out)


def install_model(trained: Path) -> None:
    target = SAMPLE / "model"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for name in ("config.json", "model.safetensors", "vsearch.json", "eval.json"):
        if (trained / name).exists():
            shutil.copy(trained / name, target / name)
    cfg_path = trained / "train_config.json"
    if cfg_path.exists():  # keep the recipe, not this machine's temporary paths
        import json

        cfg = json.loads(cfg_path.read_text())
        for key in ("data", "val_data", "out"):
            if cfg.get(key):
                cfg[key] = "/".join(Path(cfg[key]).parts[-2:])
        (target / "train_config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    print(f"installed {trained} as {target}")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="what", required=True)
    sub.add_parser("clips")
    m = sub.add_parser("model")
    m.add_argument("--steps", type=int, default=1500)
    m.add_argument("--work", type=Path, default=None, help="keep the synthetic sets and checkpoints here")
    i = sub.add_parser("install", help="copy an already trained model folder into sample_data/model")
    i.add_argument("trained", type=Path)
    args = p.parse_args()
    if args.what == "clips":
        make_clips()
    elif args.what == "model":
        make_model(args.steps, args.work)
    else:
        install_model(args.trained)
