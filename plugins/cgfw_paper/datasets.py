"""Datasets: the authors' folder layout (trainA/trainB/testA/testB) and the embedded emoji, their
options and names (the datasets are in cgfw_paper/image_sets.py, imported when one is built)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cgfw import Register, hookimpl, lazy
from cgfw_paper.preprocess import RESIZED_THEN_CROPPED, Mode

AUTHORS_DATASETS = "http://efrosgans.eecs.berkeley.edu/cyclegan/datasets"

# Generous: one 16,384 px square is 3 GB as float32 RGB, and the networks' activations are
# dozens of times that; past it no accelerator holds a single image.
MAX_SIZE = 16384
# Hyperspectral stacks have a few hundred bands; the networks' first layer grows with this.
MAX_CHANNELS = 1024


class Augment(BaseModel):
    model_config = ConfigDict(extra="forbid")
    preprocess: Mode = Field(
        "resize_and_crop",
        description="how training images are resized and cropped, as the authors' --preprocess: "
        "resize_and_crop (to load_size squares, then crop_size crops), crop (crops of the "
        "image as it is), scale_width (width to load_size, aspect ratio kept, height at least "
        "crop_size), scale_width_and_crop (that, then crops), none (sides rounded to a "
        "multiple of 4); scale_width and none give images of different sizes: batch_size 1",
    )
    load_size: int = Field(
        286,
        ge=1,
        le=MAX_SIZE,
        description="images are first resized to this square (scale_width modes: this width)",
    )
    crop_size: int = Field(
        256,
        ge=4,
        le=MAX_SIZE,
        description="then cropped to this square, at random in training (scale_width: the "
        "least height)",
    )
    flip: bool = Field(True, description="random horizontal flips (training)")
    test_preprocess: Mode | None = Field(
        None,
        description="the mode for held-out images (evaluation, sample grids; translate's "
        "default scale follows it); none: preprocess. Test crops are centred, never flipped",
    )
    test_load_size: int | None = Field(
        None,
        ge=1,
        le=MAX_SIZE,
        description="load_size for held-out images; none: crop_size, as the authors' test.py",
    )
    color_jitter: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="training images' colours jittered with strength s (0: off): brightness, "
        "contrast and saturation scaled by factors in [1 - s, 1 + s], hue shifted by up to "
        "s / 4 of a turn, in that order, after the crop and flip; held-out images never",
    )

    @property
    def test_mode(self) -> Mode:
        return self.test_preprocess or self.preprocess

    @property
    def test_load(self) -> int:
        return self.test_load_size or self.crop_size

    @property
    def translate_scale(self) -> dict[str, int]:
        """The scale `cgfw translate` gives an image by default, that of the held-out images
        (the arguments of cgfw.tools.translate.Sizing, aspect ratio kept): the shorter side at
        test_load_size for resize_and_crop (it tests on squares of that side), the width at it
        for the scale_width modes, the image's own size for crop and none (no resize)."""
        if self.test_mode == "resize_and_crop":
            return {"shorter": self.test_load}
        if self.test_mode in ("scale_width", "scale_width_and_crop"):
            return {"width": self.test_load}
        return {}

    @property
    def unequal_sizes(self) -> str | None:
        """Why training images may differ in size (so batch_size must be 1), or None. The
        engine asks any dataset's options this before anything is built."""
        if self.preprocess == "scale_width":
            kept = 'aspect ratio (for equal crops: "scale_width_and_crop")'
        elif self.preprocess == "none":
            kept = 'size, rounded to a multiple of 4 (for equal crops: "crop")'
        else:
            return None
        return (
            f'data.preprocess = "{self.preprocess}" keeps each image\'s {kept}, so training '
            "images differ in size"
        )

    @model_validator(mode="after")
    def _crop_fits(self) -> Augment:
        if self.preprocess in RESIZED_THEN_CROPPED and self.crop_size > self.load_size:
            raise ValueError(
                f"crop_size {self.crop_size} is larger than load_size {self.load_size}; "
                f"set load_size >= crop_size (preprocess {self.preprocess!r} crops the "
                "resized image)"
            )
        if self.test_mode in RESIZED_THEN_CROPPED and self.crop_size > self.test_load:
            raise ValueError(
                f"crop_size {self.crop_size} is larger than test_load_size "
                f"{self.test_load}; set test_load_size >= crop_size"
            )
        channels = getattr(self, "channels", 3)
        if self.color_jitter and channels not in (1, 3):
            raise ValueError(
                f"color_jitter {self.color_jitter} needs 1- or 3-channel images, not "
                f"channels = {channels}; set color_jitter = 0"
            )
        return self


class FolderOptions(Augment):
    root: str = Field(description="folder holding trainA, trainB (and testA, testB)")
    channels: int = Field(
        3,
        ge=1,
        le=MAX_CHANNELS,
        description="channels of every image: 3 (8-bit images become RGB, as always; 16-bit "
        "and float TIFFs are read at full precision), 1 (grayscale: 8- and 16-bit PNG, TIFF), "
        "N (multi-channel .npy HxWxC arrays, TIFF stacks); networks follow it",
    )
    cache: bool = Field(
        False,
        description="decode every image once, up front, and keep it in memory (uint8); "
        "horse2zebra's 2,401 training images take about 470 MB",
    )
    test_pairs: bool = Field(
        False,
        description="testA/ and testB/ hold the same scenes under the same file names: "
        "translations are scored against their true counterparts too (PSNR, SSIM)",
    )
    pairs: bool = Field(
        False,
        description="every split's A/ and B/ hold the same scenes under the same file names "
        "(pix2pix's aligned data): training takes them together, same crop and flip, and "
        "test translations are scored against their counterparts",
    )


class EmojiOptions(Augment):
    load_size: int = Field(
        64, ge=1, le=MAX_SIZE, description="the 64 px emoji are resized to this square"
    )
    crop_size: int = Field(64, ge=4, le=MAX_SIZE)
    flip: bool = Field(False, description="off by default: some emoji (arrows) mean their side")
    channels: Literal[1, 3] = Field(3, description="3: the emoji in colour; 1: in grayscale")
    paired: bool | Literal["a", "b"] = Field(
        False,
        description="train on aligned pairs (one emoji in both styles, same crop and flip) "
        'instead of unpaired halves, for losses.paired, the supervised upper bound: "a" the '
        "emoji of the A half, so the a -> b generator learns from exactly the unpaired run's A "
        'images ("b": b -> a, the B half\'s); true: both halves, twice the images',
    )

    @property
    def unequal_sizes(self) -> str | None:
        return None  # every tile is a 64 px square: every mode gives them one size


@hookimpl
def register_datasets(register: Register) -> None:
    register(
        "folder",
        lazy("cgfw_paper.image_sets:folder"),
        FolderOptions,
        "trainA/trainB/testA/testB image folders (authors' layout)",
    )
    register(
        "emoji",
        lazy("cgfw_paper.image_sets:emoji"),
        EmojiOptions,
        "embedded Noto -> Twemoji emoji, 64 px, with held-out pairs",
    )
