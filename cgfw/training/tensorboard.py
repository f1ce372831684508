"""TensorBoard output: scalars, sample grids and HParams, all in the run's own directory."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams
from torchvision.utils import make_grid, save_image

from cgfw.recipe.keys import flatten
from cgfw.store.layout import write_error


def write_hparams(
    writer: SummaryWriter, recipe: Mapping[str, Any], metrics: Mapping[str, float], step: int
) -> None:
    """Like SummaryWriter.add_hparams, but without the extra sub-run directory that
    add_hparams creates (pytorch issue 32651), so runs line up with their scalars. `step`
    is the iteration the metrics belong to, so they also sit right on the run's curves."""
    exp, ssi, sei = hparams(flatten(recipe), dict(metrics))
    file_writer = writer._get_file_writer()
    for summary in (exp, ssi, sei):
        file_writer.add_summary(summary)
    for name, value in metrics.items():
        writer.add_scalar(name, value, step)


def viewable(images: Tensor) -> Tensor:
    """(N, C, H, W) -> images a PNG and TensorBoard can show: 1 channel stays grayscale (the
    grid repeats it), 3 are RGB, 2 show their first as grayscale, more than 3 their first three
    as RGB (the others are not drawn)."""
    channels = images.shape[1]
    if channels == 2:
        return images[:, :1]
    return images[:, :3] if channels > 3 else images


def sample_grid(rows: list[Tensor]) -> Tensor:
    """Images in [-1, 1] -> one RGB grid, one sample per row:
    real_a | fake_b | rec_a | real_b | fake_a | rec_b."""
    images = viewable(torch.stack(rows, dim=1).flatten(0, 1))  # (samples * 6, C, H, W)
    return make_grid(images.float().cpu(), nrow=len(rows), normalize=True, value_range=(-1, 1))


def save_grid(grid: Tensor, path: Path) -> None:
    """Through a temporary file: a full disk leaves no half image, and says so once."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_image(grid, tmp, format="png")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise write_error(path, exc) from None
