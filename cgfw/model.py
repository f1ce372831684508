"""The CycleGAN as a bundle: four networks, their losses, pools and optimizers, built from a
recipe through the registries (no architecture is named here)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.dropout import _DropoutNd
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import _SpectralNorm
from torch.nn.utils.spectral_norm import SpectralNorm

from cgfw.distributed import Group
from cgfw.errors import CgfwError
from cgfw.init import init_weights
from cgfw.recipe import COMPONENT_SECTIONS, Recipe, Resolved, TrainSection
from cgfw.registry import Registry

log = logging.getLogger("cgfw.train")


class Buffer(Protocol):
    def query(self, images: Tensor) -> Tensor: ...
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> None: ...


GanLoss = Callable[..., Tensor]
ReconstructionLoss = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class Weights:
    """Loss weights as the step uses them; identity is absolute here (relative x cycle)."""

    gan: float
    cycle: float
    cycle_forward: bool
    cycle_backward: bool
    identity: float
    paired: float

    @property
    def terms(self) -> list[str]:
        """The loss terms the step computes with these weights, by name."""
        wanted = {
            "g_ab_gan": self.gan,
            "g_ba_gan": self.gan,
            "cycle_a": self.cycle_forward,
            "cycle_b": self.cycle_backward,
            "idt_b": self.identity,
            "idt_a": self.identity,
            "paired_b": self.paired,
            "paired_a": self.paired,
            "d_b": self.gan,
            "d_a": self.gan,
        }
        return [name for name, on in wanted.items() if on]

    @staticmethod
    def of(recipe: Recipe) -> Weights:
        losses = recipe.losses
        return Weights(
            gan=losses.gan.weight,
            cycle=losses.cycle.weight,
            cycle_forward=losses.cycle.forward and losses.cycle.weight > 0,
            cycle_backward=losses.cycle.backward and losses.cycle.weight > 0,
            identity=losses.identity.weight * losses.cycle.weight,
            paired=losses.paired.weight,
        )


@dataclass(frozen=True)
class Speed:
    """How the step runs on this device: the recipe's "auto" settings made concrete."""

    precision: str  # fp32 | bf16 | fp16
    channels_last: bool
    compile: str  # off | default | reduce-overhead | max-autotune
    cuda_graph: bool = False

    @staticmethod
    def resolve(cfg: TrainSection, device: torch.device) -> Speed:
        cuda = device.type == "cuda"
        precision = cfg.precision
        if precision == "auto":
            precision = "bf16" if cuda and torch.cuda.is_bf16_supported() else "fp32"
        graph = cuda if cfg.cuda_graph == "auto" else bool(cfg.cuda_graph)
        return Speed(precision, cfg.channels_last, cfg.compile, graph)

    @property
    def dtype(self) -> torch.dtype | None:
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format


@dataclass
class CycleGAN:
    g_ab: nn.Module  # A -> B (the authors' G_A)
    g_ba: nn.Module  # B -> A (G_B)
    d_a: nn.Module  # judges domain A: real_a vs fake_a (the authors' D_B)
    d_b: nn.Module  # judges domain B: real_b vs fake_b (D_A)
    gan_loss: GanLoss
    cycle_loss: ReconstructionLoss
    identity_loss: ReconstructionLoss
    paired_loss: ReconstructionLoss
    pool_a: Buffer  # history of fake_a shown to d_a
    pool_b: Buffer
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    weights: Weights
    lr_factor: Callable[[int], float]
    base_lr: float
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    speed: Speed = Speed("fp32", False, "off")
    group: Group = field(default_factory=Group)
    # Whether the step may run a network once on several inputs stacked along the batch
    # (train.stack_calls), and the networks that must not: they mix samples or keep per-call
    # state, by their modules' types (_mixes_samples) or as measured on the first batch.
    stack_calls: bool = True
    apart: list[nn.Module] = field(default_factory=list)
    stacking_checked: bool = False
    # Scales fp16 losses so small gradients survive; a no-op pass-through otherwise.
    scaler: torch.amp.GradScaler = field(
        default_factory=lambda: torch.amp.GradScaler("cpu", enabled=False)
    )

    def begin_iteration(self) -> None:
        """Tell CUDA graphs (compile mode reduce-overhead) that the last iteration's outputs are
        dead, so they can replay on their fast path; a no-op otherwise."""
        if self.speed.compile == "reduce-overhead":
            torch.compiler.cudagraph_mark_step_begin()

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        dtype = self.speed.dtype
        if dtype is None:
            return contextlib.nullcontext()
        # A CUDA graph must not keep autocast's cached weight casts from capture time.
        return torch.autocast(
            self.device.type, dtype=dtype, cache_enabled=not self.speed.cuda_graph
        )

    @contextlib.contextmanager
    def uncompiled(self) -> Iterator[None]:
        """For network calls outside the training step (shape check, sample grids, evaluation):
        run them as written, instead of compiling a variant for each new mode and batch shape
        (slow on a paper-sized model, for calls that are rare)."""
        if self.speed.compile == "off":
            yield
            return
        with torch.compiler.set_stance("force_eager"):  # set on entry, restored on exit
            yield

    def optimizer_step(self, loss: Tensor, opt: torch.optim.Optimizer) -> None:
        """Backward, average gradients across processes, step (loss-scaled under fp16)."""
        self.scaler.scale(loss).backward()
        self.group.average_gradients([p for g in opt.param_groups for p in g["params"]])
        self.scaler.step(opt)

    def stacks(self, net: nn.Module) -> bool:
        return self.stack_calls and not any(net is other for other in self.apart)

    def networks(self) -> dict[str, nn.Module]:
        return {"g_ab": self.g_ab, "g_ba": self.g_ba, "d_a": self.d_a, "d_b": self.d_b}

    def set_epoch(self, epoch: int) -> float:
        """Apply the schedule's learning rate for `epoch` (1-based) to both optimizers."""
        lr = self.base_lr * self.lr_factor(epoch)
        for opt in (self.opt_g, self.opt_d):
            for group in opt.param_groups:
                if isinstance(group["lr"], Tensor):
                    group["lr"].fill_(lr)  # in place: a captured CUDA graph reads this memory
                else:
                    group["lr"] = lr
        return lr

    def state_dict(self) -> dict[str, Any]:
        return {
            "networks": {k: n.state_dict() for k, n in self.networks().items()},
            "optimizers": {"g": self.opt_g.state_dict(), "d": self.opt_d.state_dict()},
            "buffers": {"a": self.pool_a.state_dict(), "b": self.pool_b.state_dict()},
            "scaler": self.scaler.state_dict(),
            # The first batch's stacking decision, so a resumed run stacks exactly as before.
            "apart": [k for k, n in self.networks().items() if n in self.apart],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, net in self.networks().items():
            net.load_state_dict(state["networks"][key])
        _load_optimizer(self.opt_g, state["optimizers"]["g"])
        _load_optimizer(self.opt_d, state["optimizers"]["d"])
        self.pool_a.load_state_dict(state["buffers"]["a"])
        self.pool_b.load_state_dict(state["buffers"]["b"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        if "apart" in state:  # checkpoints from before the measured decision check again
            nets = self.networks()
            self.apart += [nets[k] for k in state["apart"] if nets[k] not in self.apart]
            self.stacking_checked = True


def _load_optimizer(opt: torch.optim.Optimizer, saved: dict[str, Any]) -> None:
    """Load moments and step counts, but keep how this run steps (fused, capturable, a learning
    rate in a GPU tensor): a run saved on a CPU may be resumed on a GPU with CUDA graphs."""
    how: list[dict[str, Any]] = [
        {k: g[k] for k in ("fused", "capturable", "foreach", "lr") if k in g}
        for g in opt.param_groups
    ]
    opt.load_state_dict(saved)
    for group, current in zip(opt.param_groups, how, strict=True):
        lr = float(group["lr"])
        group.update(current)
        if isinstance(current.get("lr"), Tensor):
            current["lr"].fill_(lr)
        else:
            group["lr"] = lr
        if group.get("capturable") or group.get("fused"):
            for p in group["params"]:  # their step counts must live beside the parameters
                step = opt.state.get(p, {}).get("step")
                if isinstance(step, Tensor):
                    opt.state[p]["step"] = step.to(p.device, torch.float32)


def _mixes_samples(module: nn.Module) -> bool:
    """Whether one call on stacked inputs would compute or keep something other than a call
    per input does: batch statistics (batch norm), running averages updated per call (any norm
    with track_running_stats), spectral norm's power iteration per call, or a plugin's module
    that says so (cgfw/hookspecs.py). Dropout draws other masks but from the same distribution,
    so it does not count."""
    if isinstance(module, _BatchNorm) or getattr(module, "track_running_stats", False):
        return True
    if any(isinstance(hook, SpectralNorm) for hook in module._forward_pre_hooks.values()):
        return True  # torch.nn.utils.spectral_norm
    if parametrize.is_parametrized(module):  # torch.nn.utils.parametrizations.spectral_norm
        chains = module.parametrizations.values()  # type: ignore[union-attr,operator]
        if any(isinstance(p, _SpectralNorm) for chain in chains for p in chain):
            return True
    return bool(getattr(module, "mixes_samples", False))


@torch.no_grad()
def check_stacking(m: CycleGAN, real_a: Tensor, real_b: Tensor) -> list[str]:
    """Once, on the first batch: run each network that may stack on the two batches stacked and
    apart, in fp32 (TF32 off). A network whose outputs differ beyond rounding, or are not
    finite, mixes samples in a way its modules' types do not show (a functional batch norm,
    minibatch statistics, attention across the batch); it runs its calls apart from then on,
    and is named. Every process takes the same decision. Returns the names moved apart.

    Leaves no trace: buffers (running statistics) are restored, random draws are forked, and
    dropout is off for the comparison (it draws other masks, from the same distribution)."""
    m.stacking_checked = True
    if not m.stack_calls or real_a.shape[1:] != real_b.shape[1:]:
        return []
    moved = []
    for name, net in m.networks().items():
        if not m.stacks(net):
            continue
        if m.group.any(_differs_when_stacked(net, m, real_a, real_b)):
            m.apart.append(net)
            moved.append(name)
            log.warning(
                "%s (%s) gives other outputs on inputs stacked along the batch than on each "
                "input alone: it mixes samples, so its calls run apart (a module attribute "
                "mixes_samples = True says so up front)",
                name,
                type(net).__name__,
            )
    return moved


def _differs_when_stacked(net: nn.Module, m: CycleGAN, real_a: Tensor, real_b: Tensor) -> bool:
    saved = [b.detach().clone() for b in net.buffers()]
    dropouts = [x for x in net.modules() if isinstance(x, _DropoutNd) and x.training]
    devices = [real_a.device] if real_a.device.type == "cuda" else []
    matmul_tf32 = torch.backends.cuda.matmul.allow_tf32
    try:
        for x in dropouts:
            x.eval()
        torch.backends.cuda.matmul.allow_tf32 = False
        with (
            torch.random.fork_rng(devices=devices),
            torch.backends.cudnn.flags(enabled=True, allow_tf32=False),
            m.uncompiled(),
        ):
            apart = torch.cat([net(real_a).float(), net(real_b).float()])
            stacked = net(torch.cat([real_a, real_b])).float()
    finally:
        torch.backends.cuda.matmul.allow_tf32 = matmul_tf32
        for x in dropouts:
            x.train()
        for buffer, value in zip(net.buffers(), saved, strict=True):
            buffer.copy_(value)
    if stacked.shape != apart.shape:
        return True
    tolerance = 1e-3 * apart.abs().max().nan_to_num(0.0)
    return not bool(((stacked - apart).abs() <= tolerance).all())  # NaN compares as a difference


def _allow_variants(count: int) -> None:
    """Compiled modules share one compiled function (nn.Module's call), and with it torch's
    limit of 8 compiled variants, past which every call runs uncompiled. Two kinds of network at
    two batch sizes each (N and 2N), and again for an epoch's short last batch, make 8 already."""
    config = torch._dynamo.config
    name = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"
    setattr(config, name, max(getattr(config, name), count))


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def build_network(resolved: Resolved, registry: Registry, path: str) -> nn.Module:
    section = resolved.section(path)
    component = registry.get(COMPONENT_SECTIONS[path][0], section.name)
    try:
        net = component.factory(resolved.options[path])
    except Exception as exc:
        raise CgfwError(
            f"{path} '{section.name}' (plugin '{component.plugin}') failed to build: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(net, nn.Module):
        raise CgfwError(
            f"{path} '{section.name}' (plugin '{component.plugin}') returned "
            f"{type(net).__name__}, not a torch.nn.Module"
        )
    init = resolved.recipe.init
    init_weights(net, init.name, init.gain)
    return net


def build_cyclegan(
    resolved: Resolved,
    registry: Registry,
    device: torch.device,
    speed: Speed | None = None,
    group: Group | None = None,
) -> CycleGAN:
    r = resolved.recipe
    speed = speed or Speed("fp32", False, "off")
    group = group or Group()
    weights = Weights.of(r)
    if not weights.terms:
        raise CgfwError(f"{resolved.source}: every loss term is off; nothing would be trained")

    def make(path: str) -> Any:
        kind = COMPONENT_SECTIONS[path][0]
        return registry.get(kind, resolved.section(path).name).factory(resolved.options[path])

    def network(path: str) -> nn.Module:
        net = build_network(resolved, registry, path).to(device)
        net = net.to(memory_format=speed.memory_format)  # type: ignore[call-overload]
        group.broadcast_parameters(net)
        if speed.compile != "off":
            # In place, so state_dict keys stay those of the plain module.
            # dynamic=False: each batch shape the step uses (N and 2N images per call, and a
            # short last batch) gets kernels of its own, rather than slower ones for any shape.
            net.compile(mode=None if speed.compile == "default" else speed.compile, dynamic=False)
            _allow_variants(32)
        return net

    g_ab, g_ba = network("generator"), network("generator")
    d_a, d_b = network("discriminator"), network("discriminator")
    adam: dict[str, Any] = {"lr": r.optimizer.lr, "betas": r.optimizer.betas}
    if device.type == "cuda":
        adam["fused"] = True  # one kernel per step instead of several per parameter
    if speed.cuda_graph:
        # Step counts and the learning rate live on the GPU, so a replayed graph sees updates.
        adam |= {"capturable": True, "lr": torch.tensor(r.optimizer.lr, device=device)}
    opt_g = torch.optim.Adam([*g_ab.parameters(), *g_ba.parameters()], **adam)
    opt_d = torch.optim.Adam([*d_a.parameters(), *d_b.parameters()], **adam)
    nets = (g_ab, g_ba, d_a, d_b)
    return CycleGAN(
        g_ab=g_ab,
        g_ba=g_ba,
        d_a=d_a,
        d_b=d_b,
        gan_loss=make("losses.gan"),
        cycle_loss=make("losses.cycle"),
        identity_loss=make("losses.identity"),
        paired_loss=make("losses.paired"),
        pool_a=make("buffer"),
        pool_b=make("buffer"),
        opt_g=opt_g,
        opt_d=opt_d,
        weights=weights,
        lr_factor=make("schedule"),
        base_lr=r.optimizer.lr,
        device=device,
        speed=speed,
        group=group,
        scaler=torch.amp.GradScaler(device.type, enabled=speed.precision == "fp16"),
        stack_calls=r.train.stack_calls,
        apart=[net for net in nets if any(_mixes_samples(x) for x in net.modules())],
    )
