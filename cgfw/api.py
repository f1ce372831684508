"""The Python API, for notebooks and scripts: train a recipe, load a run, translate images and
tensors with its generators, build one registered component, list what is registered.

It goes through what the command line goes through (recipe loading, `cli.launch.train_run`,
`cli.translate.load_generator`), so a run trained here is the run `cgfw run` would make, and
every `cgfw` command works on it. A user's mistake raises `CgfwError` naming what to fix; the
command line's `sys.exit` is never called."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

import torch
from PIL import Image
from rich.console import Console
from torch import Tensor, nn

from cgfw.errors import CgfwError
from cgfw.images import to_rgb, to_tensor
from cgfw.plugin.loader import load_plugins
from cgfw.plugin.registry import KINDS, check_kind
from cgfw.recipe import load_data, read_toml, set_values, validate_stages
from cgfw.session.hub import local
from cgfw.session.load import DIRECTIONS, LATEST, Generator, chosen, load_generator, open_folder
from cgfw.session.start import train_run
from cgfw.store.checkpoint import latest_in
from cgfw.store.folder import ModelFolder
from cgfw.store.layout import RunDir
from cgfw.tools.translate import (
    MIN_SIDE,
    Sizing,
    default_sizing,
    resize_to,
    to_image,
    translate_batch,
)
from cgfw.training.loop import Interrupted, resolve_device


def train(
    recipe: str | Path,
    overrides: Mapping[str, Any] | None = None,
    *,
    device: str | None = None,
    progress: bool = True,
) -> Run:
    """Train `recipe` (a bundled name such as "quickstart", or a TOML file) and return the
    finished run, as `cgfw run RECIPE --set KEY=VALUE ...` would.

    `overrides` sets recipe keys by dotted name to Python values, e.g.
    ``{"train.max_iters": 500, "generator.ngf": 8, "run.output_dir": "runs"}``; a key or value
    the recipe does not accept raises CgfwError before anything is built. `device` ("auto",
    "cpu", "cuda", "cuda:N") replaces train.device; `progress=False` trains without the
    progress bar and messages. Interrupting the kernel lets the step in flight finish, saves a
    checkpoint (`cgfw run --resume RUN_DIR` goes on from it) and raises KeyboardInterrupt.
    """
    loaded = load_plugins()
    data, source = load_data(str(recipe), loaded.registry)
    stages = [(source, data)]
    for key, value in (overrides or {}).items():  # one by one: an error names its override
        data = set_values(data, {key: value}, loaded.registry)
        stages.append((f"override {key!r}", data))
    resolved = validate_stages(stages, loaded.registry, source)
    console = Console(stderr=True) if progress else Console(stderr=True, quiet=True)
    try:
        result = train_run(resolved, loaded, console, device)
    except Interrupted as stop:  # the kernel interrupted (SIGINT): no SystemExit in a notebook
        raise KeyboardInterrupt(
            f"training stopped at iteration {stop.iteration}, checkpoint saved; "
            f"`cgfw run --resume {stop.run_dir}` goes on from it"
        ) from None
    return load(result.run_dir, device=device or resolved.recipe.train.device)


def load(run_dir: str | Path, *, device: str = "auto", checkpoint: str = LATEST) -> Run:
    """A run directory made by `cgfw.train` or `cgfw run`, finished or still training (it needs
    a checkpoint); its generators will run on `device` ("auto": CUDA when present), with the
    weights of its `checkpoint`: "latest" (previous.pt when latest.pt is damaged), "best" (by
    train.keep_best) or "iter_N" (kept by train.keep_every), as `cgfw translate --checkpoint`.

    A model folder (`cgfw save-pretrained`) loads the same way, without any checkpoint, and so
    does one on the Hugging Face Hub: "hf://user/repo" or "hf://user/repo@revision", downloaded
    into huggingface_hub's cache (`pip install 'cgfw[hub]'`)."""
    path = local(run_dir)
    folder = ModelFolder(path)
    if folder.is_folder():
        open_folder(folder, checkpoint)  # a bad folder fails here, not at the first translation
        return Run(path, resolve_device(device, "device"), checkpoint)
    run = RunDir(path)
    if not run.is_run():
        raise CgfwError(
            f"{path}: not a run directory (no recipe.toml); give a directory made by "
            "cgfw.train or `cgfw run`"
        )
    try:
        latest_in(run.checkpoints)
    except CgfwError:
        raise CgfwError(
            f"{path}: no checkpoint yet in {run.checkpoints}; let the run reach "
            "train.checkpoint_every (or finish) first"
        ) from None
    chosen(run, checkpoint)  # one that is not there fails here, not at the first translation
    return Run(path, resolve_device(device, "device"), checkpoint)


@dataclass
class Run:
    """A trained (or training) run, or a model folder: its directory, recipe, losses and
    metrics, and its generators, each loaded once, on first use, onto `device`."""

    path: Path
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    checkpoint: str = LATEST  # which of its checkpoints: latest, best or iter_N
    # (direction, raw) -> the generator loaded for it; later checkpoints are not re-read.
    _generators: dict[tuple[str, bool], Generator] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @property
    def recipe(self) -> dict[str, Any]:
        """The resolved recipe the run trains (its recipe.toml): every default filled in."""
        return read_toml(RunDir(self.path).recipe)

    @property
    def final_losses(self) -> dict[str, float] | None:
        """The last log window's loss terms (final_losses.json); None while the run trains."""
        return _json_or_none(RunDir(self.path).final_losses)

    @property
    def metrics(self) -> dict[str, Any] | None:
        """The scores `cgfw eval RUN_DIR` wrote (metrics.json); None until it has run."""
        return _json_or_none(RunDir(self.path).metrics)

    def generator(self, direction: str = "a2b", raw: bool = False) -> nn.Module:
        """The `direction` ("a2b": g_ab, "b2a": g_ba) generator, in eval mode on the run's
        device: with train.ema its moving average, as `cgfw translate` uses, unless `raw`
        (then the trained weights). A one-sided model (CUT) has no "b2a" and says so."""
        return self._loaded(direction, raw).net

    @overload
    def translate(
        self,
        image: Image.Image,
        direction: str = "a2b",
        *,
        raw: bool = False,
        size: int | None = None,
        full_resolution: bool = False,
        tile: int | None = None,
    ) -> Image.Image: ...

    @overload
    def translate(
        self, image: Tensor, direction: str = "a2b", *, raw: bool = False, tile: int | None = None
    ) -> Tensor: ...

    def translate(
        self,
        image: Image.Image | Tensor,
        direction: str = "a2b",
        *,
        raw: bool = False,
        size: int | None = None,
        full_resolution: bool = False,
        tile: int | None = None,
    ) -> Image.Image | Tensor:
        """Translate `image` with the `direction` generator (see `generator`).

        A PIL image is handled as `cgfw translate` handles a file: made RGB, its shorter side
        resized to `size` (default: the scale of the run's test images, as `cgfw translate`;
        `full_resolution` keeps its size), translated; an RGB image of that size comes back.
        A tensor, (C, H, W) or (N, C, H, W) in [-1, 1], is translated at its own size, without
        gradients; a tensor of the same shape in [-1, 1] comes back, on the run's device.
        `tile`: an image larger than that many px is translated in tiles that give what the
        whole image gives, in memory that grows with the tile (`cgfw translate --tile`).
        """
        generator = self._loaded(direction, raw)
        if isinstance(image, Tensor):
            if size is not None or full_resolution:
                raise CgfwError(
                    "translate: size and full_resolution apply to PIL images; a tensor is "
                    "translated at its own size"
                )
            return _translate_tensor(generator.net, image, self.device, generator.channels, tile)
        if isinstance(image, Image.Image):
            if generator.channels != 3:
                raise CgfwError(
                    f"translate: this run's data have {generator.channels} channel(s) "
                    "(data.channels); give a tensor of shape "
                    f"({generator.channels}, H, W), or use `cgfw translate` on the files"
                )
            if size is not None and full_resolution:
                raise CgfwError("translate: size and full_resolution exclude each other; give one")
            if full_resolution or size is not None:
                sizing = Sizing(shorter=size)
            else:
                data = generator.resolved.options.get("data")
                sizing = default_sizing(data, generator.crop_size)
            return _translate_image(generator.net, image, sizing, self.device, tile)
        raise CgfwError(
            f"translate: give a PIL image or a torch.Tensor, not a {type(image).__name__}"
        )

    def _loaded(self, direction: str, raw: bool) -> Generator:
        if direction not in DIRECTIONS:
            raise CgfwError(f"direction {direction!r}: use one of {', '.join(DIRECTIONS)}")
        key = (direction, raw)
        if key not in self._generators:
            generator = load_generator(self.path, direction, raw, self.checkpoint)
            generator.net.to(self.device)
            self._generators[key] = generator
        return self._generators[key]


def _json_or_none(path: Path) -> Any:
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def _translate_tensor(
    net: nn.Module, image: Tensor, device: torch.device, channels: int = 3, tile: int | None = None
) -> Tensor:
    if not image.is_floating_point():
        raise CgfwError(
            f"translate: a {image.dtype} tensor; give floats in [-1, 1] (from 0-255 pixels: "
            "x.float() / 127.5 - 1)"
        )
    if image.dim() not in (3, 4) or image.shape[-3] != channels:
        raise CgfwError(
            f"translate: a tensor of shape {tuple(image.shape)}; this run's images have "
            f"{channels} channel(s) (data.channels): give ({channels}, H, W) or a batch as "
            f"(N, {channels}, H, W)"
        )
    if min(image.shape[-2:]) < MIN_SIDE:
        raise CgfwError(f"translate: {tuple(image.shape)} is under {MIN_SIDE} px on a side")
    single = image.dim() == 3
    batch = image.to(device, torch.float32)
    result = translate_batch(net, batch[None] if single else batch, tile)
    return result[0] if single else result


def _translate_image(
    net: nn.Module,
    image: Image.Image,
    sizing: Sizing,
    device: torch.device,
    tile: int | None = None,
) -> Image.Image:
    rgb = to_rgb(image)
    rgb = resize_to(rgb, sizing.of(*rgb.size))
    if min(rgb.size) < MIN_SIDE:
        raise CgfwError(
            f"translate: a {rgb.width}x{rgb.height} image is under {MIN_SIDE} px; give "
            f"size={MIN_SIDE} or more"
        )
    real = to_tensor(rgb)[None].to(device)
    return to_image(translate_batch(net, real, tile)[0])


def create(kind: str, name: str, /, *args: Any, **options: Any) -> Any:
    """Build one registered component by kind and name, its options checked by the
    component's own options model as a recipe section's are:
    ``cgfw.create("generator", "resnet", n_blocks=6)`` is the torch module a recipe's
    ``[generator] name = "resnet"``, ``n_blocks = 6`` gives, with PyTorch's initial weights (a
    run applies [init] to them). Positional `args` go to the factory after the options, e.g.
    a dataset's split: ``cgfw.create("dataset", "emoji", "test", crop_size=32)``.

    `cgfw.components()` lists the names; `cgfw components KIND` the options and defaults.
    """
    if kind == "model":
        raise CgfwError(
            "a model is built from a whole recipe, not alone; train one with "
            "cgfw.train(recipe, overrides)"
        )
    component = load_plugins().registry.get(kind, name)
    try:
        return component.build(options, *args, where=kind)
    except CgfwError:
        raise
    except Exception as exc:  # a plugin's bug, or arguments its factory does not take
        raise CgfwError(
            f"{kind} '{name}' (plugin '{component.plugin}') failed to build: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def components(kind: str | None = None) -> dict[str, list[str]]:
    """The registered component names by kind ("generator", "discriminator", ..., "metric"),
    sorted; with `kind`, that kind alone. `cgfw components KIND` shows their options."""
    if kind is not None:
        check_kind(kind)
    registry = load_plugins().registry
    return {k: registry.names(k) for k in ([kind] if kind is not None else list(KINDS))}
