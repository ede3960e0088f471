"""What is being trained: the dataset, the embeddings of a batch, the loss, the evaluation.

The loop (``loop.Trainer``) is shared; a task supplies four things. ``embed`` returns a tuple
of tensors per micro-batch so contrastive-exact accumulation can concatenate them, and ``loss``
sees the whole effective batch.
"""

from __future__ import annotations

import torch

from ..datasets.captions import read_captions, read_pretrain, swap_direction
from ..datasets.clips import PretrainDataset, RecognitionDataset, VideoTextDataset
from ..datasets.recognition import read_recognition
from ..errors import DatasetError
from ..eval.recognition import evaluate_recognition
from ..eval.retrieval import evaluate_retrieval
from ..image_query import picture_frames
from ..video.transforms import to_pixels
from .loss import (
    caption_id,
    contrastive_loss,
    multi_positive_loss,
    omnisource_loss,
    pair_loss,
    recognition_loss,
    reversal_sensitivity,
    view_drift,
)
from .stream import StreamSpec, SyntheticStream, is_stream


def same_backwards(batches: list[dict], device) -> tuple[torch.Tensor, torch.Tensor]:
    """Two (B,) bool masks of the samples with no direction to decide.

    ``same``: the caption is as true of the clip played backwards: clips whose frames are a
    palindrome (still shots, still images), and clips whose source marks the caption
    ``timeless`` (it says nothing about time: a frame caption, an object on a random walk).
    ``unpaired``: the timeless clips whose frames do change. Their reversal is left out of the
    batch: as a positive of the caption it would reward scoring a moving clip and its reversal
    alike (the order-blindness the reversal terms are there to remove; measured: with it,
    direction never took off), and as a negative it would be false. A palindrome's reversal is
    the clip itself, so it stays, as a positive.
    """
    same, unpaired = [], []
    for b in batches:
        pal = (b["frames"] == b["frames"].flip(1)).flatten(1).all(1)
        timeless = torch.as_tensor(b.get("timeless", [False] * len(pal)), dtype=torch.bool)
        same.append(pal | timeless)
        unpaired.append(timeless & ~pal)
    return torch.cat(same).to(device), torch.cat(unpaired).to(device)


def _group_ids(texts: list[str], device) -> torch.Tensor:
    """Caption ids that agree across processes (hash of the text)."""
    return torch.tensor([caption_id(t) for t in texts], device=device)


class RetrievalTask:
    """Video-text pairs, symmetric InfoNCE (identical captions in a batch are shared positives)."""

    name = "retrieval"

    def __init__(self, cfg, encoder, device):
        self.cfg, self.encoder, self.device = cfg, encoder, device
        self.info: dict = {}
        #: Figures of the last step for the log (e.g. reversal sensitivity).
        self.metrics: dict = {}
        self.reversal = getattr(cfg, "time_reversal", "off") or "off"
        #: Weights of the extra terms, checked against the data here, before any step.
        self.view_weight = self._consistency()
        self.image_weight = self._image_video()

    def _stream(self, pretrain: bool = False):
        spec = StreamSpec.parse(self.cfg.data)
        return SyntheticStream(spec, self.encoder.spec.frames, seed=self.cfg.seed, pretrain=pretrain)

    def dataset(self):
        spec = self.encoder.spec
        if is_stream(self.cfg.data):
            return self._stream()
        items = read_captions(self.cfg.data, self.cfg.video_root)
        return VideoTextDataset(items, spec.frames, spec.pixels, train=True, seed=self.cfg.seed, cache=self.cfg.cache_frames)

    def _texts(self, texts: list[str]) -> torch.Tensor:
        tok = self.encoder.tokenize(texts)
        return self.encoder.embed_texts(tok["input_ids"].to(self.device), tok["attention_mask"].to(self.device))

    def _videos(self, frames: torch.Tensor) -> torch.Tensor:
        return self.encoder.embed_videos(to_pixels(frames, self.encoder.spec.pixels, device=self.device))

    def embed(self, batch: dict) -> tuple[torch.Tensor, ...]:
        with self.encoder.autocast():
            out = (self._videos(batch["frames"]), self._texts(batch["text"]))
            out += self._reversed(batch["frames"], batch["text"])
            if self.view_weight:
                out += (self._videos(batch["frames_b"]),)  # at the end, so loss() can take it off
            if self.image_weight:
                out += (self._pictures(batch["frames"]),)  # the very end
            return out

    def _pictures(self, frames: torch.Tensor) -> torch.Tensor:
        """Each clip's middle frame embedded as a picture query is (``image_query.image_vector``):
        a one-frame video, or the frame repeated for families that take a fixed length."""
        mid = frames[:, frames.shape[1] // 2 : frames.shape[1] // 2 + 1]
        return self._videos(mid.expand(-1, picture_frames(self.encoder.spec), *mid.shape[2:]))

    def _image_video(self) -> float:
        """The image-to-video weight, checked against the data: it needs appearance captions."""
        weight = float(getattr(self.cfg, "image_video", 0.0) or 0.0)
        if weight and not is_stream(self.cfg.data):
            raise DatasetError(f"--image-video needs a synthetic stream (synth:...), not {self.cfg.data}")
        return weight

    def _consistency(self) -> float:
        """The view-consistency weight, checked against the data: it needs a second view."""
        weight = float(getattr(self.cfg, "view_consistency", 0.0) or 0.0)
        if weight and not (is_stream(self.cfg.data) and StreamSpec.parse(self.cfg.data).views == 2):
            raise DatasetError(
                f"--view-consistency needs a second view of each clip: add views=2 to a synthetic stream ({self.cfg.data})"
            )
        return weight

    def _reversed(self, frames: torch.Tensor, texts: list[str]) -> tuple[torch.Tensor, ...]:
        """With time reversal on: the reversed clips (frames in reverse order), and under
        ``twins`` the swapped captions (the original where none exists; masked in the loss)."""
        if self.reversal == "off":
            return ()
        rev = (self._videos(frames.flip(1)),)
        if self.reversal == "twins":
            rev += (self._texts([swap_direction(t) or t for t in texts]),)
        return rev

    def loss(self, embs: tuple[torch.Tensor, ...], batches: list[dict]) -> torch.Tensor:
        texts = [t for b in batches for t in b[self.text_key]]
        pictures = None
        if self.image_weight:
            embs, pictures = embs[:-1], embs[-1]
        if self.view_weight:
            embs, other = embs[:-1], embs[-1]
        if self.reversal == "off":
            total = contrastive_loss(embs[0], embs[1], self.encoder.logit_scale, _group_ids(texts, self.device))
        else:
            total = self.reversal_loss(embs[0], embs[1], embs[2:], texts, *same_backwards(batches, self.device))
        if self.view_weight:
            drift = view_drift(embs[0], other)
            self.metrics["view_drift"] = round(float(drift.detach()), 6)
            total = total + self.view_weight * drift
        if pictures is not None:
            looks = [a for b in batches for a in b["appearance"]]
            term = contrastive_loss(pictures, embs[0], self.encoder.logit_scale, _group_ids(looks, self.device))
            self.metrics["image_video"] = round(float(term.detach()), 6)
            total = total + self.image_weight * term
        return total

    text_key = "text"

    def reversal_loss(
        self,
        video,
        text,
        rev: tuple[torch.Tensor, ...],
        texts: list[str],
        same: torch.Tensor | None = None,
        unpaired: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """InfoNCE over originals and reversals (caption-equality positives; a reversed clip
        without a swapped caption is a negative only) plus ``pair_weight`` x the 2-way pair loss.
        ``same`` (B,) marks samples with no direction to decide (a still shot, a timeless
        caption): they take no part in the pair loss, and their reversal is never a negative.
        ``unpaired`` (B,), a subset of it, marks the moving ones among them (a timeless caption on
        frames that change): their reversal is left out of the InfoNCE altogether; the others'
        reversal (a palindrome: the clip itself) is a positive of the caption (``same_backwards``)."""
        video_rev = rev[0]
        swapped = [swap_direction(t) if self.reversal == "twins" else None for t in texts]
        label = caption_id
        t_lab = [label(t) for t in texts]
        still = [False] * len(texts) if same is None else same.tolist()
        v_lab = list(t_lab) + [label(s) if s else (t if st else -1) for s, t, st in zip(swapped, t_lab, still)]
        all_text = text
        has = torch.tensor([s is not None for s in swapped], device=self.device)
        if self.reversal == "twins" and bool(has.any()):
            all_text = torch.cat([text, rev[1][has]])
            t_lab += [label(s) for s in swapped if s]
        dev = self.device
        videos = torch.cat([video, video_rev])
        if unpaired is not None and bool(unpaired.any()):
            keep = torch.cat([torch.ones_like(unpaired), ~unpaired])
            videos, v_lab = videos[keep], [lab for lab, k in zip(v_lab, keep.tolist()) if k]
        main = multi_positive_loss(
            videos, all_text, torch.tensor(v_lab, device=dev), torch.tensor(t_lab, device=dev), self.encoder.logit_scale
        )
        weight = getattr(self.cfg, "pair_weight", 0.0)
        total = main
        ordered = ~same if same is not None else None  # the samples with a direction
        if weight:
            text_rev = rev[1] if self.reversal == "twins" else None
            total = main + weight * pair_loss(video, video_rev, text, text_rev, self.encoder.logit_scale, has, ordered)
        moving = ordered if ordered is not None and bool(ordered.any()) else slice(None)
        self.metrics = {"reversal_sensitivity": round(reversal_sensitivity(video[moving], video_rev[moving]), 6)}
        return total

    def evaluate(self) -> dict | None:
        if not self.cfg.val_data:
            return None
        return evaluate_retrieval(self.encoder, read_captions(self.cfg.val_data, self.cfg.video_root), workers=self.cfg.workers)


class PretrainTask(RetrievalTask):
    """CLIP-ViP post-pretraining: clip, subtitle, caption and middle frame (omnisource loss)."""

    name = "pretrain"

    def dataset(self):
        spec = self.encoder.spec
        if is_stream(self.cfg.data):
            self.columns = ["subtitle", "caption"]
            self.info = {"task": "pretrain", "columns": self.columns, "loss": "six-term omnisource loss on a synthetic stream"}
            if self.reversal != "off":
                self.info["time_reversal"] = f"{self.reversal} on the subtitle stream, added to the omnisource loss"
            return self._stream(pretrain=True)
        rows, columns = read_pretrain(self.cfg.data, self.cfg.video_root)
        self.columns = columns
        terms = {("subtitle", "caption"): "six-term omnisource loss (V<->S,C joint pool + F<->C)"}
        self.info = {
            "task": "pretrain",
            "columns": columns,
            "loss": terms.get(
                tuple(columns),
                f"plain two-term loss on {columns[0]} (no {'caption' if 'subtitle' in columns else 'subtitle'} column)",
            ),
        }
        return PretrainDataset(rows, spec.frames, spec.pixels, train=True, seed=self.cfg.seed, cache=self.cfg.cache_frames)

    def embed(self, batch: dict) -> tuple[torch.Tensor, ...]:
        with self.encoder.autocast():
            out = [self._videos(batch["frames"])]
            if "caption" in self.columns:
                out.append(self._videos(batch["middle"]))  # the middle frame as a one-frame video
            for col in ("subtitle", "caption"):
                if col in self.columns:
                    out.append(self._texts(batch[col]))
            out.extend(self._reversed(batch["frames"], batch[self.text_key]))
        return tuple(out)

    @property
    def text_key(self) -> str:
        """The text stream that describes the whole clip (time reversal swaps its words)."""
        return "subtitle" if "subtitle" in self.columns else "caption"

    def loss(self, embs: tuple[torch.Tensor, ...], batches: list[dict]) -> torch.Tensor:
        it = iter(embs)
        video = next(it)
        frame = next(it) if "caption" in self.columns else None
        subtitle = next(it) if "subtitle" in self.columns else None
        caption = next(it) if "caption" in self.columns else None
        loss, _terms = omnisource_loss(video, subtitle, caption, frame, self.encoder.logit_scale)
        if self.reversal != "off":
            texts = [t for b in batches for t in b[self.text_key]]
            clip_text = subtitle if subtitle is not None else caption
            loss = loss + self.reversal_loss(video, clip_text, tuple(it), texts, *same_backwards(batches, self.device))
        return loss

    def evaluate(self) -> dict | None:
        return RetrievalTask.evaluate(self)


class RecognitionTask(RetrievalTask):
    """Videos against every class prompt (ViFi-CLIP style), cross-entropy on the label."""

    name = "recognition"

    def dataset(self):
        spec = self.encoder.spec
        data = read_recognition(self.cfg.data, split=self.cfg.split, classes=self.cfg.classes, video_root=self.cfg.video_root)
        if len(data.classes) < 2:
            raise DatasetError(f"{self.cfg.data}: recognition needs at least two classes, found {len(data.classes)}")
        self.classes = data.classes
        self.prompts = data.prompts(self.cfg.prompt or spec.prompt)
        self._frozen = None
        if self.cfg.freeze_text:
            for p in self.encoder.clip.text_model.parameters():
                p.requires_grad_(False)
            self.encoder.clip.text_projection.weight.requires_grad_(False)
        self.info = {
            "task": "recognition",
            "classes": len(self.classes),
            "prompt": self.prompts[0],
            "freeze_text": self.cfg.freeze_text,
        }
        return RecognitionDataset(
            data.items, spec.frames, spec.pixels, train=True, seed=self.cfg.seed, cache=self.cfg.cache_frames
        )

    def class_embeddings(self) -> torch.Tensor:
        if self.cfg.freeze_text:
            if self._frozen is None:
                with torch.no_grad():
                    self._frozen = self._texts(self.prompts)
            return self._frozen
        return self._texts(self.prompts)

    def embed(self, batch: dict) -> tuple[torch.Tensor, ...]:
        with self.encoder.autocast():
            return (self._videos(batch["frames"]),)

    def loss(self, embs: tuple[torch.Tensor, ...], batches: list[dict]) -> torch.Tensor:
        labels = torch.cat([b["label"] for b in batches]).to(self.device)
        with self.encoder.autocast():
            text = self.class_embeddings()
        return recognition_loss(embs[0], text, labels, self.encoder.logit_scale)

    def evaluate(self) -> dict | None:
        if not self.cfg.val_data:
            return None
        val = read_recognition(
            self.cfg.val_data, split=self.cfg.val_split, classes=self.cfg.classes, video_root=self.cfg.video_root
        )
        return evaluate_recognition(self.encoder, val, prompt=self.cfg.prompt, workers=self.cfg.workers)


TASKS = {"retrieval": RetrievalTask, "pretrain": PretrainTask, "recognition": RecognitionTask}
