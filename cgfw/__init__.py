"""cgfw: a plugin-based experimentation framework for CycleGAN.

In a notebook: `cgfw.train` a recipe, `cgfw.load` a run and `Run.translate` images with it,
`cgfw.create` one registered component, and `cgfw.components` lists them (cgfw/api.py).

For plugin authors this module is the whole surface (with `cgfw.errors`): `hookimpl` marks a
hook, `Register` types the callable each hook gets, a model subclasses `Model`, asks for
components through `Slot`s and builds them with `Build`; docs/plugins.md has the rest.

Every name is imported on first use, so `import cgfw` (and `cgfw --help`) costs no torch."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# name -> the module that defines it. The layers, bottom up: plugin, recipe, store, train,
# session, tools; cgfw/cli/ sits on top and nothing here imports it.
_PUBLIC: dict[str, str] = {
    # plugins: hooks, registration, options
    "hookimpl": "cgfw.plugin.hookspecs",
    "Register": "cgfw.plugin.hookspecs",
    "NoOptions": "cgfw.plugin.registry",
    "lazy": "cgfw.plugin.registry",
    # recipes
    "Slot": "cgfw.recipe.schema",
    "Resolved": "cgfw.recipe.resolve",
    "RecipeView": "cgfw.recipe.view",
    # run directories and checkpoints
    "RunDir": "cgfw.store.layout",
    "AblationDir": "cgfw.store.layout",
    "Checkpoint": "cgfw.store.checkpoint",
    "refusal_reason": "cgfw.store.checkpoint",
    "cache_dir": "cgfw.store.cache",
    # training
    "Build": "cgfw.training.model",
    "Model": "cgfw.training.model",
    "Runtime": "cgfw.training.model",
    "build_network": "cgfw.training.model",
    "build_model": "cgfw.training.model",
    "check_output": "cgfw.training.loop",
    "item_generator": "cgfw.training.data",
    "RealImages": "cgfw.training.evaluation",
    "TrackedRun": "cgfw.training.tracking",
    "Tracker": "cgfw.training.tracking",
    "flatten": "cgfw.recipe.keys",
    "write_hparams": "cgfw.training.tensorboard",
    # images beyond 8-bit RGB, for datasets
    "Planes": "cgfw.planes",
    "resize_planes": "cgfw.planes",
    "IMAGE_SUFFIXES": "cgfw.images",
    "BadImage": "cgfw.images",
    "check_channels": "cgfw.images",
    "decode": "cgfw.images",
    "images_in": "cgfw.images",
    "to_tensor": "cgfw.images",
    "usable": "cgfw.images",
    # launchers
    "Batch": "cgfw.session.launching",
    "Launcher": "cgfw.session.launching",
    "finished_losses": "cgfw.session.launching",
    "run_command": "cgfw.session.launching",
    "launch": "cgfw.session.start",
    "create_run": "cgfw.session.start",
    "resolve_recipe": "cgfw.session.start",
    "console": "cgfw.terminal",
    "out": "cgfw.terminal",
    # downloads: resumed, size-checked, held to the hash of their first download
    "Known": "cgfw.tools.download",
    "check_known": "cgfw.tools.download",
    "fetch": "cgfw.tools.download",
    "server_url": "cgfw.tools.download",
    # the Python API
    "Run": "cgfw.api",
    "components": "cgfw.api",
    "create": "cgfw.api",
    "load": "cgfw.api",
    "train": "cgfw.api",
}
__all__ = [
    "IMAGE_SUFFIXES",
    "AblationDir",
    "BadImage",
    "Batch",
    "Build",
    "Checkpoint",
    "Known",
    "Launcher",
    "Model",
    "NoOptions",
    "Planes",
    "RealImages",
    "RecipeView",
    "Register",
    "Resolved",
    "Run",
    "RunDir",
    "Runtime",
    "Slot",
    "TrackedRun",
    "Tracker",
    "__version__",
    "build_model",
    "build_network",
    "cache_dir",
    "check_channels",
    "check_known",
    "check_output",
    "components",
    "console",
    "create",
    "create_run",
    "decode",
    "fetch",
    "finished_losses",
    "flatten",
    "hookimpl",
    "images_in",
    "item_generator",
    "launch",
    "lazy",
    "load",
    "out",
    "refusal_reason",
    "resize_planes",
    "resolve_recipe",
    "run_command",
    "server_url",
    "to_tensor",
    "train",
    "usable",
    "write_hparams",
]

if TYPE_CHECKING:
    from cgfw.api import Run as Run
    from cgfw.api import components as components
    from cgfw.api import create as create
    from cgfw.api import load as load
    from cgfw.api import train as train
    from cgfw.images import IMAGE_SUFFIXES as IMAGE_SUFFIXES
    from cgfw.images import BadImage as BadImage
    from cgfw.images import check_channels as check_channels
    from cgfw.images import decode as decode
    from cgfw.images import images_in as images_in
    from cgfw.images import to_tensor as to_tensor
    from cgfw.images import usable as usable
    from cgfw.planes import Planes as Planes
    from cgfw.planes import resize_planes as resize_planes
    from cgfw.plugin.hookspecs import Register as Register
    from cgfw.plugin.hookspecs import hookimpl as hookimpl
    from cgfw.plugin.registry import NoOptions as NoOptions
    from cgfw.plugin.registry import lazy as lazy
    from cgfw.recipe.keys import flatten as flatten
    from cgfw.recipe.resolve import Resolved as Resolved
    from cgfw.recipe.schema import Slot as Slot
    from cgfw.recipe.view import RecipeView as RecipeView
    from cgfw.session.launching import Batch as Batch
    from cgfw.session.launching import Launcher as Launcher
    from cgfw.session.launching import finished_losses as finished_losses
    from cgfw.session.launching import run_command as run_command
    from cgfw.session.start import create_run as create_run
    from cgfw.session.start import launch as launch
    from cgfw.session.start import resolve_recipe as resolve_recipe
    from cgfw.store.cache import cache_dir as cache_dir
    from cgfw.store.checkpoint import Checkpoint as Checkpoint
    from cgfw.store.checkpoint import refusal_reason as refusal_reason
    from cgfw.store.layout import AblationDir as AblationDir
    from cgfw.store.layout import RunDir as RunDir
    from cgfw.terminal import console as console
    from cgfw.terminal import out as out
    from cgfw.tools.download import Known as Known
    from cgfw.tools.download import check_known as check_known
    from cgfw.tools.download import fetch as fetch
    from cgfw.tools.download import server_url as server_url
    from cgfw.training.data import item_generator as item_generator
    from cgfw.training.evaluation import RealImages as RealImages
    from cgfw.training.loop import check_output as check_output
    from cgfw.training.model import Build as Build
    from cgfw.training.model import Model as Model
    from cgfw.training.model import Runtime as Runtime
    from cgfw.training.model import build_model as build_model
    from cgfw.training.model import build_network as build_network
    from cgfw.training.tensorboard import write_hparams as write_hparams
    from cgfw.training.tracking import TrackedRun as TrackedRun
    from cgfw.training.tracking import Tracker as Tracker


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'cgfw' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next access is a plain lookup
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_PUBLIC})  # tab completion in a notebook shows the API too
