"""Terminal output shared by every command: where messages go and how user errors look."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import click
from rich.markup import escape

from cgfw.errors import CgfwError
from cgfw.terminal import QUIET, console, out

__all__ = ["QUIET", "SET_HELP", "checkpoint_option", "console", "friendly", "out", "raw_option"]

F = TypeVar("F", bound=Callable[..., Any])


def friendly(fn: F) -> F:
    """User mistakes become one red line and their exit code (2), never a traceback."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except CgfwError as exc:
            console.print(f"[bold red]error:[/bold red] {escape(str(exc))}", highlight=False)
            sys.exit(exc.exit_code)

    return wrapper  # type: ignore[return-value]


SET_HELP = "Override a recipe key, e.g. --set generator.n_blocks=6 (TOML value; repeatable)."


# `--raw` of translate, export and eval: the weights load_generator reads.
raw_option = click.option(
    "--raw",
    is_flag=True,
    help="The trained weights, not their moving average (runs with train.ema only).",
)

# `--checkpoint` of translate, export and eval: which of a run directory's checkpoints.
checkpoint_option = click.option(
    "--checkpoint",
    "which",
    default="latest",
    show_default=True,
    metavar="best|latest|iter_N",
    help="A run directory's checkpoint: latest (previous.pt if latest.pt is damaged), best "
    "(by train.keep_best) or iter_N (kept by train.keep_every).",
)
