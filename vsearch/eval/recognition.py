"""Action recognition accuracy: videos against every class prompt, top-1 / top-5.

Zero-shot (any video-text model) or fine-tuned (``vsearch train recognition``): the same
computation. Single view by default; ``clips`` x ``crops`` views average the normalised video
embeddings (temporal clips: the video split into equal parts; crops: 3 squares along the long
side after a short-side resize), as the recognition papers test.
"""

from __future__ import annotations

import numpy as np
import torch

from ..datasets.clips import RecognitionDataset, collate
from ..datasets.recognition import RecognitionSet
from ..video.transforms import to_pixels


def evaluate_recognition(
    encoder,
    data: RecognitionSet,
    *,
    prompt: str | None = None,
    clips: int = 1,
    crops: int = 1,
    workers: int = 2,
    batch_size: int = 8,
) -> dict:
    spec = encoder.spec
    texts = data.prompts(prompt or spec.prompt)
    classes = encoder.encode_texts(texts).numpy()  # (K, D)
    ds = RecognitionDataset(data.items, spec.frames, spec.pixels, train=False, clips=clips, crops=crops)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, num_workers=workers, collate_fn=collate)
    views = clips * crops
    scores, labels, failed = [], [], 0
    for batch in loader:
        failed += batch["failed"]
        if not batch["size"]:
            continue
        frames = batch["frames"]  # (B, T, S, S, 3) or (B, V, T, S, S, 3)
        if views > 1:
            b = frames.shape[0]
            emb = encoder.encode_videos(to_pixels(frames.flatten(0, 1), spec.pixels, device=encoder.device)).view(b, views, -1)
            emb = torch.nn.functional.normalize(emb.mean(1), dim=-1)
        else:
            emb = encoder.encode_videos(to_pixels(frames, spec.pixels, device=encoder.device))
        scores.append(emb.numpy() @ classes.T)
        labels.append(batch["label"].numpy())
    if not scores:
        return {"top1": 0.0, "top5": 0.0, "videos": 0, "failed_videos": failed, "classes": len(data.classes)}
    s = np.concatenate(scores)
    y = np.concatenate(labels)
    # Failed videos count as errors: accuracy is over every video of the set.
    n = len(y) + failed
    rank = (s > s[np.arange(len(y)), y][:, None]).sum(1)  # tie-safe, as in retrieval
    return {
        "top1": float(100 * np.sum(rank < 1) / n),
        "top5": float(100 * np.sum(rank < 5) / n),
        "videos": int(n),
        "failed_videos": int(failed),
        "classes": len(data.classes),
        "views": {"clips": clips, "crops": crops},
        "prompt": texts[0],
    }
