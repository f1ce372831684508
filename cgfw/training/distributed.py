"""Data parallelism through torchrun: each process trains on its share of every global batch and
gradients are averaged before each optimizer step.

We average gradients ourselves rather than wrapping networks in DistributedDataParallel: the
CycleGAN step calls each generator two or three times before one backward, which DDP's reducer
does not allow (it marks a parameter ready once per backward), and the authors' DDP port trips
over exactly that. One flattened all-reduce per optimizer keeps the result equal to a single
process with the same global batch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

from cgfw.errors import CgfwError


@dataclass(frozen=True)
class Group:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Only the main process writes logs, samples and checkpoints."""
        return self.rank == 0

    def average_gradients(self, params: list[torch.nn.Parameter]) -> None:
        if self.world == 1:
            return
        for p in params:  # every process must send the same tensors
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        grads = [p.grad for p in params if p.grad is not None]
        flat = _flatten_dense_tensors(grads)
        dist.all_reduce(flat)
        flat /= self.world
        for grad, synced in zip(grads, _unflatten_dense_tensors(flat, grads), strict=True):
            grad.copy_(synced)

    def broadcast_parameters(self, module: torch.nn.Module) -> None:
        """Start every process from the main process's weights."""
        if self.world > 1:
            for tensor in [*module.parameters(), *module.buffers()]:
                dist.broadcast(tensor.data, src=0)

    def share(self, value: Any) -> Any:
        """The main process's `value`, on every process."""
        if self.world == 1:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def any(self, flag: bool) -> bool:
        """True on all processes if it is True on one (e.g. a stop signal)."""
        if self.world == 1:
            return flag
        t = torch.tensor([int(flag)], device=_collective_device())
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def close(self) -> None:
        if self.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def _collective_device() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def setup(device: str) -> Group:
    """Join the process group torchrun describes in the environment (or stay alone)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Group()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device != "cpu" and torch.cuda.is_available()
    if use_cuda:
        if local_rank >= torch.cuda.device_count():
            raise CgfwError(
                f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} CUDA devices; "
                "use torchrun --nproc_per_node <= number of GPUs"
            )
        torch.cuda.set_device(local_rank)
    dist.init_process_group("nccl" if use_cuda else "gloo")
    return Group(rank, world, local_rank)


def device_for(group: Group, device: torch.device) -> torch.device:
    """Each process on its own GPU (cuda:LOCAL_RANK)."""
    if group.world > 1 and device.type == "cuda":
        return torch.device("cuda", group.local_rank)
    return device
