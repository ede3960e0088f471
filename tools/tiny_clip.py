"""Write an untrained tiny CLIP with wider or deeper towers, as a start for ``vsearch train``.

    python tools/tiny_clip.py wide-init --vision-width 96      # the 1.5x vision tower of the README
    vsearch train retrieval --data synth:static,size=32,split=all --model wide-init --frames 1 ...

``tiny-clip:32`` is this script's output with the default widths (the same seed, so the same
weights): the README's capacity rows change one tower and keep everything else, which a
registry name cannot say. The MLP stays 4x the width, as in CLIP.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def build(size: int = 32, vision_width: int = 64, text_width: int = 32, text_layers: int = 2):
    from vsearch.models.tiny import tiny_mean_pool

    return tiny_mean_pool(
        size,
        vision={"hidden_size": vision_width, "intermediate_size": 4 * vision_width},
        text={"hidden_size": text_width, "intermediate_size": 4 * text_width, "num_hidden_layers": text_layers},
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path, help="model folder to write (must not exist)")
    p.add_argument("--size", type=int, default=32, help="frame size in px (a multiple of the 8-px patch)")
    p.add_argument("--vision-width", type=int, default=64, help="vision tower width (4 heads: a multiple of 4)")
    p.add_argument("--text-width", type=int, default=32, help="text tower width (4 heads: a multiple of 4)")
    p.add_argument("--text-layers", type=int, default=2)
    args = p.parse_args()
    if args.out.exists():
        raise SystemExit(f"{args.out} already exists: choose a new folder")
    if args.size % 8 or any(w % 4 for w in (args.vision_width, args.text_width)):
        raise SystemExit("--size must be a multiple of 8 and the widths multiples of 4")
    enc = build(args.size, args.vision_width, args.text_width, args.text_layers)
    enc.save_pretrained(args.out)
    print(f"wrote {args.out}: {sum(p.numel() for p in enc.parameters()) / 1e6:.2f}M parameters")


if __name__ == "__main__":
    main()
