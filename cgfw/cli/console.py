"""Terminal output shared by every command: where messages go and how user errors look."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from rich.console import Console
from rich.markup import escape

from cgfw.errors import CgfwError

console = Console(stderr=True, soft_wrap=True)  # messages; long paths stay on one line, copyable
# Results (tables, recipes) on stdout; piped into a file or a CI log, tables keep their columns.
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)
QUIET = Console(stderr=True, quiet=True)  # for torchrun processes other than the main one
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
