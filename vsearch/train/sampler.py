"""Batches for the training loop: a shuffled order per (seed, epoch), resumable mid-epoch."""

from __future__ import annotations

import numpy as np
import torch


class EpochBatchSampler(torch.utils.data.Sampler):
    """Shuffled batches per epoch from (seed, epoch), starting ``skip`` batches in (for resume).

    With ``world`` > 1 (torchrun), each global batch of ``batch_size * world`` is cut from the
    same permutation a single process would use, and rank ``r`` takes slice ``r``: no sample is
    seen twice or lost, and the global batch is the same whatever the world size.
    """

    def __init__(self, n: int, batch_size: int, seed: int, drop_last: bool = True, *, rank: int = 0, world: int = 1):
        self.n, self.local, self.seed, self.drop_last = n, batch_size, seed, drop_last
        self.rank, self.world = rank, world
        self.batch_size = batch_size * world
        self.epoch = 0
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = epoch, skip

    def batches(self) -> list[list[int]]:
        order = np.random.default_rng([self.seed, self.epoch, 7]).permutation(self.n).tolist()
        out = [order[i : i + self.batch_size] for i in range(0, self.n, self.batch_size)]
        if self.drop_last and out and len(out[-1]) < self.batch_size:
            out.pop()
        return out

    def __iter__(self):
        for batch in self.batches()[self.skip :]:
            yield batch[self.rank * self.local : (self.rank + 1) * self.local]

    def __len__(self) -> int:
        return max(0, len(self.batches()) - self.skip)
