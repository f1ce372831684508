"""Image metrics for `cgfw eval`: their names and options. Paired: PSNR, SSIM and L1, computed
by torchmetrics (cgfw_paper/pixel_metrics.py); the distribution metrics KID, FID and SWD are in
cgfw_paper/distributions.py. Both are imported when `cgfw eval` builds a metric."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from cgfw import Register, hookimpl, lazy

# How each FID implementation brings an image to Inception's 299 px (cgfw_paper/fid_inputs.py).
Resize = Literal["tf1", "clean", "torch"]


class InceptionOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    resize: Resize = Field(
        "tf1",
        description="how images reach Inception's 299 px: tf1 (the TF FID code's bilinear "
        "resize), clean (clean-fid's PIL bicubic on float pixels), torch (pytorch-fid's "
        "bilinear); compare a FID only with FIDs computed the same way (README: Which FID)",
    )


class SwdOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    patch: int = Field(7, ge=1, description="patch side in pixels")
    per_image: int = Field(64, ge=1, description="random patches taken from each image per level")
    levels: int = Field(2, ge=1, description="pyramid levels: full size, half, quarter, ...")
    projections: int = Field(128, ge=1, description="random directions the patches are sliced on")
    seed: int = 0


@hookimpl
def register_metrics(register: Register) -> None:
    # default: computed when [eval] metrics or `cgfw eval --metrics` name none.
    register(
        "psnr",
        lazy("cgfw_paper.pixel_metrics:psnr"),
        None,
        "peak signal-to-noise ratio in dB (paired; torchmetrics)",
        default=True,
    )
    register(
        "ssim",
        lazy("cgfw_paper.pixel_metrics:ssim"),
        None,
        "structural similarity, Gaussian 11x11 window (paired)",
        default=True,
    )
    register(
        "l1",
        lazy("cgfw_paper.pixel_metrics:l1"),
        None,
        "mean absolute error on the [0, 1] scale (paired)",
        default=True,
    )
    register(
        "kid",
        lazy("cgfw_paper.distributions:kid"),
        InceptionOptions,
        "kernel inception distance, TF-Inception features (cgfw[metrics])",
    )
    register(
        "fid",
        lazy("cgfw_paper.distributions:fid"),
        InceptionOptions,
        "Frechet inception distance, shown with KID (cgfw[metrics])",
    )
    register(
        "swd",
        lazy("cgfw_paper.distributions:swd"),
        SwdOptions,
        "sliced Wasserstein distance of image patches (no network)",
    )
