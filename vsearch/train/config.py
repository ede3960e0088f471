"""``TrainConfig``: every setting of a training run, with the help text the command line shows.

A plain dataclass without torch, so that ``vsearch train --help`` can build its options from
the fields (``cli/train_cmd.py``): each field's ``help`` metadata is the option's help, and its
default the option's default, so the library and the command line cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field


def _opt(default, help: str):  # noqa: A002 - the name typer and argparse use
    return field(default=default, metadata={"help": help})


@dataclass
class TrainConfig:
    data: str
    model: str
    out: str
    #: "retrieval" (captions), "pretrain" (CLIP-ViP omnisource), "recognition" (class labels)
    task: str = "retrieval"
    val_data: str | None = None
    #: With ``model`` an official checkpoint file: the CLIP it was trained from.
    base: str | None = None
    video_root: str | None = _opt(None, "Folder that relative paths / video ids refer to.")
    steps: int | None = _opt(None, "Optimizer steps (default: from --epochs).")
    epochs: float = _opt(1.0, "Passes over the videos (one random caption per video each).")
    batch_size: int = _opt(
        32,
        "Videos per micro-batch. Contrastive results depend on the effective batch (batch x accumulate): "
        "every other pair is a negative; CLIP-ViP used 128.",
    )
    accumulate: int = _opt(1, "Micro-batches per step, contrastive-exact (GradCache): 16 x 8 trains like 128.")
    lr: float = _opt(1e-5, "Peak learning rate (AdamW, warmup then cosine decay).")
    weight_decay: float = _opt(0.2, "AdamW weight decay (none on biases, norms, embeddings and the temperature).")
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-6
    warmup: float = _opt(0.01, "Warmup: a fraction of the steps (<1) or a step count.")
    grad_clip: float = _opt(1.0, "Clip the gradient norm to this (0: no clipping).")
    frames: int | None = _opt(None, "Frames per clip (default: the model's).")
    workers: int = _opt(2, "DataLoader decode workers.")
    seed: int = _opt(42, "Seed of the weights' new parts, data order and augmentation (a run is repeatable).")
    checkpoint_every: int = _opt(0, "Save a resumable checkpoint every N steps (0: only at the end).")
    keep_checkpoints: int = 2
    eval_every: int = _opt(0, "Evaluate --val every N steps (0: only at the end).")
    resume: bool = _opt(True, "Continue from OUT/checkpoints when there is one.")
    cache_frames: bool = _opt(False, "Decode every clip once and keep it in memory (small datasets).")
    device: str = "auto"
    save_dtype: str = _opt("float32", "float32 or float16 for the saved weights.")
    log_every: int = 10
    #: Stop after this many steps in this call (a time budget; the run can be resumed).
    max_steps_this_run: int | None = None
    #: Build this family on top of ``model`` (a CLIP: its weights load; the family's new parts
    #: are initialised), e.g. CLIP-ViP post-pretrained from an image CLIP.
    family: str | None = _opt(
        None,
        "Build this family (clip-vip, stan, xclip) on top of the starting model, a plain CLIP: its weights load, the rest is new.",
    )
    #: Time reversal (``train.reversal``): "off", "twins" (reversed clip + swapped caption) or
    #: "negatives" (reversed clip as an extra negative video).
    time_reversal: str = _opt(
        "off",
        "Time reversal in every batch (off | twins | negatives). twins: each clip also brings its reversed "
        "frames paired with the caption whose direction words are swapped (left/right, up/down, before/after; "
        "others fall back to negatives). negatives: the reversed clip is an extra negative video for the "
        "caption (any data, MSR-VTT included). Teaches temporal order; see README, Temporal order.",
    )
    #: Weight of the 2-way direction loss inside {clip, reversed clip} x {caption, swapped}.
    pair_weight: float = _opt(
        0.0, "Weight of the 2-way direction loss (clip vs reversed clip, caption vs swapped) [needs --time-reversal]."
    )
    #: Re-initialise the temporal tables N(0, std²) before training (a new, zero table gives
    #: order no gradient to grow from; see README, "Temporal order"). None: keep them.
    temporal_init_std: float | None = _opt(
        None, "Draw the temporal tables from N(0, STD^2) before training (new tables start at 0) (default: keep)."
    )
    #: The parts a family adds to CLIP (``VideoTextEncoder.added_to_clip``) train at this
    #: multiple of ``lr`` (CLIP-ViP's official ``lr_mul``): a low ``lr`` keeps what the CLIP
    #: learned from images while the new parts move fast.
    new_lr_mul: float = _opt(
        1.0,
        "Multiply the learning rate of the parts a family adds to CLIP (CLIP-ViP's proxies and temporal table, "
        "STAN's branch, X-CLIP's message, MIT and prompt modules) by this: with a low learning rate the CLIP keeps "
        "what it knows while the new parts learn fast (CLIP-ViP's lr_mul).",
    )
    #: Keep the token/patch embeddings and the first N transformer layers of each tower fixed
    #: (TACT freezes 5 of 6): the pretrained appearance stays, the top layers and the family's
    #: new parts learn order. Each tower's last layer always trains.
    freeze_layers: int = _opt(
        0,
        "Keep the embeddings and the first N transformer layers of each tower fixed (Test of Time freezes 5 of 6): "
        "pretrained appearance stays while the top layers and the family's new parts learn order; 0 trains everything.",
    )
    #: Weight of the view-consistency term: 1 - cos between a clip's embedding and that of the
    #: same clip drawn and degraded another way (``synth:motion,...,views=2``; retrieval only).
    view_consistency: float = _opt(
        0.0,
        "Weight of 1 - cos(clip, the same clip another way: size, noise, compression, resampler) added to the loss; "
        "needs a synthetic stream with views=2 (retrieval only). Makes embeddings stable under re-encoding and scaling.",
    )
    #: Weight of an image-to-video InfoNCE term: each clip's middle frame, embedded as an image
    #: query is (``image_query.image_vector``: one frame, or the clip length for fixed-length
    #: families), against the batch's clips; clips of the same colour and shape (the same
    #: ``appearance`` caption) are positives of each other. Synthetic streams only.
    image_video: float = _opt(
        0.0,
        "Weight of an image-to-video loss: each clip's middle frame, embedded as a picture query is, must find its clip "
        "among the batch's (clips showing the same thing count as found); synthetic streams only. For search by image.",
    )
    # recognition
    prompt: str | None = None  # class-name template [default: the model's spec]
    freeze_text: bool = False
    classes: str | None = None  # a class list file, when labels are indices
    split: str | None = None  # split file name (UCF101 trainlist01, HMDB51 train1, Kinetics train)
    val_split: str | None = None
