"""cgfw: a plugin-based experimentation framework for CycleGAN. Plugins use `cgfw.hookimpl`."""

from cgfw.hookspecs import hookimpl

__version__ = "0.1.0"
__all__ = ["__version__", "hookimpl"]
