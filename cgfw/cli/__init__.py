"""The `cgfw` command line, apart from the engine: main.py holds the command group and the
training commands, one module per other command; plugins add commands of their own through
the ``register_commands`` hook."""

from cgfw.cli.main import main

__all__ = ["main"]
