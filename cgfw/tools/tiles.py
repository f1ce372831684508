"""Translating an image in tiles that equals translating it whole.

Two things make a naive tiling differ from the whole image: a tile's border pixels miss the
context of their neighbours (convolutions see a reflection of the tile instead), and instance
norm takes each tile's own statistics instead of the image's (the authors' issues 206 and 760:
visible seams). Here each tile is cut with a halo at least the network's receptive radius wide
and only its core is kept, and every instance norm uses the statistics of the whole image:

1. the receptive radius is measured once, from the gradient of one output pixel with the norms'
   statistics held fixed (so the measure sees the convolutions, not the norms);
2. the norms' statistics are found one layer at a time, in the order the network runs them: for
   norm k, every tile runs forward with norms 1..k-1 applying the whole image's statistics
   found so far, norm k adds the per-channel sum and sum of squares of its input over the tile's
   core (in float64), and the pass stops there;
3. a last pass translates every tile with all the statistics and pastes the cores together.

Memory grows with the tile (its activations and a few numbers per channel), not with the image;
the price is time: a network with K norms runs about K / 2 + 1 forward passes over the image.

A network whose statistics cannot be split this way (group or layer norm, adaptive pooling,
attention, a receptive field wider than the probe) is refused with a message naming the part;
`cgfw translate` then translates it in one piece, or says how.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cgfw.errors import CgfwError

# Parts whose output depends on the whole image in a way the passes cannot split.
GLOBAL = (
    nn.GroupNorm,
    nn.LayerNorm,
    nn.LocalResponseNorm,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool2d,
    nn.MultiheadAttention,
    nn.Linear,
)
PROBES = (128, 256, 512, 1024)  # probe sides tried for the receptive radius, smallest first


class NotTileable(CgfwError):
    """The generator cannot be translated in tiles that equal the whole image."""


class _Stop(Exception):
    """Ends a statistics pass at the norm being measured."""


def _splits(module: nn.Module) -> bool:
    """An instance norm that uses each image's own statistics (not running ones)."""
    return isinstance(module, nn.InstanceNorm2d) and (
        module.training or not module.track_running_stats
    )


@dataclass
class _Norm:
    """One instance norm: the whole image's statistics once found, or being summed."""

    module: nn.InstanceNorm2d
    mean: Tensor | None = None  # (N, C, 1, 1)
    var: Tensor | None = None
    sums: list[Tensor] = field(default_factory=list)  # sum, sum of squares, count (float64)

    def apply(self, x: Tensor) -> Tensor:
        assert self.mean is not None and self.var is not None
        m = self.module
        y = (x - self.mean.to(x.dtype)) * torch.rsqrt(self.var.to(x.dtype) + m.eps)
        if m.affine and m.weight is not None and m.bias is not None:
            y = y * m.weight.view(1, -1, 1, 1) + m.bias.view(1, -1, 1, 1)
        return y

    def add(self, core: Tensor) -> None:
        x = core.double()
        parts = [x.sum((2, 3)), (x * x).sum((2, 3)), torch.tensor(float(x[0, 0].numel()))]
        self.sums = (
            parts if not self.sums else [a + b for a, b in zip(self.sums, parts, strict=True)]
        )

    def settle(self) -> None:
        total, squares, count = self.sums
        mean = total / count
        self.mean = mean[..., None, None].float()
        self.var = (squares / count - mean * mean).clamp_min(0)[..., None, None].float()
        self.sums = []


def norms_in_order(net: nn.Module, probe: Tensor) -> list[nn.InstanceNorm2d]:
    """The instance norms that split, in the order one forward pass runs them."""
    seen: list[nn.InstanceNorm2d] = []
    hooks = [
        m.register_forward_pre_hook(lambda mod, _inp: seen.append(mod))
        for m in net.modules()
        if _splits(m)
    ]
    try:
        with torch.no_grad():
            net(probe)
    finally:
        for h in hooks:
            h.remove()
    if len(set(map(id, seen))) != len(seen):
        raise NotTileable("an instance norm runs twice in one pass (a shared layer)")
    return seen


def multiple_of(net: nn.Module) -> int:
    """The side multiple tiles must keep so every strided layer sees the same grid as in the
    whole image: the product of the convolutions' strides (an over-estimate is harmless)."""
    product = 1
    for m in net.modules():
        if isinstance(m, nn.Conv2d | nn.MaxPool2d | nn.AvgPool2d):
            stride = m.stride if isinstance(m.stride, int) else max(m.stride)
            product *= int(stride)
    return max(product, 4)


@contextmanager
def _hooked(
    norms: list[_Norm], measuring: int | None, core: tuple[slice, slice, int, int]
) -> Iterator[None]:
    """Norms before `measuring` apply the whole image's statistics; `measuring` sums its
    input's core and stops the pass (None: every norm applies, the pass runs to the end).
    `core` is (rows, cols, tile height, tile width) in input pixels."""
    rows, cols, height, width = core
    hooks = []
    for k, norm in enumerate(norms):
        if measuring is not None and k > measuring:
            break
        if k == measuring:

            def measure(_m: nn.Module, inputs: tuple[Tensor, ...], norm: _Norm = norm) -> None:
                x = inputs[0]
                sy, sx = x.shape[-2] / height, x.shape[-1] / width
                r = slice(round(rows.start * sy), round(rows.stop * sy))
                c = slice(round(cols.start * sx), round(cols.stop * sx))
                norm.add(x[..., r, c])
                raise _Stop

            hooks.append(norm.module.register_forward_pre_hook(measure))
        else:
            hooks.append(
                norm.module.register_forward_hook(
                    lambda _m, inputs, _out, norm=norm: norm.apply(inputs[0])
                )
            )
    try:
        yield
    finally:
        for h in hooks:
            h.remove()


def receptive_radius(net: nn.Module, channels: int, device: torch.device, multiple: int) -> int:
    """How far (px) an output pixel sees, with every instance norm's statistics held fixed:
    the farthest input pixel with a gradient from a `multiple`-wide block of output pixels at
    the centre (every phase of the strided layers)."""
    for side in PROBES:
        probe = torch.rand(1, channels, side, side, device=device) * 2 - 1
        try:
            norms = [_Norm(m) for m in norms_in_order(net, probe)]
        except NotTileable:
            raise
        except Exception:  # too small for the network (a deep U-Net): try a larger probe
            continue
        for norm in norms:
            c = norm.module.num_features
            norm.mean = torch.zeros(1, c, 1, 1, device=device)
            norm.var = torch.ones(1, c, 1, 1, device=device)
        probe.requires_grad_(True)
        whole = (slice(0, side), slice(0, side), side, side)
        first, last = side // 2, side // 2 + multiple - 1
        with torch.enable_grad(), _hooked(norms, None, whole):
            out = net(probe)
            out[..., first : last + 1, first : last + 1].sum().backward()
        assert probe.grad is not None
        seen = probe.grad.abs().sum((0, 1)).nonzero()
        if not len(seen):
            return 0
        lo, hi = seen.min(0).values, seen.max(0).values
        radius = max(int((first - lo).max()), int((hi - last).max()), 0)
        if radius < first - multiple:
            return radius
    raise NotTileable(
        f"an output pixel sees more than {PROBES[-1] // 2} px around it (a global part, or a "
        "very deep network)"
    )


def check_tileable(net: nn.Module) -> None:
    for name, m in net.named_modules():
        if isinstance(m, GLOBAL) or (isinstance(m, nn.BatchNorm2d) and m.training):
            raise NotTileable(
                f"its part '{name}' ({type(m).__name__}) takes in the whole image at once"
            )


def _starts(length: int, tile: int) -> list[int]:
    return list(range(0, length, tile))


@torch.no_grad()
def translate_tiled(net: nn.Module, image: Tensor, tile: int) -> Tensor:
    """`net(image)` for an (N, C, H, W) image, computed in tiles of at most `tile` px a side
    (plus the halo) with the whole image's instance norm statistics. H and W must be
    multiples of `multiple_of(net)` (cgfw translate pads them)."""
    check_tileable(net)
    multiple = multiple_of(net)
    height, width = image.shape[-2:]
    if height % multiple or width % multiple:
        raise NotTileable(f"image sides {height}x{width} are not multiples of {multiple}")
    tile = max(multiple, tile // multiple * multiple)
    radius = receptive_radius(net, image.shape[1], image.device, multiple)
    halo = math.ceil(radius / multiple) * multiple
    norms = [_Norm(m) for m in norms_in_order(net, image[..., : multiple * 2, : multiple * 2])]
    pieces = [(y, x) for y in _starts(height, tile) for x in _starts(width, tile)]

    def cut(y: int, x: int) -> tuple[Tensor, tuple[slice, slice, int, int]]:
        y0, x0 = max(0, y - halo), max(0, x - halo)
        y1, x1 = min(height, y + tile + halo), min(width, x + tile + halo)
        core = (slice(y - y0, min(y + tile, height) - y0), slice(x - x0, min(x + tile, width) - x0))
        return image[..., y0:y1, x0:x1], (*core, y1 - y0, x1 - x0)

    for k, norm in enumerate(norms):
        for y, x in pieces:
            piece, core = cut(y, x)
            with _hooked(norms, k, core), suppress(_Stop):
                net(piece)
        norm.settle()
    out: Tensor | None = None
    for y, x in pieces:
        piece, (rows, cols, _, _) = cut(y, x)
        with _hooked(norms, None, (rows, cols, 0, 0)):
            result = net(piece)
        if out is None:
            out = result.new_empty((*result.shape[:2], height, width))
        out[..., y : y + rows.stop - rows.start, x : x + cols.stop - cols.start] = result[
            ..., rows, cols
        ]
    assert out is not None
    return out


def pad_to(image: Tensor, multiple: int) -> Tensor:
    """Reflect-padded on the bottom and right to a multiple of `multiple`, as translate pads."""
    pad_h, pad_w = -image.shape[-2] % multiple, -image.shape[-1] % multiple
    return F.pad(image, (0, pad_w, 0, pad_h), mode="reflect") if pad_h or pad_w else image
