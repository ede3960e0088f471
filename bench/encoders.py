"""Encoder throughput on this machine: segments/s at 12 frames, random weights.

    python bench/encoders.py                 # tiny and ViT-B/32-sized configs, both families
    python bench/encoders.py --sizes tiny    # just the tiny ones

For each config it prints segments/s of ``encode_videos`` (warm-up excluded) for mean pooling
and CLIP-ViP, and, for CLIP-ViP, its two-pass attention against the one-call masked form: the
two-pass form touches T·L² + M·T·L score entries per head, the masked one (T·L)².
On CUDA (``--device cuda``) the encoder runs under bf16 autocast, as in indexing.
"""

from __future__ import annotations

import argparse
import time

import torch


def configs(sizes: list[str]):
    from transformers import CLIPConfig

    from vsearch.models.tiny import tiny_clip_config

    out = {}
    if "tiny" in sizes:
        out["tiny (64 px, patch 8, 4 layers)"] = tiny_clip_config()
    if "b32" in sizes:
        out["ViT-B/32 (224 px, 12 layers)"] = CLIPConfig(projection_dim=512)  # defaults are exactly B/32
    return out


def rate(encoder, frames: int, batch: int, repeats: int) -> float:
    size = encoder.spec.pixels.image_size
    px = torch.randn(batch, frames, 3, size, size)
    encoder.encode_videos(px)
    t0 = time.perf_counter()
    for _ in range(repeats):
        encoder.encode_videos(px)
    return batch * repeats / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="tiny,b32")
    p.add_argument("--frames", type=int, default=12)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()

    from vsearch.models.clip_vip import ClipVipEncoder, flops_per_layer
    from vsearch.models.proxies import ClipVipConfig
    from vsearch.models.mean_pool import MeanPoolEncoder

    print(f"device {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads, {args.frames} frames per segment")
    print(f"{'config':<34}{'encoder':<22}{'segments/s':>11}")
    for label, cfg in configs(args.sizes.split(",")).items():
        big = cfg.vision_config.hidden_size > 100
        batch, repeats = (2, 2) if big else (8, 3)
        torch.manual_seed(0)
        mp = MeanPoolEncoder.from_config(cfg, resize="squash", frames=args.frames).to(args.device).eval()
        print(f"{label:<34}{'mean-pool':<22}{rate(mp, args.frames, batch, repeats):>11.2f}", flush=True)
        del mp
        torch.manual_seed(0)
        vip = ClipVipEncoder.from_config(cfg, ClipVipConfig(), frames=args.frames).to(args.device).eval()
        two = rate(vip, args.frames, batch, repeats)
        print(f"{'':<34}{'clip-vip (two-pass)':<22}{two:>11.2f}", flush=True)
        vip.vip = ClipVipConfig(attention="masked")
        masked = rate(vip, args.frames, batch, repeats)
        print(f"{'':<34}{'clip-vip (masked)':<22}{masked:>11.2f}   two-pass/masked = {two / masked:.2f}x", flush=True)
        patches = (cfg.vision_config.image_size // cfg.vision_config.patch_size) ** 2
        f = flops_per_layer(args.frames, patches, 4, 1)
        print(f"{'':<34}attention scores: masked/two-pass = {f['ratio']:.1f}x entries", flush=True)


if __name__ == "__main__":
    main()
