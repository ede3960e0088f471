"""Training data that does not run out: synthetic clips rendered straight to tensors.

A fixed set of 2,000 files seen 48 times invites memorising clip identity; direction then fits
on training clips and stays at chance on held-out ones. Here every (seed, epoch, index) renders
a new clip (random background, size, start, speed), with no codec round trip, so each step sees
fresh data. Evaluation sets stay files written with a fixed seed (``write_direction_set``).

``--data`` forms (options after commas):

- ``synth:motion``: one shape moving; caption "a red circle moving left"; scenes of the
  reversal-closed training split only (``split=all`` for every scene).
- ``synth:static``: one still frame per clip (a 1-frame video); caption "a red circle": the data
  for an image-CLIP stand-in.
- options: ``size=64`` (rendered square side; the model's pipeline resizes), ``length=100000``
  (indices per epoch), ``frames=N`` (rendered frames, default the model's), ``stills=0.25``
  (motion only: that share of items is a still object of any colour and shape with its static
  caption, so appearance keeps an image-text signal while motion clips teach order; a still
  reads the same backwards, so time reversal treats its reversal as itself), ``framecaps=0.25``
  (motion only: that share of the moving clips is captioned by appearance alone, "a red circle",
  as an image captioner describes one frame: CLIP-ViP's auxiliary captions. Such a caption says
  nothing about time, so it is marked ``timeless``: under time reversal the clip's reversal is
  neither its positive nor a negative, ``train.tasks.same_backwards``),
  ``wander=0.25`` (motion only: that share of items is an object of any colour and shape drifting
  with no direction, a random walk, with its static caption: appearance in motion without a
  direction to learn. A random walk played backwards is another random walk, so the caption is
  ``timeless`` as above. Stills show every object still; this shows every object moving),
  ``augment=0.5`` (that share of items is drawn as footage arrives: another size and aspect,
  noise, JPEG, a random resampler down to ``size``; ``synth.degrade``). With ``views=2`` every
  item also carries ``frames_b``: the same content (same object, path and background) drawn and
  degraded independently, for the view-consistency loss (``--view-consistency``); ``turned=0.25``
  sends that share of the degraded items down a phone file's path (stored sideways, compressed
  and scaled so, turned upright last).

For ``vsearch pretrain`` a motion sample carries ``subtitle`` (the motion caption: the text of
the whole clip) and ``caption`` (the static caption: what an image captioner says about the
middle frame), mirroring CLIP-ViP's subtitle / auxiliary-caption sources.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import DatasetError
from ..synth.degrade import degrade, footage_size
from ..synth.scenes import ALL_SCENES, Scene, render_scene, render_wander, reversal_split, static_caption

PREFIX = "synth:"
KINDS = ("motion", "static")
#: Options that are a share of the items.
SHARES = ("stills", "framecaps", "wander", "augment", "turned")


@dataclass(frozen=True)
class StreamSpec:
    kind: str
    split: str = "train"
    size: int = 64
    length: int = 100_000
    frames: int | None = None
    #: motion only: this share of items is a still object (any colour and shape, the clip's frames
    #: all the same) with its static caption ("a green triangle"): appearance keeps a direct
    #: image-text signal while the motion clips teach order.
    stills: float = 0.0
    #: motion only: this share of the moving clips carries its static caption instead of the motion
    #: caption (a frame caption: CLIP-ViP's auxiliary captions), so the video tower must keep
    #: appearance apart from motion; the caption is timeless (true of the clip played backwards).
    framecaps: float = 0.0
    #: motion only: this share of items is an object of any colour and shape on a random walk
    #: (``render_wander``) with its static caption, timeless: stills that move, so the video tower
    #: sees every object under motion while only the motion split's scenes have a direction.
    wander: float = 0.0
    #: this share of items is drawn at a random footage size and degraded (noise, JPEG, crop, a
    #: random resampler) down to ``size``: the pixels indexing will feed the model.
    augment: float = 0.0
    #: 2: each item also carries ``frames_b``, the same content drawn and degraded independently.
    views: int = 1
    #: this share of degraded items takes a phone's path (``synth.degrade``: stored sideways,
    #: compressed and scaled so, turned upright at the end).
    turned: float = 0.0

    @classmethod
    def parse(cls, text: str) -> StreamSpec:
        if not text.startswith(PREFIX):
            raise DatasetError(f"{text}: not a synthetic source (write synth:motion or synth:static)")
        kind, *opts = text[len(PREFIX) :].split(",")
        if kind not in KINDS:
            raise DatasetError(f"{text}: unknown synthetic source {kind!r} (choose from {', '.join(KINDS)})")
        kw: dict = {}
        for opt in opts:
            key, sep, value = opt.partition("=")
            if not sep or key not in ("split", "size", "length", "frames", "views", *SHARES):
                raise DatasetError(
                    f"{text}: unknown option {opt!r} "
                    "(split=, size=, length=, frames=, views=, stills=, framecaps=, wander=, augment=, turned=)"
                )
            try:
                kw[key] = value if key == "split" else float(value) if key in SHARES else int(value)
            except ValueError:
                raise DatasetError(f"{text}: {key} must be a number, not {value!r}") from None
        for key in SHARES:
            if key in ("augment", "turned"):
                if not 0.0 <= kw.get(key, 0.0) <= 1.0:
                    raise DatasetError(f"{text}: {key}= is a share in [0, 1] of the items")
            elif not 0.0 <= kw.get(key, 0.0) < 1.0 or (kw.get(key) and kind != "motion"):
                raise DatasetError(f"{text}: {key}= is a share in [0, 1) of a synth:motion stream")
        if kw.get("views", 1) not in (1, 2):
            raise DatasetError(f"{text}: views= is 1 or 2")
        if kw.get("stills", 0.0) + kw.get("wander", 0.0) >= 1.0:
            raise DatasetError(f"{text}: stills= and wander= together must leave a share for the moving scenes")
        if kw.get("split", "train") not in ("train", "all"):
            raise DatasetError(f"{text}: split must be train or all")
        if kw.get("size", 64) < 16 or kw.get("length", 1) < 1 or kw.get("frames", 1) < 1:
            raise DatasetError(f"{text}: size must be >= 16, length and frames >= 1")
        return cls(kind, **kw)


def is_stream(data: str) -> bool:
    return str(data).startswith(PREFIX)


class SyntheticStream(torch.utils.data.Dataset):
    """Map-style (so the epoch sampler, resume and workers work unchanged) but never repeating:
    item ``i`` of epoch ``e`` is rendered from ``rng(seed, e, i)``."""

    def __init__(self, spec: StreamSpec, frames: int, *, seed: int, pretrain: bool = False):
        self.spec = spec
        self.frames = 1 if spec.kind == "static" else (spec.frames or frames)
        self.seed = seed
        self.epoch = 0
        self.pretrain = pretrain
        self.scenes: list[Scene] = list(ALL_SCENES) if spec.split == "all" else reversal_split()[0]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.spec.length

    def __getitem__(self, index: int) -> dict:
        rng = np.random.default_rng([self.seed, self.epoch, index, 11])
        timeless = False
        if self.spec.stills and rng.random() < self.spec.stills:
            # A still of any object (stills carry no direction: the held-out split is about motion).
            scene = ALL_SCENES[int(rng.integers(len(ALL_SCENES)))]
            kind, text = "still", static_caption(scene)
        elif self.spec.wander and rng.random() < self.spec.wander / (1.0 - self.spec.stills):
            # Any object on a random walk: motion without a direction (timeless, like a still).
            scene = ALL_SCENES[int(rng.integers(len(ALL_SCENES)))]
            kind, text, timeless = "wander", static_caption(scene), True
        else:
            scene = self.scenes[int(rng.integers(len(self.scenes)))]
            kind = "scene"
            text = static_caption(scene) if self.spec.kind == "static" else scene.caption
        content = rng.bit_generator.state  # the draws that place the object, for a second view
        # Degradations draw from their own stream, so a stream without augment= renders exactly
        # the clips it always has.
        look = np.random.default_rng([self.seed, self.epoch, index, 12])
        frames = self._draw(kind, scene, rng, look, self.spec.augment and look.random() < self.spec.augment)
        if kind == "scene" and self.spec.framecaps and rng.random() < self.spec.framecaps:
            text, timeless = static_caption(scene), True
        sample = {"frames": frames, "index": index, "timeless": timeless, "appearance": static_caption(scene)}
        if self.spec.views == 2:
            again = np.random.Generator(np.random.PCG64())
            again.bit_generator.state = content
            sample["frames_b"] = self._draw(kind, scene, again, look, True)
        if self.pretrain:
            sample.update(middle=frames[len(frames) // 2 : len(frames) // 2 + 1], subtitle=text, caption=static_caption(scene))
        else:
            sample["text"] = text
        return sample

    def _draw(self, kind: str, scene: Scene, rng: np.random.Generator, look: np.random.Generator, degraded: bool) -> np.ndarray:
        """The item's frames: drawn at the model's side, or at a footage size and degraded to it."""
        size = self.spec.size
        w, h = footage_size(size, look) if degraded else (size, size)
        if kind == "still":
            frames = np.repeat(render_scene(scene, 1, w, h, rng), self.frames, axis=0)
        elif kind == "wander":
            frames = render_wander(scene, self.frames, w, h, rng)
        else:
            frames = render_scene(scene, self.frames, w, h, rng)
        return degrade(frames, size, look, self.spec.turned) if degraded else frames
