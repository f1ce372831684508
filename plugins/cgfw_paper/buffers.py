"""The image pool of Shrivastava et al. that the paper uses to show discriminators older fakes."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from cgfw import Register, hookimpl, lazy


class PoolOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # Allocated in full on first use: 100,000 images of 256 px are 79 GB (the paper keeps 50).
    capacity: int = Field(
        50, ge=0, le=100_000, description="images kept; 0 passes every image through"
    )


@hookimpl
def register_buffers(register: Register) -> None:
    register(
        "image_pool",
        lazy("cgfw_paper.pool:ImagePool"),
        PoolOptions,
        "history of 50 fakes, half of them replayed",
    )
    register(
        "none",
        lazy("cgfw_paper.pool:NoBuffer"),
        None,
        "no history: discriminators see the current fakes",
    )
