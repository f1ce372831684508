"""What the TF-Inception network is shown in each FID convention (``fid`` / ``kid`` option
``resize``): the same uint8 images brought to 299 px and scaled as the code that published the
numbers did it, so that cgfw's FID can be set beside theirs.

- ``tf1``: the TF FID code (Heusel et al.; torch-fidelity, clean-fid's legacy_tensorflow): the
  graph's own bilinear resize of TF1, without half-pixel centres, then (x - 128) / 128.
- ``clean``: clean-fid's default mode: each channel resized on its own as a float32 image by
  PIL's bicubic filter (antialiased when it shrinks), clipped to [0, 255], then (x - 128) / 128.
- ``torch``: pytorch-fid: the pixels scaled to [0, 1], torch's bilinear resize with
  ``align_corners=False`` (always called, also at 299 px), then 2x - 1.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from cgfw_paper.metrics import Resize

INCEPTION_SIZE = 299


def network_input(images: Tensor, resize: Resize) -> Tensor:
    """uint8 images (N, 3, H, W) -> the float32 (N, 3, 299, 299) tensor the network takes."""
    if resize == "tf1":
        x = images.float()
        if x.shape[-2:] != (INCEPTION_SIZE, INCEPTION_SIZE):
            x = tf_resize_bilinear(x, INCEPTION_SIZE)
        return (x - 128.0) / 128.0
    if resize == "clean":
        return (pil_bicubic(images, INCEPTION_SIZE).to(images.device) - 128.0) / 128.0
    x = images.float().div(255)  # torchvision's ToTensor, which pytorch-fid reads images with
    x = F.interpolate(
        x, size=(INCEPTION_SIZE, INCEPTION_SIZE), mode="bilinear", align_corners=False
    )
    return 2 * x - 1


def tf_resize_bilinear(images: Tensor, size: int) -> Tensor:
    """TF1's resize_bilinear (no half-pixel centres: output pixel j samples input j * in / out),
    which the FID graph's reference statistics were computed with; PyTorch's bilinear samples
    (j + 0.5) * in / out - 0.5. Done as a grid shifted by half an input minus half an output
    pixel, edges clamped."""
    n, c, h, w = images.shape
    theta = torch.zeros(n, 2, 3, dtype=images.dtype, device=images.device)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    theta[:, 0, 2] = 1.0 / w - 1.0 / size
    theta[:, 1, 2] = 1.0 / h - 1.0 / size
    grid = F.affine_grid(theta, [n, c, size, size], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def pil_bicubic(images: Tensor, size: int) -> Tensor:
    """uint8 (N, C, H, W) -> float32 (N, C, size, size) in [0, 255], on the CPU: every channel
    a 32-bit float PIL image ("F"), so nothing is rounded to 8 bits between the resize and the
    network; PIL's bicubic overshoots at edges, and clean-fid clips that."""
    planes = images.cpu().numpy().astype(np.float32)
    out = np.empty((*planes.shape[:2], size, size), dtype=np.float32)
    for i, image in enumerate(planes):
        for c, plane in enumerate(image):
            resized = Image.fromarray(plane).resize((size, size), Image.Resampling.BICUBIC)
            out[i, c] = np.asarray(resized)
    return torch.from_numpy(out.clip(0, 255))
