"""Datasets: the authors' folder layout (trainA/trainB/testA/testB) and the embedded emoji, their
options and names (the datasets are in cgfw_paper/image_sets.py, imported when one is built)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cgfw import Register, hookimpl, lazy

AUTHORS_DATASETS = "http://efrosgans.eecs.berkeley.edu/cyclegan/datasets"

# Generous: one 16,384 px square is 3 GB as float32 RGB, and the networks' activations are
# dozens of times that; past it no accelerator holds a single image.
MAX_SIZE = 16384
# Hyperspectral stacks have a few hundred bands; the networks' first layer grows with this.
MAX_CHANNELS = 1024


class Augment(BaseModel):
    model_config = ConfigDict(extra="forbid")
    load_size: int = Field(
        286, ge=1, le=MAX_SIZE, description="images are first resized to this square"
    )
    crop_size: int = Field(
        256, ge=4, le=MAX_SIZE, description="then randomly cropped to this (training)"
    )
    flip: bool = Field(True, description="random horizontal flips (training)")

    @model_validator(mode="after")
    def _crop_fits(self) -> Augment:
        if self.crop_size > self.load_size:
            raise ValueError(
                f"crop_size {self.crop_size} is larger than load_size {self.load_size}; "
                "set load_size >= crop_size"
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
