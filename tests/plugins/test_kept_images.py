"""The embedded emoji keep each image resized and cropped the only way it can be (issue 23):
the same tensors and the same random draws as computing them again, nothing kept where a flip
or a crop could come out another way, and a kept image never changed by whoever gets it."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from cgfw.plugin.loader import Loaded
from cgfw.recipe import load
from cgfw.training.loop import build_dataset


def emoji(loaded: Loaded, split: str, *overrides: str) -> Any:
    resolved = load("quickstart", loaded.registry, list(overrides))
    return build_dataset(resolved, split)


def items(dataset: Any, keys: list[Any]) -> list[dict[str, torch.Tensor]]:
    return [dataset[k] for k in keys]


@pytest.mark.parametrize("split", ["train", "test"])
def test_kept_images_are_the_computed_ones(loaded: Loaded, split: str) -> None:
    dataset = emoji(loaded, split)  # 32 px from 64, no flip: one way
    keys: list[Any] = [(i, 7) for i in range(6)] if split == "train" else list(range(6))
    first = items(dataset, keys)
    assert dataset.kept  # kept on the first epoch
    again = items(dataset, keys)  # read back
    dataset.kept = None
    computed = items(dataset, keys)  # as without keeping
    for a, b, c in zip(first, again, computed, strict=True):
        for side in ("a", "b"):
            assert torch.equal(a[side], c[side]) and torch.equal(b[side], c[side])


def test_nothing_is_kept_where_an_image_can_come_out_another_way(loaded: Loaded) -> None:
    flipped = emoji(loaded, "train", "data.flip=true")
    cropped = emoji(loaded, "train", "data.load_size=36")
    for dataset in (flipped, cropped):
        items(dataset, [(i, 3) for i in range(4)])
        assert not dataset.kept
        assert not torch.equal(dataset[(0, 1)]["a"], dataset[(0, 2)]["a"])  # seeds still differ


def test_colour_jitter_still_draws_per_item(loaded: Loaded) -> None:
    dataset = emoji(loaded, "train", "data.color_jitter=0.3")
    one, two = dataset[(0, 1)]["a"], dataset[(0, 2)]["a"]
    assert dataset.kept and not torch.equal(one, two)


def test_a_kept_image_is_not_changed_by_its_user(loaded: Loaded) -> None:
    dataset = emoji(loaded, "test")
    before = dataset[0]["a"].clone()
    dataset[0]["a"].fill_(0.5)
    assert torch.equal(dataset[0]["a"], before)


def test_past_its_limit_a_dataset_keeps_no_more_and_still_gives_the_images(
    loaded: Loaded,
) -> None:
    from cgfw_paper.image_sets import Kept

    dataset = emoji(loaded, "test")
    dataset.kept = Kept(limit=2 * 3 * 32 * 32 * 4)  # two 32 px images
    first = [dataset[i]["a"] for i in range(3)]  # a and b of item 0, then item 1's a: full
    assert len(dataset.kept) == 2 and dataset.kept.bytes <= dataset.kept.limit
    dataset.kept = None
    assert all(torch.equal(x, dataset[i]["a"]) for i, x in enumerate(first))
