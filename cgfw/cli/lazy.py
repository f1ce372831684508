"""A click group whose commands are imported when they run, so `cgfw --help` lists them
without importing torch: each command's line in the listing is read from its module's source."""

from __future__ import annotations

import ast
import importlib
import importlib.util
from functools import cache
from typing import Any

import click


class LazyGroup(click.Group):
    """`lazy` maps a command name to "module:attribute" of its click command."""

    def __init__(self, *args: Any, lazy: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy and cmd_name not in self.commands:
            module, attr = self.lazy[cmd_name].split(":")
            command = getattr(importlib.import_module(module), attr)
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)

    def listed_help(self, ctx: click.Context, name: str, limit: int = 45) -> str | None:
        if name in self.lazy and name not in self.commands:
            return _docstring_line(self.lazy[name], limit)
        command = super().get_command(ctx, name)
        return command.get_short_help_str(limit) if command is not None else None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max((len(n) for n in names), default=0)  # as click's
        rows = []
        for name in names:
            command = self.commands.get(name)
            if command is not None and command.hidden:
                continue
            rows.append((name, self.listed_help(ctx, name, limit) or ""))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@cache
def _docstring_line(target: str, limit: int) -> str:
    """The first sentence of the command function's docstring, as click would show it, read
    from the source without importing the module."""
    module, attr = target.split(":")
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return ""
    with open(spec.origin, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == attr:
            doc = ast.get_docstring(node) or ""
            return click.Command(attr, help=doc).get_short_help_str(limit)  # as click shows it
    return ""
