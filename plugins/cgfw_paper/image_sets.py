"""The datasets themselves: the authors' folder layout (trainA/trainB/testA/testB) and the
embedded emoji, with the authors' preprocessing modes (preprocess.py), flips and colour jitter.
Imported when a run builds one (datasets.py registers them lazily, with their options)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset
from torchvision.transforms import functional as TF

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
from cgfw_paper.preprocess import Plan, plan

log = logging.getLogger("cgfw.data")  # the same logger as cgfw.images: one place to quiet skips


# A crop's top-left corner (x, y); None where the mode does not crop.
Corner = tuple[int, int] | None


class Kept:
    """Augmented images kept by key, up to `limit` bytes (past it, later ones are computed each
    time); each comes back as a copy, so whoever gets one may change it."""

    def __init__(self, limit: int = 256 * 2**20) -> None:
        self.images: dict[Any, Tensor] = {}
        self.bytes, self.limit = 0, limit

    def __len__(self) -> int:
        return len(self.images)

    def get(self, key: Any, make: Callable[[], Tensor]) -> Tensor:
        image = self.images.get(key)
        if image is None:
            image = make()
            if self.bytes + image.nbytes > self.limit:
                return image
            self.images[key], self.bytes = image, self.bytes + image.nbytes
        return image.clone()


def augment(
    image: Image.Image | Tensor,
    opts: Augment,
    g: torch.Generator | None,
    kept: Kept | None = None,
    key: Any = None,
) -> Tensor:
    """Training (`g` given): data.preprocess with the crop's corner and the flip drawn from `g`,
    then the colour jitter; held-out images (`g` None): data.test_preprocess at
    test_load_size, the crop centred, no flip. BadImage for an image a crop does not fit in:
    the dataset skips it, naming it. With `kept`, an image whose resize and crop can come out
    only one way is kept there under `key` and read back (a copy) the next time."""
    p = plan_of(image, opts, train=g is not None)
    corner, flip = choices(p, opts, g)  # drawn even when kept: the same draws follow
    one_way = g is None or (not opts.flip and (p.crop is None or p.spans() == (1, 1)))
    if kept is not None and one_way:
        out = kept.get(key, lambda: apply(image, p, corner, flip))
    else:
        out = apply(image, p, corner, flip)
    if g is not None and opts.color_jitter:
        out = jitter(out, opts.color_jitter, g)
    return out


def plan_of(image: Image.Image | Tensor, opts: Augment, train: bool) -> Plan:
    """The mode's plan for this image: data.preprocess at load_size in training, else
    data.test_preprocess at test_load_size. BadImage when its crop does not fit ("crop" does
    not resize; the authors' RandomCrop refuses such an image too)."""
    width, height = size_of(image)
    if train:
        key, mode, load = "preprocess", opts.preprocess, opts.load_size
    else:
        key, mode, load = "test_preprocess", opts.test_mode, opts.test_load
    p = plan(mode, width, height, load, opts.crop_size)
    if not p.fits():
        raise BadImage(
            f"{width}x{height} is smaller than data.crop_size {opts.crop_size}, and data.{key} "
            f'"{mode}" does not resize; use "resize_and_crop" or "scale_width_and_crop", or a '
            "smaller crop_size"
        )
    return p


def choices(p: Plan, opts: Augment, g: torch.Generator | None) -> tuple[Corner, bool]:
    """The crop's corner and the flip: drawn from `g` in training (the corner first, as the
    authors' get_params), the centre and no flip for held-out images."""
    if g is None:
        return (None if p.crop is None else p.centre()), False
    corner: Corner = None
    if p.crop is not None:
        span_x, span_y = p.spans()
        if span_x == span_y:  # one draw of both, as before the other modes: the same crops
            x, y = (int(v) for v in torch.randint(span_x, (2,), generator=g))
        else:
            x = int(torch.randint(span_x, (), generator=g))
            y = int(torch.randint(span_y, (), generator=g))
        corner = x, y
    flip = opts.flip and torch.rand((), generator=g).item() < 0.5
    return corner, flip


def apply(image: Image.Image | Tensor, p: Plan, corner: Corner, flip: bool) -> Tensor:
    """Resize (bicubic, as the authors'), crop at `corner`, flip: an 8-bit Pillow image, or
    (C, H, W) float planes (16-bit, float, N channels) on the tensor, never rounded to 8
    bits. (C, H, W) in [-1, 1] comes back."""
    if isinstance(image, Tensor):
        planes = image
        if p.resized:
            planes = resize_planes(planes, p.size[1], p.size[0])
        if corner is not None and p.crop is not None:
            x, y = corner
            planes = planes[:, y : y + p.crop, x : x + p.crop]
        return (planes.flip(-1) if flip else planes).contiguous()
    if p.resized:
        image = image.resize(p.size, Image.Resampling.BICUBIC)
    if corner is not None and p.crop is not None:
        x, y = corner
        image = image.crop((x, y, x + p.crop, y + p.crop))
    return to_tensor(image.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if flip else image)


def size_of(image: Image.Image | Tensor) -> tuple[int, int]:
    """(width, height) of a Pillow image or of (C, H, W) planes."""
    if isinstance(image, Tensor):
        return int(image.shape[-1]), int(image.shape[-2])
    return image.size


def jitter(image: Tensor, strength: float, g: torch.Generator) -> Tensor:
    """data.color_jitter: brightness, contrast and saturation scaled by factors drawn uniformly
    from [1 - s, 1 + s), then the hue shifted by up to s / 4 of a turn, in that fixed order
    (torchvision's ColorJitter with those ranges, but its draws from the item's generator, so
    an item is the same on a resume and in any worker). (C, H, W) in [-1, 1], C 1 or 3 (one
    channel has neither saturation nor hue)."""
    draws = torch.rand(4, generator=g).mul(2).sub(1)  # in [-1, 1)
    brightness, contrast, saturation = (1.0 + strength * float(d) for d in draws[:3])
    unit = image.add(1.0).mul(0.5)
    unit = TF.adjust_brightness(unit, brightness)
    unit = TF.adjust_contrast(unit, contrast)
    unit = TF.adjust_saturation(unit, saturation)
    unit = TF.adjust_hue(unit, strength / 4 * float(draws[3]))
    return unit.mul(2.0).sub(1.0)


# What a dataset's `load` returns: an 8-bit Pillow image or float planes in [-1, 1].
Loaded = Image.Image | Tensor


class Unpaired(Dataset[dict[str, Tensor]]):
    """Training: A in shuffled order, B drawn at random for each A; an epoch is max(|A|, |B|).
    Test: A[i] with B[i mod |B|], deterministic."""

    # True for a dataset small enough to hold in memory as tensors (the embedded emoji): each
    # image resized and cropped the only way it can be is kept (up to 256 MiB per dataset and
    # process), not resized again each epoch: the quickstart's loader brings 1812 batches a
    # second instead of 782 on a CPU (docs/benchmarks.md).
    keeps_images = False

    def __init__(
        self, a: list[Any], b: list[Any], opts: Augment, train: bool, paired: bool = False
    ) -> None:
        self.a, self.b, self.opts, self.train = a, b, opts, train
        # True when item i's "b" is item i's "a" in the other domain (see register_datasets).
        self.paired = paired
        self.bad: set[Any] = set()
        self.kept = Kept() if self.keeps_images else None

    def __len__(self) -> int:
        return max(len(self.a), len(self.b))

    def load(self, item: Any) -> Loaded:
        raise NotImplementedError

    def fetch(self, items: list[Any], index: int, g: torch.Generator | None) -> Tensor:
        """items[index] augmented, or the next usable one if it turns out to be corrupt, or too
        small for the crop (named once, and not decoded again; a skipped image has drawn
        nothing from `g`). Not with aligned pairs: the next image would be another pair's, so
        a corrupt one stops."""
        for k in range(len(items)):
            item = items[(index + k) % len(items)]
            if item in self.bad:
                continue
            try:
                return augment(self.load(item), self.opts, g, self.kept, (item, g is None))
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
                "a": self.fetch(self.a, key % len(self.a), None),
                "b": self.fetch(self.b, key % len(self.b), None),
            }
        index, seed = key
        g = item_generator(seed)
        if self.paired:  # item i's B is item i's A in the other domain: the same crop and flip
            return {
                "a": self.fetch(self.a, index, item_generator(seed)),
                "b": self.fetch(self.b, index, g),
            }
        partner = int(torch.randint(len(self.b), (), generator=g))
        return {
            "a": self.fetch(self.a, index % len(self.a), g),
            "b": self.fetch(self.b, partner, g),
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

    keeps_images = True  # 3,812 tiles: 47 MB as 32 px tensors, 188 MB at their 64 px

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
