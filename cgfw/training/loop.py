"""The training loop, for any model: data, schedule, logging, samples, evaluation and
checkpoints around the model's `step`. `train` reads top to bottom; resuming is resume.py."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import torch
from rich.console import Console
from torch import Tensor
from torch.utils.data import Dataset

from cgfw.errors import CgfwError, MissingSplit, TrainingStopped
from cgfw.plugin.loader import Loaded
from cgfw.recipe import Resolved
from cgfw.recipe.view import RecipeView
from cgfw.store import checkpoint
from cgfw.store.layout import RunDir
from cgfw.training import resume as resuming
from cgfw.training.alarms import Alarms
from cgfw.training.data import KeyBatches, epoch_keys, iters_per_epoch, train_loader
from cgfw.training.distributed import Group
from cgfw.training.ema import EMA
from cgfw.training.evaluation import (
    RealImages,
    build_metric,
    default_metrics,
    evaluate,
    flat_metrics,
    one_size,
    real_images,
    with_companions,
)
from cgfw.training.graphs import GraphedStep, check_graphable, decide
from cgfw.training.keep import Best, KeepBest, weight_scores
from cgfw.training.model import Model, Speed, build_model
from cgfw.training.progress import LossLog
from cgfw.training.tensorboard import sample_grid, save_grid
from cgfw.training.tracking import Tracking

log = logging.getLogger("cgfw.train")
Step = Callable[[Tensor, Tensor], dict[str, Tensor]]


class Interrupted(SystemExit):
    """A run stopped by SIGINT / SIGTERM once its checkpoint is saved: the command line exits
    with 128 + the signal's number; the Python API says where to resume from."""

    def __init__(self, signum: int, run_dir: Path, iteration: int) -> None:
        super().__init__(128 + signum)
        self.run_dir, self.iteration = run_dir, iteration


@dataclass
class RunResult:
    run_dir: Path
    iterations: int
    final_losses: dict[str, float] = field(default_factory=dict)


def train(
    resolved: Resolved,
    loaded: Loaded,
    run_dir: Path,
    device: torch.device,
    console: Console,
    resume: Path | None = None,
    group: Group | None = None,
    allow_changes: bool = False,
    started: Callable[[], None] | None = None,
) -> RunResult:
    """Train `resolved` in `run_dir`, from the checkpoint in the folder `resume` when given;
    `started()` once the run is set to go (a resume accepted). Signals are held from here until
    the final losses are written, so a run stopped on its last step still finishes."""
    cfg = resolved.recipe.train
    t = Training.start(resolved, loaded, run_dir, device, group or Group())
    saved = None
    if resume is not None:
        saved = resuming.restore(
            t.m, resume, resolved, loaded.registry, t.total, allow_changes, console, t.ema
        )
        t.iteration = saved.iteration
    step = make_step(t.m, strict=cfg.cuda_graph is True)
    tracking = (
        Tracking.open(run_dir, resolved.to_dict(), loaded.registry, console)
        if t.group.main
        else None
    )
    losses = LossLog(tracking, console, t.total, t.iteration)
    if saved is not None:
        losses.load_state(saved.log, device)  # a window left open by the kill goes on
    alarms = Alarms(resolved.recipe.alarms, console, tracking) if t.group.main else None
    if started is not None:
        started()
    epoch, lr = 0, 0.0
    failing = tracking.closed_if_failing() if tracking else contextlib.nullcontext()
    with losses.progress, StopRequest() as stop, failing:
        start = t.iteration
        for batch in t.loader():
            if t.iteration >= t.total or t.group.any(stop.signum is not None):
                break
            if t.epoch != epoch:
                epoch = t.epoch
                lr = t.set_epoch(epoch)
            real_a, real_b = t.on_device(batch)
            train_iteration(step, t.m, real_a, real_b, losses, t.iteration + 1, run_dir, t.group)
            if t.ema is not None:
                t.ema.update()
            t.iteration += 1
            i = t.iteration
            if i % cfg.log_every == 0 or i == t.total:
                t.check_run_dir()
                losses.flush(i, epoch, lr)
                if alarms:
                    alarms.after_log(i, losses.final)
            if i % cfg.image_every == 0:
                t.save_samples(tracking)
                if alarms:
                    check_samples(t.m, t.samples, alarms, i)
            best = t.evaluate(tracking) if t.eval_every and i % t.eval_every == 0 else False
            if best or t.checkpoint_due(i):
                t.save_checkpoint(losses, tracking)
            losses.advance(epoch)
        # Unless just saved (previous.pt stays the one before) or nothing was trained (a run
        # killed after its last checkpoint, resumed to finish).
        if t.iteration > start and t.saved_at != t.iteration:
            t.save_checkpoint(losses, tracking)
        if stop.signum is not None and t.iteration < t.total:
            if tracking:
                tracking.close("stopped")
            console.print(
                f"[yellow]stopped by signal {stop.signum} at iteration {t.iteration}; "
                f"checkpoint saved. Resume with: cgfw run --resume {run_dir}[/yellow]"
            )
            raise Interrupted(stop.signum, run_dir, t.iteration)
        if t.iteration % cfg.image_every or t.iteration == start:
            t.save_samples(tracking)
        if tracking:
            tracking.summary({f"final/{k}": v for k, v in losses.final.items()}, t.iteration)
            tracking.close("finished")
        if t.group.main:
            t.run.write_final_losses(losses.final)
        if stop.signum is not None:
            console.print(f"signal {stop.signum} came on the last step: the run is complete")
    return RunResult(run_dir, t.iteration, losses.final)


@dataclass
class Training:
    """A run being trained: its model, data, fixed sample images and where it stands."""

    resolved: Resolved
    loaded: Loaded
    run: RunDir
    group: Group
    m: Model
    dataset: Dataset[Any]
    samples: tuple[Tensor, Tensor]
    per_epoch: int
    total: int
    eval_set: Dataset[Any] | None
    lr_factor: Callable[[int], float]
    ema: EMA | None = None
    keep_best: KeepBest | None = None
    iteration: int = 0
    saved_at: int = -1  # the iteration of the last checkpoint this process wrote
    new_best: Best | None = None  # an evaluation's, kept as best.pt with the next checkpoint

    @staticmethod
    def start(
        resolved: Resolved, loaded: Loaded, run_dir: Path, device: torch.device, group: Group
    ) -> Training:
        """Seeds, data, the model built and checked, before any iteration."""
        recipe, cfg = resolved.recipe, resolved.recipe.train
        if cfg.batch_size % group.world:
            raise CgfwError(
                f"train.batch_size {cfg.batch_size} must be divisible by the {group.world} "
                "processes"
            )
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed input sizes: fastest conv kernels
        torch.manual_seed(recipe.run.seed)  # the same initial weights in every process
        dataset = build_dataset(resolved, "train")
        samples = [x.to(device) for x in fixed_samples(resolved, dataset, cfg.samples)]
        speed = Speed.resolve(cfg, device)
        m = build_for_run(resolved, device, speed, group, strict=cfg.cuda_graph is True)
        if m.needs_pairs and not getattr(dataset, "paired", False):
            raise CgfwError(
                f"{resolved.source}: {m.needs_pairs} needs aligned training pairs, and dataset "
                f"'{resolved.components['data'].name}' gives unpaired ones; use a paired "
                "dataset (emoji: data.paired = true)"
            )
        torch.manual_seed(recipe.run.seed + group.rank)  # each process its own random draws
        per_epoch = iters_per_epoch(len(dataset), cfg.batch_size)  # type: ignore[arg-type]
        total = cfg.max_iters or cfg.epochs * per_epoch
        lr_factor = resolved.build("schedule")
        if cfg.max_iters is None:
            warn_if_schedule_unused(lr_factor, cfg.epochs)
        check_shapes(m, samples[0][:1], resolved)
        m.setup(*(x[: cfg.batch_size] for x in samples))
        evaluation = recipe.eval
        eval_set = build_dataset(resolved, evaluation.split) if evaluation.every else None
        if evaluation.every:  # a misspelled metric or option fails now, not hours in
            check_eval_metrics(resolved, loaded)
        keep_best = keep_best_for(resolved, loaded, m, eval_set, RunDir(run_dir))
        ema = EMA(m, cfg.ema) if cfg.ema else None
        return Training(
            resolved, loaded, RunDir(run_dir), group, m, dataset, (samples[0], samples[1]),
            per_epoch, total, eval_set, lr_factor, ema, keep_best,
        )  # fmt: skip

    @property
    def epoch(self) -> int:
        return self.iteration // self.per_epoch + 1

    @property
    def eval_every(self) -> int | None:
        return self.resolved.recipe.eval.every

    def set_epoch(self, epoch: int) -> float:
        """Apply the schedule's learning rate for `epoch` (1-based) to every optimizer."""
        lr = self.resolved.recipe.optimizer.lr * self.lr_factor(epoch)
        self.m.set_lr(lr)
        return lr

    def loader(self) -> Any:
        cfg, seed = self.resolved.recipe.train, self.resolved.recipe.run.seed
        n = len(self.dataset)  # type: ignore[arg-type]
        sampler = KeyBatches(
            n, cfg.batch_size, seed, self.iteration, self.group.rank, self.group.world
        )
        cuda = self.m.rt.device.type == "cuda"
        return train_loader(self.dataset, sampler, cfg.num_workers, pin_memory=cuda)

    def on_device(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        device, fmt = self.m.rt.device, self.m.rt.speed.memory_format
        return tuple(  # type: ignore[return-value]
            batch[side].to(device, non_blocking=True, memory_format=fmt) for side in ("a", "b")
        )

    def check_run_dir(self) -> None:
        """Every process stops together when the main one finds its run directory gone."""
        gone = self.group.main and not self.run.recipe.is_file()
        if self.group.any(gone):
            self.run.check_present()
            raise CgfwError(f"the main process found {self.run.path} gone; stopped")

    def checkpoint_due(self, i: int) -> bool:
        """Every train.checkpoint_every iterations, and every train.keep_every: a kept
        checkpoint is always a freshly written latest.pt, linked, so keep_every need not be a
        multiple of checkpoint_every (and a kept one is never older than its name says)."""
        cfg = self.resolved.recipe.train
        return i % cfg.checkpoint_every == 0 or bool(cfg.keep_every and i % cfg.keep_every == 0)

    def save_checkpoint(self, losses: LossLog, tracking: Tracking | None) -> None:
        if not all_finite(self.m):  # on every process: same weights, they stop together
            raise TrainingStopped(
                f"non-finite weights at iteration {self.iteration}; not checkpointed, so the "
                f"last good checkpoint in {self.run.checkpoints} stays"
            )
        self.saved_at = self.iteration
        if not self.group.main:
            return
        if tracking is not None:
            tracking.flush()
        latest = checkpoint.save(self.run.checkpoints, resuming.state(self, losses.state()))
        keep_every, i = self.resolved.recipe.train.keep_every, self.iteration
        if keep_every and i % keep_every == 0:
            checkpoint.keep(latest, self.run.kept(i))
        if self.new_best is not None and self.keep_best is not None:
            # best.pt before best.json: a crash between them leaves a record no better than
            # the checkpoint it names, never one naming a checkpoint not yet there.
            checkpoint.keep(latest, self.run.best_checkpoint)
            self.run.write_best_record(self.new_best.to_dict())
            self.keep_best.best, self.new_best = self.new_best, None

    def save_samples(self, tracking: Tracking | None) -> None:
        if tracking is None:  # not the main process
            return
        with self.ema.applied() if self.ema else contextlib.nullcontext():
            grid = translate_samples(self.m, *self.samples)
        path = self.run.sample(self.iteration)
        save_grid(grid, path)
        tracking.image("samples", grid, path, self.iteration)

    def evaluate(self, tracking: Tracking | None) -> bool:
        """Held-out metrics as TensorBoard curves (eval/a2b/psnr, ...); with train.ema those of
        the averaged generators, and the trained weights' as eval_raw/... True, on every
        process, when they beat train.keep_best's best so far: this iteration is checkpointed
        and kept as best.pt."""
        scores = self.scores(tracking)
        if self.keep_best is None:
            return False
        if self.group.main:
            self.new_best = self.keep_best.offer(scores, self.iteration)
        return self.group.any(self.new_best is not None)

    def scores(self, tracking: Tracking | None) -> dict[str, float]:
        """The main process evaluates; the others get no scores."""
        if tracking is None or self.eval_set is None:
            return {}
        # Once per evaluation, for the averaged and the trained weights alike: it reads each
        # held-out file's size and time, so that a changed file is not scored as its old self.
        reals = real_images(self.resolved, self.eval_set, self.resolved.recipe.eval.split)
        if self.ema is not None:
            with self.ema.applied():
                scores = self._evaluate(tracking, "eval", reals)
            return scores | self._evaluate(tracking, "eval_raw", reals)
        return self._evaluate(tracking, "eval", reals)

    def _evaluate(
        self, tracking: Tracking, prefix: str, reals: dict[str, RealImages]
    ) -> dict[str, float]:
        m, ev = self.m, self.resolved.recipe.eval
        back = m.translator("b2a") if "b2a" in m.directions else None
        with m.rt.uncompiled():
            results = evaluate(
                m.translator("a2b"), back, self.eval_set, ev.split,
                eval_metrics(self.resolved, self.loaded),
                self.loaded.registry, m.rt.device, ev.batch_size, ev.options, reals,
            )  # fmt: skip
        for name in m.directions:
            m.translator(name).train()
        scores = {prefix + k.removeprefix("eval"): v for k, v in flat_metrics(results).items()}
        tracking.scalars(scores, self.iteration)
        return scores


def keep_best_for(
    resolved: Resolved, loaded: Loaded, m: Model, eval_set: Dataset[Any] | None, run: RunDir
) -> KeepBest | None:
    """train.keep_best, checked against the scores this run's [eval] computes."""
    metric = resolved.recipe.train.keep_best
    if metric is None:
        return None
    if eval_set is None:
        raise CgfwError(
            f"{resolved.source}: train.keep_best = {metric!r} keeps the checkpoint that scores "
            "best at the held-out evaluations, and eval.every is not set: set it (e.g. "
            "eval.every = 1000)"
        )
    known = weight_scores(
        loaded.registry, eval_metrics(resolved, loaded), m.directions,
        bool(getattr(eval_set, "paired", False)), bool(resolved.recipe.train.ema),
    )  # fmt: skip
    return KeepBest.start(metric, known, run, resolved.source, resolved.recipe.eval.options)


def check_eval_metrics(resolved: Resolved, loaded: Loaded) -> None:
    """[eval]'s metrics and their options, built once: each mistake is one error naming it."""
    names = eval_metrics(resolved, loaded)
    for name in names:
        build_metric(loaded.registry, name)
    scored = with_companions(names, loaded.registry)
    for name, options in resolved.recipe.eval.options.items():
        if name not in scored:
            raise CgfwError(
                f"{resolved.source}: eval.options.{name}: '{name}' is not among the metrics "
                f"[eval] computes ({', '.join(scored)}); add it to eval.metrics or remove its "
                "options"
            )
        build_metric(loaded.registry, name, options, f"{resolved.source}: eval.options.{name}")


def eval_metrics(resolved: Resolved, loaded: Loaded) -> list[str]:
    named = resolved.recipe.eval.metrics
    return named if named is not None else default_metrics(loaded.registry)


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


def build_dataset(resolved: Resolved, split: str) -> Dataset[Any]:
    component = resolved.components["data"]
    try:
        dataset: Dataset[Any] = component.factory(resolved.options["data"], split)
    except CgfwError as exc:  # same class (MissingSplit stays one), the recipe's name added
        raise type(exc)(f"{resolved.source}: {exc}") from None
    except Exception as exc:
        raise CgfwError(
            f"dataset '{component.name}' (plugin '{component.plugin}') failed to load the "
            f"{split} split: {type(exc).__name__}: {exc}"
        ) from exc
    if len(dataset) == 0:  # type: ignore[arg-type]
        raise MissingSplit(f"dataset '{component.name}': the {split} split is empty")
    return dataset


def fixed_samples(resolved: Resolved, train_set: Dataset[Any], n: int) -> tuple[Tensor, Tensor]:
    """The same images every time, from the test split when there is one. Only a missing test
    split falls back to training images; one that fails to load is an error like any other."""
    try:
        test_set = build_dataset(resolved, "test")
    except MissingSplit as exc:
        log.warning("%s; the sample grids show training images instead", exc)
        keys = epoch_keys(len(train_set), 12345, 0)[:n]  # type: ignore[arg-type]
        items = [train_set[k] for k in keys]
    else:
        items = [test_set[i] for i in range(min(n, len(test_set)))]  # type: ignore[arg-type]
    return one_size(items)


@torch.no_grad()
def check_samples(m: Model, samples: tuple[Tensor, Tensor], alarms: Alarms, iteration: int) -> None:
    """The alarms' look at the fixed sample images: each direction's translations against
    their inputs (the trained weights, in eval mode, as the grid shows them)."""
    sources = dict(zip(("a2b", "b2a"), samples, strict=True))
    with m.rt.uncompiled():
        for direction in m.directions:
            net = m.translator(direction)
            net.eval()
            fake = net(sources[direction])
            net.train()
            alarms.after_samples(iteration, direction, sources[direction], fake)


@torch.no_grad()
def translate_samples(m: Model, real_a: Tensor, real_b: Tensor) -> Tensor:
    nets = [m.translator(d) for d in m.directions]
    for net in nets:
        net.eval()
    with m.rt.uncompiled():
        rows = m.sample_rows(real_a, real_b)
    for net in nets:
        net.train()
    return sample_grid(rows)


def build_for_run(
    resolved: Resolved,
    device: torch.device,
    speed: Speed,
    group: Group | None = None,
    strict: bool = False,
) -> Model:
    """The recipe's model built for the speed it will train at: whether its step is captured as
    a CUDA graph is settled first (graphs.decide), so optimizers are capturable and networks
    compiled only for a run that captures. `strict` (train.cuda_graph = true): a run that cannot
    be captured is an error; "auto" quietly means eager steps."""
    group = group or Group()
    speed = decide(speed, device, group.world, resolved, strict)
    cuda = device.type == "cuda"
    rng = torch.get_rng_state(), torch.cuda.get_rng_state(device) if cuda else None
    m = build_model(resolved, device, speed, group)
    if speed.cuda_graph and m.graph_obstacle():  # a model that can only tell once built
        if strict:
            check_graphable(speed, device, group.world, m)
        # Again for eager steps, from the same random state: the same initial weights.
        torch.set_rng_state(rng[0])
        if rng[1] is not None:
            torch.cuda.set_rng_state(rng[1], device)
        m = build_model(resolved, device, dataclasses.replace(speed, cuda_graph=False), group)
    return m


def make_step(m: Model, strict: bool = True) -> Step:
    """The model's step, replayed as one CUDA graph when the run's speed settings say so;
    `strict` False (train.cuda_graph = "auto") falls back to eager steps if capture fails."""
    return GraphedStep(m, strict) if m.rt.speed.cuda_graph else m.step


def train_iteration(
    step: Step,
    m: Model,
    real_a: Tensor,
    real_b: Tensor,
    log: LossLog,
    iteration: int,
    run_dir: Path,
    group: Group | None = None,
) -> None:
    """What training does with each batch on the device: the step, the non-finite check (one
    host sync) and the loss bookkeeping. `cgfw bench` times exactly this. The engine begins and
    ends the iteration around the step (the fp16 loss scale is updated once all optimizers
    stepped), so a model never touches the scaler."""
    precision = m.rt.precision
    precision.begin_iteration()
    terms = step(real_a, real_b)
    precision.end_iteration()
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
        f"{RunDir(run_dir).checkpoints} (cgfw run --resume {run_dir}); try a lower "
        'optimizer.lr or train.precision = "fp32"'
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


def all_finite(m: Model) -> bool:
    params = [p.detach() for net in m.networks.values() for p in net.parameters()]
    return bool(torch.stack(torch._foreach_norm(params)).isfinite().all())


def check_shapes(m: Model, image: Tensor, resolved: Resolved) -> None:
    """A plugin generator that does not keep the image's shape fails here, named, not deep in
    a loss (a model checks its other networks in its own setup)."""
    with torch.no_grad(), m.rt.autocast(), m.rt.uncompiled():
        for direction, (_name, path) in m.directions.items():
            check_output(m.translator(direction), image, path, resolved, tuple(image.shape))


def check_output(
    net: torch.nn.Module,
    image: Tensor,
    path: str,
    resolved: Resolved | RecipeView,
    want: tuple[int, ...] | None,
) -> Tensor:
    """`net(image)` in eval mode; the error names the section and plugin if it raises or, with
    `want`, returns another shape (None: (N, 1, h, w) scores)."""
    component = resolved.components[path]
    label = f"{path} '{component.name}' (plugin '{component.plugin}')"
    was_training = net.training
    net.eval()
    try:
        out = net(image)
    except CgfwError:
        raise
    except Exception as exc:
        raise CgfwError(
            f"{label} failed on a {tuple(image.shape)} image: {type(exc).__name__}: {exc}"
        ) from exc
    finally:
        net.train(was_training)
    ok = tuple(out.shape) == want if want else (out.dim() == 4 and out.shape[1] == 1)
    if not ok:
        shape = "the input's shape " + str(want) if want else "(N, 1, h, w) scores"
        raise CgfwError(
            f"{label} returned shape {tuple(out.shape)} for a {tuple(image.shape)} image; it "
            f"must return {shape}. If the image size is the cause, set data.crop_size to one "
            "it supports (the paper's ResNet: a multiple of 4)"
        )
    return out


class StopRequest:
    """SIGINT / SIGTERM, and SIGUSR1 / SIGUSR2, the signals schedulers send before a time limit
    or a preemption (Slurm's --signal, submitit): finish the step in flight, checkpoint, exit.
    A second Ctrl-C stops at once; a scheduler's repeated signals just wait for the checkpoint."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> StopRequest:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2):
            with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.signum is not None:
            if signum == signal.SIGINT:  # a second Ctrl-C stops at once
                raise KeyboardInterrupt
            return
        self.signum = signum

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)
