"""Scoring generators on held-out images: every metric in both directions, the do-nothing
baseline and the cycle error. Used by `cgfw eval` and, at intervals, by training."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from cgfw.errors import CgfwError
from cgfw.plugin.registry import Registry
from cgfw.recipe import Resolved

# Training items are fetched by (index, seed); a fixed seed keeps an evaluation repeatable.
TRAIN_SEED = 0


class Metric(Protocol):
    """What a metric factory returns (see cgfw.plugin.hookspecs.register_metrics)."""

    name: str
    paired: bool
    higher_is_better: bool

    def update(self, fake: Tensor, real: Tensor) -> None: ...

    def compute(self) -> float: ...

    def reset(self) -> None: ...


@dataclass(frozen=True)
class RealImages:
    """The real images a row of an evaluation scores against, told to a metric that has a
    ``real_images(reals)`` method before its first batch, so it may reuse what it computed from
    them before (the Inception features of a dataset's test images). `name` names the set in a
    file name (dataset, split, side and a digest of the dataset's options); `digest` hashes its
    file list, each file with its size and modification time; `count` is how many images
    update() will get as reals, in the dataset's order."""

    name: str
    digest: str
    count: int


def real_images(resolved: Resolved, dataset: Any, split: str) -> dict[str, RealImages]:
    """Each side's real images, named for metrics that keep what they computed from them: the
    data component, its options, the split and the side name the set; its items (a file with
    its size and modification time) and their count tell a saved copy from a stale one. A
    dataset whose items are not listed (no `a` and `b` lists) gets none."""
    component = resolved.components["data"]
    options = resolved.options["data"].model_dump(mode="json")
    found: dict[str, RealImages] = {}
    for side in ("a", "b"):
        items = getattr(dataset, side, None)
        if not isinstance(items, list) or not items:
            continue
        setting = json.dumps([component.name, options, split, side], sort_keys=True, default=str)
        listing = hashlib.sha256()
        for item in items:
            listing.update(_identity(item).encode() + b"\0")
        name = f"{component.name}-{split}{side.upper()}-{_digest(setting)[:12]}"
        found[side] = RealImages(name, listing.hexdigest(), len(items))
    return found


def _identity(item: Any) -> str:
    if isinstance(item, Path):
        try:
            stat = item.stat()
        except OSError:
            return f"{item.resolve()}|missing"
        return f"{item.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    return repr(item)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def build_metric(
    registry: Registry, name: str, options: Mapping[str, Any] | None = None, where: str = ""
) -> Metric:
    """The metric `name` with `options` (cgfw eval --option NAME.KEY=VALUE), or an error naming
    the closest registered one, or the option (`where` says where it was given)."""
    component = _component(registry, name)
    where = where or (f"--option {name}" if options else f"metric {name}")
    metric: Metric = component.build(options or {}, where=where)
    return metric


def _component(registry: Registry, name: str) -> Any:
    try:
        return registry.get("metric", name)
    except CgfwError as exc:
        raise CgfwError(f"--metrics: {exc}") from None


def metric_options(
    names: list[str], given: Mapping[str, Mapping[str, Any]], registry: Registry
) -> dict[str, dict[str, Any]]:
    """Each metric's options: its own, else those of a metric it is reported beside (KID
    takes FID's: the two are read together, so they must see the same features), else none."""
    chosen: dict[str, dict[str, Any]] = {}
    for name in names:
        if name in given:
            chosen[name] = dict(given[name])
            continue
        chosen[name] = {}
        for other in names:
            if other in given and name in getattr(
                build_metric(registry, other, given[other]), "reported_with", ()
            ):
                chosen[name] = dict(given[other])
                break
    return chosen


def resolved_options(registry: Registry, name: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """Every option of the metric, defaults filled in, as metrics.json records them."""
    component = _component(registry, name)
    values: dict[str, Any] = component.parse_options(options, f"--option {name}").model_dump(
        mode="json"
    )
    return values


def default_metrics(registry: Registry) -> list[str]:
    """The metrics computed when none are named: those whose plugin registers them with a
    factory marked `default = True`."""
    return registry.defaults("metric")


def with_companions(names: list[str], registry: Registry) -> list[str]:
    """`names` plus the metrics any of them must be reported beside (FID -> KID), in order."""
    result: list[str] = []
    for name in names:
        for n in (name, *getattr(build_metric(registry, name), "reported_with", ())):
            if n not in result:
                result.append(n)
    return result


def usable_metrics(names: list[str], registry: Registry, paired: bool) -> list[str]:
    """Paired metrics (PSNR, ...) need aligned pairs; distribution metrics (KID, ...) do not."""
    return [n for n in names if paired or not build_metric(registry, n).paired]


def batches(dataset: Any, split: str, batch_size: int) -> Any:
    """(real_a, real_b) batches over the whole split, in order. A batch ends early where the
    images change size: held-out images that keep their aspect ratio (the authors'
    scale_width and none modes) differ from one another."""
    run: list[dict[str, Tensor]] = []
    for i in range(len(dataset)):
        item = dataset[(i, TRAIN_SEED) if split == "train" else i]
        if run and _shapes(item) != _shapes(run[0]):
            yield _stacked(run)
            run = []
        run.append(item)
        if len(run) == batch_size:
            yield _stacked(run)
            run = []
    if run:
        yield _stacked(run)


def _shapes(item: dict[str, Tensor]) -> tuple[torch.Size, torch.Size]:
    return item["a"].shape, item["b"].shape


def _stacked(items: list[dict[str, Tensor]]) -> tuple[Tensor, Tensor]:
    return torch.stack([i["a"] for i in items]), torch.stack([i["b"] for i in items])


def one_size(items: list[dict[str, Tensor]]) -> tuple[Tensor, Tensor]:
    """The items' A and B images as two batches of one size, for the sample grids: each image
    cropped about its centre to the least height and width among them all, so that images
    kept at their own aspect ratio (scale_width, none) still make one grid. Images of one
    size are stacked as they are."""
    images = [i[side] for i in items for side in ("a", "b")]
    height = min(int(x.shape[-2]) for x in images)
    width = min(int(x.shape[-1]) for x in images)

    def centred(x: Tensor) -> Tensor:
        top, left = (int(x.shape[-2]) - height) // 2, (int(x.shape[-1]) - width) // 2
        return x[..., top : top + height, left : left + width]

    return (
        torch.stack([centred(i["a"]) for i in items]),
        torch.stack([centred(i["b"]) for i in items]),
    )


class _MeanAbsError:
    """The cycle error: mean absolute error on the [0, 1] scale, outputs clamped to the data
    range (as the l1 metric of cgfw's paper plugin computes it)."""

    def __init__(self) -> None:
        self.total, self.count = 0.0, 0

    def update(self, fake: Tensor, real: Tensor) -> None:
        self.total += float((fake.float().clamp(-1, 1) - real.float()).abs().sum()) / 2
        self.count += real.numel()

    def compute(self) -> float:
        return self.total / self.count if self.count else math.nan


@torch.no_grad()
def evaluate(
    g_ab: nn.Module,
    g_ba: nn.Module | None,
    dataset: Any,
    split: str,
    names: list[str],
    registry: Registry,
    device: torch.device,
    batch_size: int = 8,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    reals: Mapping[str, RealImages] | None = None,
) -> dict[str, Any]:
    """Every metric in each direction the model learns (a one-sided model: g_ba None), the
    do-nothing baseline and, with both directions, the cycle error; metrics that need aligned
    pairs are left out on a dataset without them. `options`: metric name -> its options;
    `reals`: side ("a", "b") -> what its real images are, for metrics that keep their work."""
    paired = bool(getattr(dataset, "paired", False))
    usable = usable_metrics(with_companions(names, registry), registry, paired)
    chosen = metric_options(usable, options or {}, registry)
    rows = ("a2b", "b2a", "baseline") if g_ba is not None else ("a2b", "baseline")
    scores: dict[str, dict[str, Metric]] = {
        row: {n: build_metric(registry, n, chosen[n]) for n in usable} for row in rows
    }
    for row, side in (("a2b", "b"), ("b2a", "a"), ("baseline", "b")):
        real_set = (reals or {}).get(side)
        for metric in scores.get(row, {}).values():
            if real_set is not None and hasattr(metric, "real_images"):
                metric.real_images(real_set)
    cycle = {side: _MeanAbsError() for side in ("a", "b")}
    for net in (g_ab, g_ba):
        if net is not None:
            net.eval()
    # An unpaired split pairs A[i] with B[i mod |B|], repeating the smaller domain; every
    # image counts once for the distribution metrics and the cycle error.
    total = len(dataset)
    n_a, n_b = (len(getattr(dataset, side, range(total))) for side in ("a", "b"))
    samples = 0
    for real_a, real_b in batches(dataset, split, batch_size):
        index = torch.arange(samples, samples + len(real_a))
        once_a, once_b = (index < n_a).to(device), (index < n_b).to(device)
        real_a, real_b = real_a.to(device), real_b.to(device)
        fake_b = g_ab(real_a)
        outputs = [("a2b", fake_b, real_b, once_a, once_b)]
        if g_ba is not None:
            fake_a = g_ba(real_b)
            cycle["a"].update(g_ba(fake_b)[once_a], real_a[once_a])
            cycle["b"].update(g_ab(fake_a)[once_b], real_b[once_b])
            outputs.append(("b2a", fake_a, real_a, once_b, once_a))
        outputs.append(("baseline", real_a, real_b, once_a, once_b))
        for row, fake, real, fake_once, real_once in outputs:
            for metric in scores[row].values():
                if metric.paired:
                    metric.update(fake, real)
                else:
                    metric.update(fake[fake_once], real[real_once])
        samples += real_a.shape[0]
    results: dict[str, Any] = {"split": split, "samples": samples, "paired": paired}
    settings = {n: resolved_options(registry, n, chosen[n]) for n in usable}
    results["options"] = {n: values for n, values in settings.items() if values}
    if (n_a, n_b) != (samples, samples):
        results |= {"samples_a": n_a, "samples_b": n_b}
    for row in rows:
        results[row] = {n: m.compute() for n, m in scores[row].items()}
    if g_ba is not None:
        results["cycle"] = {side: {"l1": m.compute()} for side, m in cycle.items()}
    return results


def flat_metrics(results: dict[str, Any]) -> dict[str, float]:
    """{"a2b": {"psnr": x}, "cycle": {"a": {"l1": y}}} -> {"eval/a2b/psnr": x,
    "eval/cycle/a/l1": y}, finite values only (HParams cannot plot inf)."""
    flat: dict[str, float] = {}

    def walk(node: dict[str, Any], prefix: str) -> None:
        for key, value in node.items():
            if isinstance(value, dict):
                walk(value, f"{prefix}/{key}")
            elif isinstance(value, float) and math.isfinite(value):
                flat[f"{prefix}/{key}"] = value

    walk({k: results[k] for k in ("a2b", "b2a", "baseline", "cycle") if k in results}, "eval")
    return flat
