"""The image pool of Shrivastava et al. that the paper uses to show discriminators older fakes."""

from __future__ import annotations

from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from cgfw.hookspecs import hookimpl
from cgfw.registry import NoOptions


class PoolOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    capacity: int = Field(50, ge=0, description="images kept; 0 passes every image through")


class ImagePool:
    """Per image: until full, store and return it; then with probability 0.5 return a random
    stored image and keep the new one in its place, else return the new image."""

    def __init__(self, opts: PoolOptions) -> None:
        self.capacity = opts.capacity
        self.images: list[Tensor] = []
        # Its own generator, seeded from the global one, so its draws are saved with the run.
        self.generator = torch.Generator().manual_seed(int(torch.randint(2**62, (1,)).item()))

    def query(self, images: Tensor) -> Tensor:
        if self.capacity == 0:
            return images
        out = []
        for image in images.detach():
            # A copy: the caller's buffer may be reused (CUDA graphs replay into the same memory).
            if len(self.images) < self.capacity:
                self.images.append(image.clone())
                out.append(image)
            elif torch.rand((), generator=self.generator).item() > 0.5:
                slot = int(torch.randint(self.capacity, (), generator=self.generator).item())
                out.append(self.images[slot])
                self.images[slot] = image.clone()
            else:
                out.append(image)
        return torch.stack(out)

    def state_dict(self) -> dict[str, Any]:
        return {"images": list(self.images), "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.images = list(state["images"])
        self.generator.set_state(state["generator"])


class NoBuffer:
    """The discriminators see only the newest fakes."""

    def __init__(self, _: NoOptions) -> None:
        pass

    def query(self, images: Tensor) -> Tensor:
        return images

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


@hookimpl
def register_buffers(register):  # type: ignore[no-untyped-def]
    register("image_pool", ImagePool, PoolOptions, "history of 50 fakes, half of them replayed")
    register("none", NoBuffer, None, "no history: discriminators see the current fakes")
