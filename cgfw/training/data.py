"""Reproducible, resumable sampling: the engine decides the order and every item's random seed,
so a run restarted mid-epoch sees exactly the items it would have seen, and data-parallel
processes split each global batch between them."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

Key = tuple[int, int]  # (item index, item seed)


def item_generator(seed: int) -> torch.Generator:
    """The generator a dataset draws an item's random choices from (crop, flip, partner)."""
    return torch.Generator().manual_seed(seed)


def epoch_keys(length: int, run_seed: int, epoch: int) -> list[Key]:
    """(index, item seed) for every item of `epoch` (1-based), shuffled by the run seed."""
    g = torch.Generator().manual_seed(run_seed * 1_000_003 + epoch)
    order = torch.randperm(length, generator=g).tolist()
    seeds = torch.randint(2**62, (length,), generator=g).tolist()
    return list(zip(order, seeds, strict=True))


def iters_per_epoch(length: int, batch_size: int) -> int:
    return math.ceil(length / batch_size)


class KeyBatches(Sampler[list[Key]]):
    """Endless batches of keys, epoch after epoch, from iteration `start` on.

    With several processes (`world` > 1) each takes its share of every global batch, and a short
    last batch is topped up from the start of the epoch so every process gets the same count.
    """

    def __init__(
        self,
        length: int,
        batch_size: int,
        run_seed: int,
        start: int = 0,
        rank: int = 0,
        world: int = 1,
    ) -> None:
        self.length, self.batch_size, self.run_seed = length, batch_size, run_seed
        self.start, self.rank, self.world = start, rank, world

    def __iter__(self) -> Iterator[list[Key]]:
        per_epoch = iters_per_epoch(self.length, self.batch_size)
        epoch, skip = divmod(self.start, per_epoch)
        while True:
            keys = epoch_keys(self.length, self.run_seed, epoch + 1)
            for b in range(skip, per_epoch):
                batch = keys[b * self.batch_size : (b + 1) * self.batch_size]
                if self.world > 1 and len(batch) < self.batch_size:
                    batch += keys[: self.batch_size - len(batch)]
                yield batch[self.rank :: self.world]
            epoch, skip = epoch + 1, 0


def train_loader(
    dataset: Dataset[Any], sampler: KeyBatches, num_workers: int, pin_memory: bool
) -> DataLoader[Any]:
    """Workers stay alive across epochs (the sampler never ends) and prefetch ahead of the GPU."""
    return DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=num_workers,
        pin_memory=pin_memory,
        persistent_workers=num_workers > 0,
        prefetch_factor=4 if num_workers > 0 else None,
        # Its own generator: creating the iterator would otherwise draw from the global one and
        # shift the pools' draws after a resume (items are seeded by their keys anyway).
        generator=torch.Generator().manual_seed(0),
    )
