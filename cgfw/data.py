"""Reproducible, resumable sampling: the engine decides the order and every item's random seed,
so a run restarted mid-epoch sees exactly the items it would have seen."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler


def item_generator(seed: int) -> torch.Generator:
    """The generator a dataset draws an item's random choices from (crop, flip, partner)."""
    return torch.Generator().manual_seed(seed)


def epoch_keys(length: int, run_seed: int, epoch: int) -> list[tuple[int, int]]:
    """(index, item seed) for every item of `epoch`, in a shuffled order fixed by the run seed."""
    g = torch.Generator().manual_seed(run_seed * 1_000_003 + epoch)
    order = torch.randperm(length, generator=g).tolist()
    seeds = torch.randint(2**62, (length,), generator=g).tolist()
    return list(zip(order, seeds, strict=True))


class KeySampler(Sampler[tuple[int, int]]):
    def __init__(self, keys: list[tuple[int, int]]) -> None:
        self.keys = keys

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter(self.keys)

    def __len__(self) -> int:
        return len(self.keys)


def epoch_loader(
    dataset: Dataset[Any],
    run_seed: int,
    epoch: int,
    batch_size: int,
    num_workers: int,
    skip_batches: int = 0,
    pin_memory: bool = False,
) -> DataLoader[Any]:
    """Batches of `epoch`, without the first `skip_batches` (already trained on before a resume)."""
    keys = epoch_keys(len(dataset), run_seed, epoch)[skip_batches * batch_size :]  # type: ignore[arg-type]
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=KeySampler(keys),
        num_workers=num_workers,
        pin_memory=pin_memory,
    )
