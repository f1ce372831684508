"""The datasets themselves: the authors' folder layout (trainA/trainB/testA/testB) and the
embedded emoji, with the paper's resize, crop and flip. Imported when a run builds one
(datasets.py registers them lazily, with their options)."""

from __future__ import annotations

import json
import logging
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from cgfw import (
    IMAGE_SUFFIXES,
    BadImage,
    Planes,
    check_channels,
    decode,
    images_in,
    item_generator,
    resize_planes,
    to_tensor,
    usable,
)
from cgfw.errors import CgfwError, MissingSplit
from cgfw_paper.datasets import AUTHORS_DATASETS, Augment, EmojiOptions, FolderOptions

log = logging.getLogger("cgfw.data")  # the same logger as cgfw.images: one place to quiet skips


def augment(image: Image.Image | Tensor, opts: Augment, g: torch.Generator | None) -> Tensor:
    """Resize to load_size, then a random crop and flip when `g` is given (training), else a
    plain resize to crop_size (evaluation)."""
    if isinstance(image, Tensor):
        return augment_planes(image, opts, g)
    if g is None:
        return to_tensor(image.resize((opts.crop_size, opts.crop_size), Image.Resampling.BICUBIC))
    image = image.resize((opts.load_size, opts.load_size), Image.Resampling.BICUBIC)
    span = opts.load_size - opts.crop_size + 1
    x, y = (int(v) for v in torch.randint(span, (2,), generator=g))
    image = image.crop((x, y, x + opts.crop_size, y + opts.crop_size))
    if opts.flip and torch.rand((), generator=g).item() < 0.5:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return to_tensor(image)


def augment_planes(planes: Tensor, opts: Augment, g: torch.Generator | None) -> Tensor:
    """`augment` for (C, H, W) float planes (16-bit, float, N channels): the same steps and the
    same random draws, on the tensor, so nothing is rounded to 8 bits."""
    crop = opts.crop_size
    if g is None:
        return resize_planes(planes, crop, crop)
    planes = resize_planes(planes, opts.load_size, opts.load_size)
    span = opts.load_size - crop + 1
    x, y = (int(v) for v in torch.randint(span, (2,), generator=g))
    planes = planes[:, y : y + crop, x : x + crop]
    if opts.flip and torch.rand((), generator=g).item() < 0.5:
        planes = planes.flip(-1)
    return planes.contiguous()


# What a dataset's `load` returns: an 8-bit Pillow image or float planes in [-1, 1].
Loaded = Image.Image | Tensor


class Unpaired(Dataset[dict[str, Tensor]]):
    """Training: A in shuffled order, B drawn at random for each A; an epoch is max(|A|, |B|).
    Test: A[i] with B[i mod |B|], deterministic."""

    def __init__(
        self, a: list[Any], b: list[Any], opts: Augment, train: bool, paired: bool = False
    ) -> None:
        self.a, self.b, self.opts, self.train = a, b, opts, train
        # True when item i's "b" is item i's "a" in the other domain (see register_datasets).
        self.paired = paired
        self.bad: set[Any] = set()

    def __len__(self) -> int:
        return max(len(self.a), len(self.b))

    def load(self, item: Any) -> Loaded:
        raise NotImplementedError

    def fetch(self, items: list[Any], index: int) -> Loaded:
        """items[index], or the next usable one if it turns out to be corrupt (named once, and
        not decoded again). Not with aligned pairs: the next image would be another pair's, so
        a corrupt one stops."""
        for k in range(len(items)):
            item = items[(index + k) % len(items)]
            if item in self.bad:
                continue
            try:
                return self.load(item)
            except BadImage as exc:
                self.skip(item, exc)
        raise CgfwError(f"none of the {len(items)} images around {items[0]} can be decoded")

    def skip(self, item: Any, exc: BadImage) -> None:
        if self.paired:
            raise CgfwError(
                f"{item}: {exc}; in aligned pairs it cannot be skipped (its partner would "
                "meet another image): replace or remove both of the pair"
            ) from None
        self.bad.add(item)
        log.warning("skipping %s: %s", item, exc)

    def __getitem__(self, key: Any) -> dict[str, Tensor]:
        if not self.train:
            return {
                "a": augment(self.fetch(self.a, key % len(self.a)), self.opts, None),
                "b": augment(self.fetch(self.b, key % len(self.b)), self.opts, None),
            }
        index, seed = key
        g = item_generator(seed)
        if self.paired:  # item i's B is item i's A in the other domain: the same crop and flip
            return {
                "a": augment(self.fetch(self.a, index), self.opts, item_generator(seed)),
                "b": augment(self.fetch(self.b, index), self.opts, g),
            }
        partner = int(torch.randint(len(self.b), (), generator=g))
        return {
            "a": augment(self.fetch(self.a, index % len(self.a)), self.opts, g),
            "b": augment(self.fetch(self.b, partner), self.opts, g),
        }


class FolderDataset(Unpaired):
    def __init__(
        self,
        a: list[Any],
        b: list[Any],
        opts: FolderOptions,
        train: bool,
        cache: bool,
        paired: bool = False,
    ) -> None:
        super().__init__(a, b, opts, train, paired)
        self.channels = opts.channels
        # Filled before worker processes fork, so they share it instead of each decoding again;
        # a corrupt image is named and skipped here, as fetch skips it without the cache.
        self.cache: dict[Path, Loaded] = {}
        if cache:
            for path in [*a, *b]:
                try:
                    self.cache[path] = self.load(path)
                except BadImage as exc:
                    self.skip(path, exc)

    def load(self, item: Any) -> Loaded:
        cached = self.cache.get(item)
        if cached is not None:
            return cached
        image = decode(item, self.channels)
        return image.data if isinstance(image, Planes) else image


def folder(opts: FolderOptions, split: str) -> FolderDataset:
    root = Path(opts.root)
    if not root.is_dir():
        name = root.name or "horse2zebra"
        raise CgfwError(
            f"data.root: dataset folder '{root}' not found. Get the authors' dataset with "
            f"`cgfw data download {name} --root {root.parent}` (it fetches "
            f"{AUTHORS_DATASETS}/{name}.zip), or point data.root at a folder with "
            f"{split}A/ and {split}B/ of images: --set data.root=DIR"
        )
    found = []
    for side in ("A", "B"):
        sub = root / f"{split}{side}"
        if not sub.is_dir():
            raise MissingSplit(f"data.root: '{root}' has no {split}{side}/ folder of images")
        images = usable(images_in(sub), str(sub))
        if not images:
            raise CgfwError(
                f"data.root: '{sub}' holds no usable images "
                f"({', '.join(sorted(IMAGE_SUFFIXES))}); `cgfw data check {root}` says why"
            )
        check_channels(images, f"data.root: '{sub}'", opts.channels)
        found.append(images)
    train = split == "train"
    paired = opts.pairs or (opts.test_pairs and not train)
    if paired:
        option = "pairs" if opts.pairs else "test_pairs"
        names_a, names_b = (
            [str(p.relative_to(root / f"{split}{side}")) for p in images]
            for side, images in zip("AB", found, strict=True)
        )
        if names_a != names_b:
            odd = sorted(set(names_a) ^ set(names_b))[:3] or names_a[:1]
            raise CgfwError(
                f"data.{option}: {root}/{split}A/ and {split}B/ must hold the same file names "
                f"(one scene each); these differ: {', '.join(odd)}. Set {option} = false "
                "for unpaired data"
            )
    return FolderDataset(found[0], found[1], opts, train=train, cache=opts.cache, paired=paired)


@cache
def _emoji_atlas(style: str) -> Image.Image:
    data = files("cgfw_paper") / "data" / "emoji"
    with Image.open(data / f"{style}.webp") as atlas:  # type: ignore[arg-type]
        return atlas.convert("RGB")


@cache
def _emoji_index() -> dict[str, Any]:
    index: dict[str, Any] = json.loads(
        (files("cgfw_paper") / "data" / "emoji" / "index.json").read_text(encoding="utf-8")
    )
    return index


class EmojiDataset(Unpaired):
    """Tiles of the embedded atlases: items are (style, tile index)."""

    def load(self, item: Any) -> Image.Image:
        style, i = item
        index = _emoji_index()
        tile, cols = index["tile"], index["columns"]
        x, y = (i % cols) * tile, (i // cols) * tile
        crop = _emoji_atlas(style).crop((x, y, x + tile, y + tile))
        channels = getattr(self.opts, "channels", 3)
        return crop.convert("L") if channels == 1 else crop


def emoji(opts: EmojiOptions, split: str) -> EmojiDataset:
    """Train: Noto emoji of one half of the base code points (A) and Twemoji of the other (B),
    never the same emoji (with `paired`, the emoji of one half or both, in both styles, aligned);
    test: held-out emoji in both styles, aligned (pairs for evaluation)."""
    entries = _emoji_index()["emoji"]
    if split == "train" and opts.paired:
        halves = ("train_a", "train_b") if opts.paired is True else (f"train_{opts.paired}",)
        both = [i for i, e in enumerate(entries) if e["split"] in halves]
        a, b = [("noto", i) for i in both], [("twemoji", i) for i in both]
    elif split == "train":
        a = [("noto", i) for i, e in enumerate(entries) if e["split"] == "train_a"]
        b = [("twemoji", i) for i, e in enumerate(entries) if e["split"] == "train_b"]
    else:
        held_out = [i for i, e in enumerate(entries) if e["split"] == "test"]
        a, b = [("noto", i) for i in held_out], [("twemoji", i) for i in held_out]
    paired = split != "train" or bool(opts.paired)
    return EmojiDataset(a, b, opts, train=split == "train", paired=paired)
