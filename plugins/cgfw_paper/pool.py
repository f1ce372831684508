"""The image pool of Shrivastava et al. that the paper uses to show discriminators older fakes,
and no pool at all. Imported when a buffer is built (buffers.py registers them lazily)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from cgfw import NoOptions
from cgfw_paper.buffers import PoolOptions


class ImagePool:
    """Per image: until full, store and return it; then with probability 0.5 return a random
    stored image and keep the new one in its place, else return the new image.

    Every decision is a tensor operation on the images' device, drawn from that device's default
    generator: no host synchronisation, so a whole training step can be captured as one CUDA
    graph, and the draws are saved and restored with the run's random state.
    """

    graph_safe = True

    def __init__(self, opts: PoolOptions) -> None:
        self.capacity = opts.capacity
        self.images: Tensor | None = None  # (capacity, C, H, W), allocated on first use
        self.count: Tensor | None = None  # how many slots are filled, a 0-d tensor

    @property
    def one_size(self) -> bool:
        """Whether it holds images of one size only (its fakes live in one tensor)."""
        return self.capacity > 0

    def query(self, images: Tensor) -> Tensor:
        if self.capacity == 0:
            return images
        images = images.detach()
        if self.images is None or self.count is None:
            self.images = images.new_zeros((self.capacity, *images.shape[1:]))
            self.count = torch.zeros((), dtype=torch.long, device=images.device)
        out = []
        for image in images:
            full = self.count >= self.capacity
            swap = full & (torch.rand((), device=images.device) > 0.5)
            random_slot = torch.randint(self.capacity, (), device=images.device)
            slot = torch.where(full, random_slot, self.count.clamp(max=self.capacity - 1))
            stored = self.images.index_select(0, slot.view(1))[0]
            out.append(torch.where(swap, stored, image))
            keep = torch.where(swap | ~full, image, stored)  # the new image goes in unless kept out
            self.images.index_copy_(0, slot.view(1), keep.unsqueeze(0))
            self.count.add_((~full).long())
        return torch.stack(out)

    def stored(self) -> Tensor:
        """The images in the pool so far (for inspection and tests)."""
        if self.images is None or self.count is None:
            return torch.empty(0)
        return self.images[: int(self.count)]

    def state_dict(self) -> dict[str, Any]:
        return {"images": self.images, "count": self.count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.images, self.count = state["images"], state["count"]


class NoBuffer:
    """The discriminators see only the newest fakes."""

    graph_safe = True

    def __init__(self, _: NoOptions) -> None:
        pass

    def query(self, images: Tensor) -> Tensor:
        return images

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass
