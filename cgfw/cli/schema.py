"""`cgfw schema`: the command line over cgfw.recipe.jsonschema."""

from __future__ import annotations

import json

import click

from cgfw.cli.console import SET_HELP, friendly, out
from cgfw.plugin.loader import load_plugins
from cgfw.recipe import load
from cgfw.recipe.jsonschema import (
    recipe_schema,
)


@click.command("schema")
@click.option("--indent", default=2, show_default=True, help="JSON indentation (0: one line).")
@click.option(
    "--model",
    "model_name",
    help="The model whose sections to describe (default: the default model).",
)
@friendly
def schema_cmd(indent: int, model_name: str | None) -> None:
    """Print the JSON Schema of recipes, with every installed component's options.

    \b
    Editors that read JSON Schema for TOML (Taplo, Even Better TOML) check recipes as you type:
      cgfw recipe schema > recipe.schema.json
    and begin a recipe with the line  #:schema ./recipe.schema.json
    """
    schema = recipe_schema(load_plugins().registry, model_name)
    # Plain text, not rich: brackets in descriptions are not markup and nothing may wrap.
    click.echo(json.dumps(schema, indent=indent or None))


@click.command("validate")
@click.argument("recipe")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
@friendly
def validate_cmd(recipe: str, overrides: tuple[str, ...]) -> None:
    """Check RECIPE (a TOML file or a bundled name) and its overrides without training: exit 0
    and print ok, or name every problem and exit 2."""
    load(recipe, load_plugins().registry, overrides)
    out.print("ok")
