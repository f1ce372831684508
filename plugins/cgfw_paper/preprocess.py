"""The authors' preprocessing modes (`--preprocess` in their data/base_dataset.py, get_transform):
what size an image of a given size is resized to, and where it is cropped, with load_size and
crop_size meaning what their options mean in each mode. Pure geometry: image_sets.py applies it
to Pillow images and to full-precision planes alike.

    resize_and_crop       resize to load_size x load_size, crop crop_size x crop_size
    crop                  no resize, crop crop_size x crop_size
    scale_width           width to load_size, height by the aspect ratio but at least
                          crop_size (their __scale_width); no crop, and (ours alone) both
                          sides then rounded to a multiple of 4, as in "none"
    scale_width_and_crop  the same, then crop crop_size x crop_size
    none                  no resize but each side rounded to a multiple of 4 (their
                          __make_power_2 with base 4: Python's round, halves to even)

Training draws the crop's corner at random; testing (their test.py: load_size defaults to
crop_size, no flips) takes the centre where theirs draws at random, so that scores repeat."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

Mode = Literal["resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none"]
MODES: tuple[str, ...] = get_args(Mode)
# Modes whose crop must fit in the resized image: load_size >= crop_size.
RESIZED_THEN_CROPPED = ("resize_and_crop", "scale_width_and_crop")
MULTIPLE = 4  # "none": the paper's ResNet downsamples twice


@dataclass(frozen=True)
class Plan:
    """What a mode does to one image: `size` (width, height) after the resize (the image's own
    size when `resized` is False), then a square crop of side `crop` (None: no crop)."""

    size: tuple[int, int]
    resized: bool
    crop: int | None

    def spans(self) -> tuple[int, int]:
        """How many crop corners fit along the width and the height (their get_params draws
        x in [0, max(0, w - crop_size)])."""
        assert self.crop is not None
        width, height = self.size
        return max(0, width - self.crop) + 1, max(0, height - self.crop) + 1

    def centre(self) -> tuple[int, int]:
        span_x, span_y = self.spans()
        return (span_x - 1) // 2, (span_y - 1) // 2

    def fits(self) -> bool:
        """Whether the crop lies inside the image (a "crop" of a smaller image does not)."""
        return self.crop is None or min(self.size) >= self.crop


def plan(mode: str, width: int, height: int, load_size: int, crop_size: int) -> Plan:
    """The authors' get_transform for an image of `width` x `height`, as a Plan."""
    if mode == "resize_and_crop":
        return Plan((load_size, load_size), True, crop_size)
    if mode == "crop":
        return Plan((width, height), False, crop_size)
    if mode in ("scale_width", "scale_width_and_crop"):
        crop = crop_size if mode == "scale_width_and_crop" else None
        # int() of the float quotient, as theirs: the height is at least crop_size, so a wide
        # image is stretched rather than cropped outside itself. (Their early return for an
        # image already load_size wide gives this same size.)
        scaled = load_size, int(max(load_size * height / width, crop_size))
        if crop is None:
            # Uncropped, the image goes to the networks as it is: sides rounded to a multiple
            # of 4 in the same resize, as "none" rounds them. Theirs keeps any height, on which
            # their ResNet returns another size and the L1 losses fail.
            scaled = multiple_of_4(*scaled)
        return Plan(scaled, scaled != (width, height), crop)
    if mode == "none":
        size = multiple_of_4(width, height)
        return Plan(size, size != (width, height), None)
    raise ValueError(f"unknown preprocessing mode {mode!r} (known: {', '.join(MODES)})")


def multiple_of_4(width: int, height: int) -> tuple[int, int]:
    """Their __make_power_2(base=4): each side to the nearest multiple of 4 (Python's round:
    halves to even, 10 -> 8, 14 -> 16), but at least 4, where theirs rounds a side under 2 px
    to 0 and fails to resize."""
    w, h = (max(MULTIPLE, int(round(side / MULTIPLE) * MULTIPLE)) for side in (width, height))
    return w, h
