"""cgfw: a plugin-based experimentation framework for CycleGAN.

In a notebook: `cgfw.train` a recipe, `cgfw.load` a run and `Run.translate` images with it,
`cgfw.create` one registered component, and `cgfw.components` lists them (cgfw/api.py).

For plugin authors: `hookimpl` marks a hook, `Register` types the callable each hook gets;
a model subclasses `Model`, asks for components through `Slot`s and builds them with `Build`;
`NoOptions` is the options model of a component that takes none."""

from typing import TYPE_CHECKING, Any

from cgfw.hookspecs import Register, hookimpl
from cgfw.launching import Batch, Launcher
from cgfw.model import Build, Model, Runtime
from cgfw.recipe import Slot
from cgfw.registry import NoOptions
from cgfw.tracking import TrackedRun, Tracker

if TYPE_CHECKING:
    from cgfw.api import Run, components, create, load, train

__version__ = "0.1.0"
__all__ = [
    "Batch",
    "Build",
    "Launcher",
    "Model",
    "NoOptions",
    "Register",
    "Run",
    "Runtime",
    "Slot",
    "TrackedRun",
    "Tracker",
    "__version__",
    "components",
    "create",
    "hookimpl",
    "load",
    "train",
]
_API = {"Run", "components", "create", "load", "train"}


def __getattr__(name: str) -> Any:
    """The Python API, imported on first use: it brings the command line's modules (click,
    TensorBoard), about two seconds that a plugin importing cgfw for `hookimpl` need not pay."""
    if name in _API:
        from cgfw import api

        return getattr(api, name)
    raise AttributeError(f"module 'cgfw' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})  # tab completion in a notebook shows the API too
