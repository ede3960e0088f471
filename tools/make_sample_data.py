"""Regenerate ``sample_data/``: the demo clips and the tiny model trained by vsearch itself.

    python tools/make_sample_data.py clips              # sample_data/videos + captions.csv (seconds)
    python tools/make_sample_data.py model [--steps N]  # train sample_data/model (about 30 min, 2 CPU cores)
    python tools/make_sample_data.py temporal [--work W] # train sample_data/clip-vip (about 100 min, 1-2 CPU cores)

The model is trained on a separate, larger synthetic set (2,000 clips, seed 1) with the
project's own command, ``vsearch train retrieval``; the demo clips use other seeds, so the demo
searches clips the model never saw. The model folder carries no tokenizer files: every CLIP
model uses the same BPE vocabulary, which ships once, inside the package
(``vsearch/models/assets/clip_bpe``), and is used when a model folder has none.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data"


def make_clips() -> None:
    from vsearch.synth.scenes import RenderSettings, generate

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


def make_temporal(
    work: Path | None,
    image_steps: int,
    pretrain_steps: int,
    train_steps: int,
    image_split: str,
    stills: float = 0.25,
    wander: float = 0.25,
    vision_width: int = 64,
    harden: bool = True,
) -> None:
    """The temporal demo model, as the CLIP-ViP paper builds one, in miniature, with vsearch's commands:

    1. an image CLIP stand-in: a tiny CLIP (32 px) trained on 1-frame stills ("a red circle"),
       from ``tiny-clip:32`` or, with another ``vision_width``, from ``tools/tiny_clip.py``'s folder;
    2. CLIP-ViP post-pretrained from it by ``vsearch pretrain`` (its CLIP weights load; proxies and
       temporal embedding are new): omnisource loss on moving shapes rendered on the fly, with
       time-reversal twins in every batch, and a share of still objects (``stills``) and of
       objects on random walks (``wander``) of every colour and shape, captioned by appearance:
       without them the video tower trades appearance for order on the pairs it never saw move;
    3. trained on from there by ``vsearch train retrieval`` on the same stream and twins (the step
       where direction takes hold: reversal sensitivity jumps and held-out direction goes to ~100%);
    4. hardened (``harden``), three short runs, each from the one before (docs/temporal-order.md):
       a. the same stream, half of it drawn as footage arrives (another size and aspect, noise,
          JPEG, a random resampler: ``augment=0.5``), every clip drawn a second way too
          (``views=2``) and the two embeddings pulled together (``--view-consistency``): the
          step-3 model moved by cos 0.08-0.12 when a phone file's pixels differed by a grey level;
       b. from a, more stills and frame captions (``looks``): 12 of 12 "a COLOUR SHAPE" queries,
          but search by image found the object for only 30 of 36 clips;
       c. from a, the same with ``--image-video`` (a clip's middle frame, embedded as a picture
          query is, must find its clip): 36 of 36 by image, then d. a share of the degraded clips
          down a phone file's path (``turned=0.3``) at a low rate; c-d moved less order and
          rotated files further than b;
       e. the shipped model is the average of b's and d's weights (a uniform "model soup":
          both come from a, so their weights average into a model that keeps most of each);
    5. measured on the held-out direction set (scenes never trained on, with their reversals).
    Every step checkpoints and resumes: run the same command again after an interruption.
    """
    work = work or Path(tempfile.mkdtemp(prefix="vsearch-temporal-"))
    work.mkdir(parents=True, exist_ok=True)
    vs = [sys.executable, "-m", "vsearch"]
    image, pre, vip = work / "image-clip", work / "clip-vip-pretrained", work / "clip-vip"
    common = ["--lr", "1e-3", "--weight-decay", "0.05", "--warmup", "0.05", "--workers", "0", "--seed", "1"]
    still = "synth:static,size=32" + (",split=all" if image_split == "all" else "")
    start = "tiny-clip:32"
    if vision_width != 64:
        start = str(work / f"tiny-clip-v{vision_width}")
        if not Path(start).exists():
            subprocess.run(
                [sys.executable, str(ROOT / "tools" / "tiny_clip.py"), start, "--vision-width", str(vision_width)], check=True
            )
    # A finished step makes the ones before it unnecessary (their folders may be gone).
    need_vip = not (vip / "train_config.json").exists()
    need_pre = need_vip and not (pre / "train_config.json").exists()
    if need_pre and not (image / "train_config.json").exists():
        subprocess.run(
            [*vs, "train", "retrieval", "--data", still, "--model", start, "--frames", "1",
             "--steps", str(image_steps), "--batch-size", "64", "--checkpoint-every", "500", "--out", str(image), *common],
            check=True,
        )  # fmt: skip
    reversal = ["--frames", "8", "--time-reversal", "twins", "--pair-weight", "1", "--batch-size", "32",
                "--checkpoint-every", "250"]  # fmt: skip
    motion = "synth:motion,size=32" + (f",stills={stills}" if stills else "") + (f",wander={wander}" if wander else "")
    if need_pre:
        subprocess.run(
            [*vs, "pretrain", "--model", str(image), "--family", "clip-vip", "--temporal-init-std", "0.5",
             "--data", motion, "--steps", str(pretrain_steps), "--out", str(pre), *reversal, *common],
            check=True,
        )  # fmt: skip
    if need_vip:
        subprocess.run(
            [*vs, "train", "retrieval", "--model", str(pre), "--steps", str(train_steps), "--save-dtype", "float16",
             "--out", str(vip), *reversal, "--data", motion, *common[:-1], "2"],  # another seed: fresh clips
            check=True,
        )  # fmt: skip
    final = vip
    if harden:
        # (folder, from, data, extra options, steps, lr, seed)
        looks = "synth:motion,size=32,stills=0.35,wander=0.25,framecaps=0.25,augment=0.5,views=2"
        stages = [
            ("clip-vip-robust", vip, motion + ",augment=0.5,views=2", [], 1500, "5e-4", "3"),
            ("clip-vip-looks", work / "clip-vip-robust", looks, [], 2000, "3e-4", "4"),
            ("clip-vip-image", work / "clip-vip-robust", looks, ["--image-video", "1"], 2000, "3e-4", "4"),
            ("clip-vip-turned", work / "clip-vip-image", looks + ",turned=0.3", ["--image-video", "1"], 800, "1e-4", "5"),
        ]
        for name, start, data, extra, steps, lr, seed in stages:
            out = work / name
            if not (out / "train_config.json").exists():
                subprocess.run(
                    [*vs, "train", "retrieval", "--model", str(start), "--steps", str(steps), "--save-dtype", "float16",
                     "--out", str(out), *reversal, "--data", data, "--view-consistency", "10", *extra,
                     "--lr", lr, "--weight-decay", "0.05", "--warmup", "0.05", "--workers", "0", "--seed", seed],
                    check=True,
                )  # fmt: skip
        final = work / "clip-vip-soup"
        average_models([work / "clip-vip-looks", work / "clip-vip-turned"], final)
    direction = work / "direction"
    if not (direction / "captions.csv").exists():
        subprocess.run([*vs, "synth", str(direction), "--direction-set", "--count", "5", "--seed", "1000"], check=True)
    subprocess.run([*vs, "eval", "direction", "--model", str(final), "--data", str(direction / "captions.csv")], check=True)
    install_model(final, SAMPLE / "clip-vip")


def average_models(folders: list[Path], out: Path) -> None:
    """``out``: the first folder with every weight replaced by the mean over ``folders`` (models
    fine-tuned from one start; Wortsman et al. 2022, "Model soups"). Kept if already made."""
    from safetensors.torch import load_file, save_file

    if (out / "model.safetensors").exists():
        return
    tmp = out.with_name(out.name + ".part")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(folders[-1], tmp, ignore=shutil.ignore_patterns("checkpoints", "*.jsonl"))
    weights = [load_file(str(f / "model.safetensors")) for f in folders]
    mean = {k: (sum(w[k].float() for w in weights) / len(weights)).to(weights[-1][k].dtype) for k in weights[-1]}
    save_file(mean, str(tmp / "model.safetensors"), metadata={"format": "pt"})
    cfg = json.loads((tmp / "train_config.json").read_text())
    cfg["average_of"] = [f.name for f in folders]
    (tmp / "train_config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)


def install_model(trained: Path, target: Path | None = None) -> None:
    target = target or SAMPLE / "model"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for name in ("config.json", "model.safetensors", "vsearch.json", "eval.json"):
        if (trained / name).exists():
            shutil.copy(trained / name, target / name)
    cfg_path = trained / "train_config.json"
    if cfg_path.exists():  # keep the recipe, not this machine's temporary paths
        cfg = json.loads(cfg_path.read_text())
        for key in ("data", "val_data", "out", "model"):
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
    tp = sub.add_parser("temporal")
    tp.add_argument("--work", type=Path, default=None, help="keep the image CLIP, checkpoints and direction set here")
    tp.add_argument("--image-steps", type=int, default=4000)
    tp.add_argument("--image-split", choices=("train", "all"), default="all",
                    help="stills of every (colour, shape) (all: an image model that has seen every object, as "
                    "OpenAI CLIP has) or of the motion training split only")  # fmt: skip
    tp.add_argument("--pretrain-steps", type=int, default=3000, help="vsearch pretrain (post-pretraining) steps")
    tp.add_argument("--train-steps", type=int, default=3000, help="vsearch train retrieval steps after it")
    tp.add_argument("--stills", type=float, default=0.25, help="share of still objects in the motion stream (stills=)")
    tp.add_argument("--wander", type=float, default=0.25, help="share of objects on a random walk in it (wander=)")
    tp.add_argument("--vision-width", type=int, default=64, help="vision tower width of the tiny CLIP (tools/tiny_clip.py)")
    tp.add_argument("--no-harden", dest="harden", action="store_false",
                    help="ship step 3's model (no augmented views, view consistency or image-to-video loss)")  # fmt: skip
    i = sub.add_parser("install", help="copy an already trained model folder into sample_data/model (or --to)")
    i.add_argument("trained", type=Path)
    i.add_argument("--to", type=Path, default=None)
    args = p.parse_args()
    if args.what == "clips":
        make_clips()
    elif args.what == "model":
        make_model(args.steps, args.work)
    elif args.what == "temporal":
        make_temporal(
            args.work, args.image_steps, args.pretrain_steps, args.train_steps, args.image_split, args.stills,
            args.wander, args.vision_width, args.harden,
        )  # fmt: skip
    else:
        install_model(args.trained, args.to)
