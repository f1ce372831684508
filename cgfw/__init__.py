"""cgfw: a plugin-based experimentation framework for CycleGAN.

For plugin authors: `hookimpl` marks a hook, `Register` types the callable each hook gets;
a model subclasses `Model`, asks for components through `Slot`s and builds them with `Build`."""

from cgfw.hookspecs import Register, hookimpl
from cgfw.model import Build, Model, Runtime
from cgfw.recipe import Slot
from cgfw.tracking import TrackedRun, Tracker

__version__ = "0.1.0"
__all__ = [
    "Build",
    "Model",
    "Register",
    "Runtime",
    "Slot",
    "TrackedRun",
    "Tracker",
    "__version__",
    "hookimpl",
]
