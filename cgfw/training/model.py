"""What the engine knows of a training objective: the `Model` a ``register_models`` plugin
subclasses, the `Runtime` it trains under (device, precision, processes) and the `Build` its
constructor gets to ask the recipe for components. No network, loss or dataset is named here:
cgfw's paper plugin registers the CycleGAN (plugins/cgfw_paper/cyclegan.py) as one model among
others; docs/plugins.md, "Writing a model", walks through CUT's."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from pydantic import BaseModel
from torch import Tensor, nn

from cgfw.errors import CgfwError
from cgfw.recipe import Resolved, Slot, TrainSection
from cgfw.recipe.channels import data_channels, needed_channels
from cgfw.recipe.view import RecipeView
from cgfw.training.distributed import Group
from cgfw.training.init import init_weights
from cgfw.training.precision import EngineScaler, Precision
from cgfw.training.recompute import recompute


@dataclass(frozen=True)
class Speed:
    """How the step runs on this device: the recipe's "auto" settings made concrete."""

    precision: str  # fp32 | bf16 | fp16
    channels_last: bool
    compile: str  # off | default | reduce-overhead | max-autotune
    cuda_graph: bool = False
    # train.activation_checkpointing: True (every network slot) or the slots named.
    recompute: bool | tuple[str, ...] = False

    @staticmethod
    def resolve(cfg: TrainSection, device: torch.device) -> Speed:
        cuda = device.type == "cuda"
        precision = cfg.precision
        if precision == "auto":
            precision = "bf16" if cuda and torch.cuda.is_bf16_supported() else "fp32"
        graph = cuda if cfg.cuda_graph == "auto" else bool(cfg.cuda_graph)
        wanted = cfg.activation_checkpointing
        recompute = tuple(wanted) if isinstance(wanted, list) else wanted
        return Speed(precision, cfg.channels_last, cfg.compile, graph, recompute)

    def recomputes(self, path: str) -> bool:
        return self.recompute is True or (
            isinstance(self.recompute, tuple) and path in self.recompute
        )

    @property
    def dtype(self) -> torch.dtype | None:
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format


class Runtime:
    """Where and how a model trains; a model's step calls these instead of torch directly, so
    precision, loss scaling, compilation and data parallelism stay the engine's. Its
    `Precision` is made once, from the resolved speed, before anything is built."""

    def __init__(
        self,
        device: torch.device | None = None,
        speed: Speed | None = None,
        group: Group | None = None,
    ) -> None:
        self.device = device or torch.device("cpu")
        self.group = group or Group()
        self.precision = Precision(speed or Speed("fp32", False, "off"), self.device)
        self._scaler = EngineScaler(self.precision)

    @property
    def speed(self) -> Speed:
        """Read-only: optimizers and compiled networks were built for it."""
        return self.precision.speed

    @property
    def scaler(self) -> EngineScaler:
        """For models written before the engine owned the loss scaler: `scale` and `step` work,
        `update` is the engine's now (a no-op with a DeprecationWarning)."""
        return self._scaler

    def begin_iteration(self) -> None:
        """Deprecated: the engine begins each iteration itself (`Precision.begin_iteration`)."""
        warnings.warn(
            "rt.begin_iteration() is no longer needed: the engine begins each iteration before "
            "calling the model's step; remove the call (it does nothing now)",
            DeprecationWarning,
            stacklevel=2,
        )

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        return self.precision.autocast()

    @contextlib.contextmanager
    def uncompiled(self) -> Iterator[None]:
        """For network calls outside the training step (shape check, sample grids, evaluation):
        run them as written, instead of compiling a variant for each new mode and batch shape."""
        if self.speed.compile == "off":
            yield
            return
        with torch.compiler.set_stance("force_eager"):  # set on entry, restored on exit
            yield

    def optimizer_step(self, loss: Tensor, *opts: torch.optim.Optimizer) -> None:
        """Backward, average gradients across processes, step (loss-scaled under fp16)."""
        self.precision.backward(loss)
        self.apply_gradients(*opts)

    def apply_gradients(self, *opts: torch.optim.Optimizer) -> None:
        """Average gradients across processes and step, for a model that ran its backward
        passes itself (only without a loss scale: `precision.scaler.is_enabled()` false)."""
        for opt in opts:
            self.group.average_gradients([p for g in opt.param_groups for p in g["params"]])
            self.precision.step(opt)


class Build:
    """What a model's constructor gets: the recipe's components by slot, networks placed for
    this run, and optimizers with the recipe's [optimizer] settings."""

    def __init__(self, resolved: Resolved, rt: Runtime) -> None:
        self._resolved, self.rt = resolved, rt
        self.recipe = RecipeView(resolved)
        # Each network built from a slot (by id) -> that slot's path, so `cgfw run --dry-run`
        # can name a network by its component rather than its class (often nn.Sequential).
        self.slot_of: dict[int, str] = {}

    @property
    def resolved(self) -> RecipeView:
        """The recipe, read-only (`recipe`'s old name)."""
        return self.recipe

    def declares(self, path: str, key: str) -> bool:
        """Whether the slot's component was registered with `key` (e.g. a GAN loss with
        ``pair=True``: called with the real and the fake scores together); False for an
        optional slot the recipe leaves empty."""
        component = self._resolved.components.get(path)
        return bool(component is not None and component.info(key, False))

    @property
    def channels(self) -> int:
        """The data's channel count (data.channels; 3 for datasets without the option). The
        recipe's network slots already carry it (see `Model.network_channels`); this is for
        networks a model makes itself."""
        return data_channels(self._resolved.options.get("data"))

    def keys(self, path: str) -> Any:
        """The slot's keys that the model reads (its `Slot.keys` model, validated)."""
        return self._resolved.keys[path]

    def component(self, path: str, *args: Any) -> Any:
        """The slot's component (a loss, a buffer), built from its options; None for an
        optional slot the recipe leaves empty."""
        if path not in self._resolved.components and self._resolved.slots[path].optional:
            return None
        return self._resolved.build(path, *args)

    def network(self, path: str) -> nn.Module:
        """A network from the slot's component, set up as `adopt` says."""
        net = self._resolved.build(path)
        component = self._resolved.components[path]
        if not isinstance(net, nn.Module):
            raise CgfwError(
                f"{path} '{component.name}' (plugin '{component.plugin}') returned "
                f"{type(net).__name__}, not a torch.nn.Module"
            )
        if self.rt.speed.recomputes(path):
            net = recompute(net, path)
        net = self.adopt(net)
        self.slot_of[id(net)] = path
        return net

    def adopt(self, net: nn.Module) -> nn.Module:
        """A network for this run: initialised by [init], on the device, the same in every
        process, compiled if train.compile says so. For networks a model makes itself (CUT's
        MLP head, built on the first batch), as for those built from slots."""
        init = self._resolved.recipe.init
        init_weights(net, init.name, init.gain)
        speed = self.rt.speed
        net = net.to(self.rt.device).to(memory_format=speed.memory_format)  # type: ignore[call-overload]
        self.rt.group.broadcast_parameters(net)
        if speed.compile != "off":
            # In place, so state_dict keys stay those of the plain module; dynamic=False: each
            # batch shape the step uses gets kernels of its own.
            net.compile(mode=None if speed.compile == "default" else speed.compile, dynamic=False)
            _allow_variants(32)
        return net

    def optimizer(self, *nets: nn.Module, exact: bool = False) -> torch.optim.Optimizer:
        """Adam over the networks' parameters with [optimizer]'s learning rate and betas, fused
        (one kernel per parameter and step instead of several). `exact`: on a CPU, the
        arithmetic of torch.optim.Adam's default instead, bit for bit, for a step meant to
        match another loop exactly; fused Adam rounds otherwise (7e-9 apart after 20 steps)."""
        r, device = self._resolved.recipe, self.rt.device
        adam: dict[str, Any] = {"lr": r.optimizer.lr, "betas": r.optimizer.betas}
        if device.type == "cuda" or not exact:
            adam["fused"] = True  # on a CPU 1.03x the quickstart's step (docs/benchmarks.md)
        else:
            # Each update over all parameters at once: the same values as the per-parameter
            # loop, bit for bit, in fewer calls.
            adam["foreach"] = True
        if self.rt.speed.cuda_graph:
            # Step counts and the learning rate live on the GPU, so a replayed graph sees updates.
            adam |= {"capturable": True, "lr": torch.tensor(r.optimizer.lr, device=device)}
        return torch.optim.Adam([p for net in nets for p in net.parameters()], **adam)


class Model:
    """A training objective. Subclass it, register the class with ``register_models``, and
    declare as class attributes:

    - ``slots``: the recipe sections it builds components from (``Slot(kind, default,
      keys)``), e.g. ``{"generator": Slot("generator", "resnet")}``; "data" and "schedule" are
      every model's, and a model may give them defaults;
    - ``directions``: ``{"a2b": (network, slot)}``, the translations it learns (translate,
      eval, export and the sample grids use them; a one-sided model has only "a2b");
    - ``default = True`` only for the model that recipes without a [model] section train;
    - ``optimizer_defaults``: [optimizer] values this model trains best with (e.g. ``{"lr":
      1e-3, "betas": (0.5, 0.999)}``), used where the recipe's [optimizer] sets none.

    ``__init__(options, build)`` builds ``self.networks`` and ``self.optimizers`` (names are the
    checkpoint's keys); ``setup`` may add networks that need a batch to be built (CUT's MLP
    head) before the first step and before a checkpoint is loaded into them; ``step`` trains
    one iteration through ``rt.autocast()`` and ``rt.optimizer_step()`` (the engine begins and
    ends the iteration and updates the loss scaler) and returns its loss terms, detached;
    ``extra_state`` / ``load_extra_state`` checkpoint anything else (image pools).
    ``self.build`` is the `Build` it was made with."""

    slots: ClassVar[dict[str, Slot]] = {}
    directions: ClassVar[dict[str, tuple[str, str]]] = {}
    default: ClassVar[bool] = False
    optimizer_defaults: ClassVar[dict[str, Any]] = {}
    # What needs aligned training pairs, for the error on a dataset without them (None: nothing).
    needs_pairs: str | None = None

    def __init__(self, options: BaseModel, build: Build) -> None:
        self.options, self.rt, self.build = options, build.rt, build
        self.resolved = build.resolved  # the read-only view
        self.networks: dict[str, nn.Module] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}

    def setup(self, real_a: Tensor, real_b: Tensor) -> None:
        """Once, on a batch of the run's images, before the first step or a resume."""

    def step(self, real_a: Tensor, real_b: Tensor) -> dict[str, Tensor]:
        raise NotImplementedError

    @classmethod
    def graph_obstacle_for(cls, resolved: Resolved | RecipeView) -> str | None:
        """Why this model's step, on this recipe, cannot be captured as one CUDA graph, or None.
        Asked before anything is built (from the recipe and its components' classes), so that
        optimizers are made capturable only for a run that will be captured."""
        return None

    def graph_obstacle(self) -> str | None:
        """The same question for the built model, for a reason only its parts can give (default:
        none). Asked once built: under train.cuda_graph = "auto" the engine then builds the
        model again for eager steps, so prefer `graph_obstacle_for`."""
        return None

    @classmethod
    def network_channels(cls, path: str, kind: str, channels: int) -> dict[str, int]:
        """The `in_channels` / `out_channels` the network of slot `path` (a registry `kind`)
        takes for `channels`-channel data; the recipe's options left at None are filled with
        them when it is validated. Default: generators map channels to channels,
        discriminators judge `channels`; a conditional discriminator would say twice that."""
        return needed_channels(kind, channels)

    @classmethod
    def terms(cls, resolved: Resolved) -> list[str] | None:
        """The loss terms a recipe trains, by name, for `cgfw components ablation`."""
        return None

    def extra_state(self) -> dict[str, Any]:
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        return None

    def translator(self, direction: str) -> nn.Module:
        return self.networks[self.directions[direction][0]]

    @torch.no_grad()
    def sample_rows(self, real_a: Tensor, real_b: Tensor) -> list[Tensor]:
        """The sample grid's rows: each direction's input and output, and its reconstruction
        where the model learns the way back."""
        rows: list[Tensor] = []
        for direction, real in (("a2b", real_a), ("b2a", real_b)):
            if direction not in self.directions:
                continue
            fake = self.translator(direction)(real)
            rows += [real, fake]
            back = "b2a" if direction == "a2b" else "a2b"
            if back in self.directions:
                rows.append(self.translator(back)(fake))
        return rows

    def set_lr(self, lr: float) -> None:
        for opt in self.optimizers.values():
            for group in opt.param_groups:
                if isinstance(group["lr"], Tensor):
                    group["lr"].fill_(lr)  # in place: a captured CUDA graph reads this memory
                else:
                    group["lr"] = lr

    def state_dict(self) -> dict[str, Any]:
        return {
            "networks": {k: n.state_dict() for k, n in self.networks.items()},
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "scaler": self.rt.precision.state_dict(),  # the key of every earlier checkpoint
            **self.extra_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, net in self.networks.items():
            net.load_state_dict(state["networks"][key])
        for key, opt in self.optimizers.items():
            load_optimizer(opt, state["optimizers"][key])
        self.rt.precision.load_state_dict(state.get("scaler") or {})
        self.load_extra_state(state)


def load_optimizer(opt: torch.optim.Optimizer, saved: dict[str, Any]) -> None:
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


def _allow_variants(count: int) -> None:
    """Compiled modules share one compiled function (nn.Module's call), and with it torch's
    limit of 8 compiled variants, past which every call runs uncompiled. Two kinds of network at
    two batch sizes each (N and 2N), and again for an epoch's short last batch, make 8 already."""
    config = torch._dynamo.config
    name = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"
    setattr(config, name, max(getattr(config, name), count))


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def build_network(resolved: Resolved, path: str) -> nn.Module:
    """One network of a slot, initialised, on the CPU, outside any run (translate, export)."""
    return Build(resolved, Runtime()).network(path)


def build_model(
    resolved: Resolved,
    device: torch.device | None = None,
    speed: Speed | None = None,
    group: Group | None = None,
) -> Model:
    """The recipe's model, built by its plugin for this device and these processes."""
    device = device or torch.device("cpu")
    speed = speed or Speed("fp32", False, "off")
    rt = Runtime(device, speed, group or Group())
    component = resolved.model
    try:
        model = component.factory(resolved.model_options, Build(resolved, rt))
    except CgfwError:
        raise
    except Exception as exc:
        raise CgfwError(
            f"model '{component.name}' (plugin '{component.plugin}') failed to build: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(model, Model):
        raise CgfwError(
            f"model '{component.name}' (plugin '{component.plugin}') returned "
            f"{type(model).__name__}, not a cgfw.Model"
        )
    return model
