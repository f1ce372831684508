"""The training loop around `cyclegan_step`: data, schedule, logging, samples and checkpoints."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import torch
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text
from torch import Tensor
from torch.utils.data import Dataset
from torch.utils.tensorboard import SummaryWriter

from cgfw import checkpoint
from cgfw import resume as resuming
from cgfw.data import KeyBatches, epoch_keys, iters_per_epoch, train_loader
from cgfw.distributed import Group
from cgfw.errors import CgfwError, MissingSplit, TrainingStopped
from cgfw.evaluation import build_metric, evaluate, flat_metrics
from cgfw.graphs import GraphedStep, check_graphable, obstacle
from cgfw.model import CycleGAN, Speed, build_cyclegan, check_stacking
from cgfw.plugins import Loaded
from cgfw.recipe import Resolved
from cgfw.step import cyclegan_step
from cgfw.tensorboard import sample_grid, save_grid, write_hparams

log = logging.getLogger("cgfw.train")


class SpeedColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.1f} it/s" if speed else "-- it/s", style="progress.data.speed")


@dataclass
class RunResult:
    run_dir: Path
    iterations: int
    final_losses: dict[str, float] = field(default_factory=dict)


def resolve_device(name: str, where: str = "train.device") -> torch.device:
    """`name` as a device; `where` is the option the user set it with, for the message."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise CgfwError(
            f"{where}: unknown device {name!r} (use auto, cpu, cuda or cuda:N)"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CgfwError(
            f"{where}: cuda was asked for but no CUDA device is available; use cpu or auto"
        )
    return device


def build_dataset(resolved: Resolved, loaded: Loaded, split: str) -> Dataset[Any]:
    section = resolved.recipe.data
    component = loaded.registry.get("dataset", section.name)
    try:
        dataset: Dataset[Any] = component.factory(resolved.options["data"], split)
    except CgfwError as exc:  # same class (MissingSplit stays one), the recipe's name added
        raise type(exc)(f"{resolved.source}: {exc}") from None
    except Exception as exc:
        raise CgfwError(
            f"dataset '{section.name}' (plugin '{component.plugin}') failed to load the "
            f"{split} split: {type(exc).__name__}: {exc}"
        ) from exc
    if len(dataset) == 0:  # type: ignore[arg-type]
        raise MissingSplit(f"dataset '{section.name}': the {split} split is empty")
    return dataset


def fixed_samples(
    resolved: Resolved, loaded: Loaded, train_set: Dataset[Any], n: int
) -> tuple[Tensor, Tensor]:
    """The same images every time, from the test split when there is one. Only a missing test
    split falls back to training images; one that fails to load is an error like any other."""
    try:
        test_set = build_dataset(resolved, loaded, "test")
    except MissingSplit as exc:
        log.warning("%s; the sample grids show training images instead", exc)
        keys = epoch_keys(len(train_set), 12345, 0)[:n]  # type: ignore[arg-type]
        items = [train_set[k] for k in keys]
    else:
        items = [test_set[i] for i in range(min(n, len(test_set)))]  # type: ignore[arg-type]
    return torch.stack([i["a"] for i in items]), torch.stack([i["b"] for i in items])


@torch.no_grad()
def translate_samples(m: CycleGAN, real_a: Tensor, real_b: Tensor) -> Tensor:
    m.g_ab.eval()
    m.g_ba.eval()
    with m.uncompiled():
        fake_b, fake_a = m.g_ab(real_a), m.g_ba(real_b)
        rows = [real_a, fake_b, m.g_ba(fake_b), real_b, fake_a, m.g_ab(fake_a)]
    m.g_ab.train()
    m.g_ba.train()
    return sample_grid(rows)


def run_speed(resolved: Resolved, loaded: Loaded, device: torch.device, world: int = 1) -> Speed:
    """The recipe's speed settings made concrete for this device. train.cuda_graph = true on a
    run that cannot be captured is an error; "auto" then quietly means eager steps."""
    cfg = resolved.recipe.train
    speed = Speed.resolve(cfg, device)
    if speed.cuda_graph:
        buffer = loaded.registry.get("buffer", resolved.recipe.buffer.name).factory
        if cfg.cuda_graph is True:
            check_graphable(speed, device, world, buffer)
        elif obstacle(speed, device, world, buffer):
            speed = dataclasses.replace(speed, cuda_graph=False)
    return speed


def make_step(
    m: CycleGAN, strict: bool = True
) -> Callable[[CycleGAN, Tensor, Tensor], dict[str, Tensor]]:
    """The CycleGAN step, replayed as one CUDA graph when the run's speed settings say so;
    `strict` False (train.cuda_graph = "auto") falls back to eager steps if capture fails."""
    return GraphedStep(m, cyclegan_step, strict) if m.speed.cuda_graph else cyclegan_step


def train_iteration(
    step: Callable[[CycleGAN, Tensor, Tensor], dict[str, Tensor]],
    m: CycleGAN,
    real_a: Tensor,
    real_b: Tensor,
    log: LossLog,
    iteration: int,
    run_dir: Path,
    group: Group | None = None,
) -> None:
    """What training does with each batch on the device: the step, the non-finite check (one
    host sync) and the loss bookkeeping. `cgfw bench` times exactly this."""
    if not m.stacking_checked:
        check_stacking(m, real_a, real_b)
    terms = step(m, real_a, real_b)
    stop_if_nonfinite(terms, iteration, run_dir, group)
    log.add(terms)


def stop_if_nonfinite(
    terms: dict[str, Tensor], iteration: int, run_dir: Path, group: Group | None = None
) -> None:
    """One host sync per step: a NaN caught here never reaches a checkpoint. With several
    processes all of them stop together (one alone would leave the others waiting)."""
    values = torch.stack(list(terms.values()))
    finite = bool(torch.isfinite(values).all())
    if not (group or Group()).any(not finite):
        return
    if finite:
        raise TrainingStopped(f"another process met a non-finite loss at iteration {iteration}")
    bad = ", ".join(f"{k} = {v.item()}" for k, v in terms.items() if not torch.isfinite(v))
    raise TrainingStopped(
        f"non-finite loss at iteration {iteration}: {bad}. The last good checkpoint is kept in "
        f"{run_dir / 'checkpoints'} (cgfw run --resume {run_dir}); try a lower optimizer.lr "
        'or train.precision = "fp32"'
    )


def warn_if_schedule_unused(factor: Callable[[int], float], epochs: int) -> None:
    """The schedule is set in epochs of its own (e.g. 100 + 100); a run shorter than that would
    end before the learning rate ever moves, silently."""
    during = {factor(e) for e in range(1, epochs + 1)}
    if len(during) == 1 and any(factor(e) not in during for e in range(epochs + 1, epochs + 1001)):
        log.warning(
            "the learning-rate schedule only starts to change after epoch %d, where this run "
            "ends: make train.epochs match the schedule (e.g. schedule.n_epochs + "
            "schedule.n_epochs_decay) or shorten the schedule",
            epochs,
        )


def all_finite(m: CycleGAN) -> bool:
    params = [p.detach() for net in m.networks().values() for p in net.parameters()]
    return bool(torch.stack(torch._foreach_norm(params)).isfinite().all())


def check_shapes(m: CycleGAN, image: Tensor, resolved: Resolved, loaded: Loaded) -> None:
    """A plugin network that returns the wrong shape fails here, named, not deep in a loss."""
    expected = {"generator": tuple(image.shape), "discriminator": None}
    with torch.no_grad(), m.autocast(), m.uncompiled():
        for path, net in (("generator", m.g_ab), ("discriminator", m.d_b)):
            was_training = net.training
            net.eval()
            name = resolved.section(path).name
            plugin = loaded.registry.get(path, name).plugin
            try:
                out = net(image)
            except CgfwError:
                raise
            except Exception as exc:
                raise CgfwError(
                    f"{path} '{name}' (plugin '{plugin}') failed on a {tuple(image.shape)} image: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            net.train(was_training)
            want = expected[path]
            ok = tuple(out.shape) == want if want else (out.dim() == 4 and out.shape[:2] == (1, 1))
            if not ok:
                shape = "the input's shape " + str(want) if want else "(1, 1, h, w) scores"
                raise CgfwError(
                    f"{path} '{name}' (plugin '{plugin}') returned shape {tuple(out.shape)} for a "
                    f"{tuple(image.shape)} image; it must return {shape}. If the image size is "
                    "the cause, set data.crop_size to one it supports (the paper's ResNet: a "
                    "multiple of 4)"
                )


class _StopRequest:
    """SIGINT / SIGTERM: finish the step in flight, checkpoint, then exit."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> _StopRequest:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.signum is not None:  # a second Ctrl-C stops at once
            raise KeyboardInterrupt
        self.signum = signum

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


class LossLog:
    """Averages each loss term over a log window: TensorBoard scalars, the progress bar's
    losses and, without a terminal (CI, nohup), a plain line every 10 s."""

    def __init__(
        self, writer: SummaryWriter | None, console: Console, total: int, start: int
    ) -> None:
        self.writer, self.console, self.total = writer, console, total
        self.sums: dict[str, Tensor] = {}
        self.window = 0
        self.final: dict[str, float] = {}
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            SpeedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[losses]}"),
            console=console,
            disable=not console.is_terminal,
        )
        self.task = self.progress.add_task("train", total=total, completed=start, losses="")
        self.start, self.started = start, time.perf_counter()
        self.last_line = self.started

    def add(self, terms: dict[str, Tensor]) -> None:
        for name, value in terms.items():  # stays on the device: no sync per step
            # A copy first: a CUDA graph's outputs are overwritten by its next replay.
            self.sums[name] = self.sums[name] + value if name in self.sums else value.clone()
        self.window += 1

    def flush(self, iteration: int, epoch: int, lr: float) -> None:
        self.final = {k: (v / self.window).item() for k, v in self.sums.items()}
        if self.writer is not None:
            for name, value in self.final.items():
                self.writer.add_scalar(f"loss/{name}", value, iteration)
            self.writer.add_scalar("lr", lr, iteration)
        self.sums, self.window = {}, 0
        shown = " ".join(
            f"{k} {self.final[k]:.3f}" for k in ("g_total", "d_a", "d_b") if k in self.final
        )
        self.progress.update(self.task, losses=shown)
        now = time.perf_counter()
        if not self.console.is_terminal and (now - self.last_line > 10 or iteration == self.total):
            rate = (iteration - self.start) / (now - self.started)
            eta = (self.total - iteration) / rate if rate else 0.0
            self.console.print(
                f"iter {iteration}/{self.total} epoch {epoch} "
                f"{rate:.1f} it/s ETA {eta:.0f}s {shown}"
            )
            self.last_line = now

    def advance(self, epoch: int) -> None:
        self.progress.update(self.task, advance=1, description=f"epoch {epoch}")


def train(
    resolved: Resolved,
    loaded: Loaded,
    run_dir: Path,
    device: torch.device,
    console: Console,
    resume: Path | None = None,
    group: Group | None = None,
    allow_changes: bool = False,
) -> RunResult:
    recipe = resolved.recipe
    cfg = recipe.train
    group = group or Group()
    if cfg.batch_size % group.world:
        raise CgfwError(
            f"train.batch_size {cfg.batch_size} must be divisible by the {group.world} processes"
        )
    speed = run_speed(resolved, loaded, device, group.world)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input sizes: pick the fastest conv kernels
    torch.manual_seed(recipe.run.seed)  # the same initial weights in every process
    dataset = build_dataset(resolved, loaded, "train")
    samples = [t.to(device) for t in fixed_samples(resolved, loaded, dataset, cfg.samples)]
    m = build_cyclegan(resolved, loaded.registry, device, speed, group)
    if m.weights.paired and not getattr(dataset, "paired", False):
        raise CgfwError(
            f"{resolved.source}: losses.paired.weight = {m.weights.paired} needs aligned "
            f"training pairs, and dataset '{recipe.data.name}' gives unpaired ones; set "
            "data.paired = true (emoji) or losses.paired.weight = 0"
        )
    torch.manual_seed(recipe.run.seed + group.rank)  # each process its own pool and dropout draws

    per_epoch = iters_per_epoch(len(dataset), cfg.batch_size)  # type: ignore[arg-type]
    total = cfg.max_iters or cfg.epochs * per_epoch
    if cfg.max_iters is None:
        warn_if_schedule_unused(m.lr_factor, cfg.epochs)
    iteration = 0
    check_shapes(m, samples[0][:1], resolved, loaded)
    if resume is not None:
        state = checkpoint.load(resume, map_location=device)
        for change in resuming.check(state["recipe"], resolved.to_dict(), allow_changes):
            console.print(f"resuming with a change: {change}")
        try:
            m.load_state_dict(state["model"])
        except (RuntimeError, KeyError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0]
            raise CgfwError(f"{resume}: does not fit this recipe's networks ({first})") from None
        iteration = state["iteration"]
        if iteration >= total:
            raise CgfwError(
                f"{resume}: the run is already at iteration {iteration} of {total}; "
                f"raise train.max_iters or train.epochs to train further"
            )
        # Random states are CPU byte tensors, whatever device the checkpoint was mapped to.
        torch.set_rng_state(state["rng"]["torch"].cpu())
        if device.type == "cuda" and state["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state(state["rng"]["cuda"].cpu(), device)
        console.print(f"resumed from {resume} at iteration {iteration}")

    def save_checkpoint() -> None:
        if not all_finite(m):  # on every process: they hold the same weights and stop together
            raise TrainingStopped(
                f"non-finite weights at iteration {iteration}; not checkpointed, so the last "
                f"good checkpoint in {run_dir / 'checkpoints'} stays"
            )
        if not group.main:
            return
        rng = {"torch": torch.get_rng_state()}
        if device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(device)
        state = {"iteration": iteration, "epoch": iteration // per_epoch + 1, "rng": rng}
        state |= {"model": m.state_dict(), "recipe": resolved.to_dict()}
        checkpoint.save(run_dir / "checkpoints", state)

    evaluation = recipe.eval
    eval_set = build_dataset(resolved, loaded, evaluation.split) if evaluation.every else None
    for name in evaluation.metrics if evaluation.every else []:
        build_metric(loaded.registry, name)  # a misspelled metric fails now, not hours in

    def evaluate_now() -> None:
        """Held-out metrics as TensorBoard curves (eval/a2b/psnr, ...)."""
        if writer is None or eval_set is None:
            return
        with m.uncompiled():
            results = evaluate(
                m.g_ab, m.g_ba, eval_set, evaluation.split, evaluation.metrics,
                loaded.registry, device, evaluation.batch_size,
            )  # fmt: skip
        m.g_ab.train()
        m.g_ba.train()
        for name, value in flat_metrics(results).items():
            writer.add_scalar(name, value, iteration)

    def save_samples() -> None:
        if writer is None:  # not the main process
            return
        grid = translate_samples(m, *samples)
        writer.add_image("samples", grid, iteration)
        save_grid(grid, run_dir / "samples" / f"iter_{iteration:07d}.png")

    sampler = KeyBatches(
        len(dataset),  # type: ignore[arg-type]
        cfg.batch_size,
        recipe.run.seed,
        start=iteration,
        rank=group.rank,
        world=group.world,
    )
    loader = train_loader(dataset, sampler, cfg.num_workers, pin_memory=device.type == "cuda")
    step = make_step(m, strict=cfg.cuda_graph is True)
    writer = SummaryWriter(log_dir=str(run_dir)) if group.main else None
    log = LossLog(writer, console, total, iteration)
    epoch, lr = 0, 0.0
    with log.progress, _StopRequest() as stop:
        for batch in loader:
            if iteration >= total or group.any(stop.signum is not None):
                break
            if iteration // per_epoch + 1 != epoch:
                epoch = iteration // per_epoch + 1
                lr = m.set_epoch(epoch)
            real_a = batch["a"].to(device, non_blocking=True, memory_format=speed.memory_format)
            real_b = batch["b"].to(device, non_blocking=True, memory_format=speed.memory_format)
            train_iteration(step, m, real_a, real_b, log, iteration + 1, run_dir, group)
            iteration += 1
            if iteration % cfg.log_every == 0 or iteration == total:
                log.flush(iteration, epoch, lr)
            if iteration % cfg.image_every == 0:
                save_samples()
            if evaluation.every and iteration % evaluation.every == 0:
                evaluate_now()
            if iteration % cfg.checkpoint_every == 0:
                save_checkpoint()
            log.advance(epoch)
        save_checkpoint()
    if stop.signum is not None:
        if writer:
            writer.close()
        console.print(
            f"[yellow]stopped by signal {stop.signum} at iteration {iteration}; checkpoint "
            f"saved. Resume with: cgfw run --resume {run_dir}[/yellow]"
        )
        raise SystemExit(128 + stop.signum)
    if iteration % cfg.image_every:
        save_samples()
    if writer:
        write_hparams(
            writer, resolved.to_dict(), {f"final/{k}": v for k, v in log.final.items()}, iteration
        )
        writer.close()
    return RunResult(run_dir, iteration, log.final)
