"""`cgfw compare --grid`: several runs' translations of the same held-out images in one PNG, one
row per run under the inputs and (for paired data) the true targets, a -> b above b -> a."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image, ImageDraw

from cgfw.errors import CgfwError
from cgfw.session.load import OneSided, load_generator
from cgfw.tools.translate import to_image
from cgfw.training.loop import build_dataset

LABEL_WIDTH = 150
GAP = 6


@torch.no_grad()
def sample_grid(runs: list[tuple[str, Path]], path: Path, count: int, scale: int = 2) -> None:
    """Row labels with run directories: each run's latest checkpoint translates the same
    `count` test items, spread over the first run's test split."""
    first = load_generator(runs[0][1], "a2b")
    dataset = build_dataset(first.resolved, "test")
    total = len(dataset)  # type: ignore[arg-type]
    picks = sorted({round(i * (total - 1) / max(1, count - 1)) for i in range(min(count, total))})
    items = [dataset[i] for i in picks]
    real = {side: torch.stack([item[side] for item in items]) for side in ("a", "b")}
    paired = bool(getattr(dataset, "paired", False))
    rows: list[tuple[str, torch.Tensor]] = []
    for direction, src, dst in (("a2b", "a", "b"), ("b2a", "b", "a")):
        rows.append((f"{direction}: input {src.upper()}", real[src]))
        if paired:
            rows.append((f"{direction}: true {dst.upper()}", real[dst]))
        for label, run_dir in runs:
            try:
                g = load_generator(run_dir, direction)
            except OneSided:  # CUT and the like: a grey row says it has no b -> a
                rows.append((f"{label} (one-sided)", torch.zeros_like(real[src])))
                continue
            if g.crop_size is not None and g.crop_size != real[src].shape[-1]:
                raise CgfwError(
                    f"--grid: {run_dir} works at {g.crop_size} px, {runs[0][1]} at "
                    f"{real[src].shape[-1]} px; grid runs of one image size"
                )
            rows.append((label, g.net(real[src]).clamp(-1, 1)))
    size = real["a"].shape[-1] * scale
    width = LABEL_WIDTH + len(items) * size
    height = len(rows) * size + GAP
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    y = 0
    for n, (label, images) in enumerate(rows):
        if n == len(rows) // 2:
            y += GAP  # a gap between the a -> b and b -> a halves
        draw.text((4, y + size // 2 - 6), label[:24], fill="black")
        for i, image in enumerate(images):
            tile = to_image(image).resize((size, size), Image.Resampling.NEAREST)
            canvas.paste(tile, (LABEL_WIDTH + i * size, y))
        y += size
    try:
        canvas.save(path)
    except (OSError, ValueError) as exc:
        raise CgfwError(f"--grid {path}: cannot write: {exc}") from None
