"""cgfw recipe schema / validate: the JSON Schema is well formed, accepts the bundled recipes,
agrees with cgfw's own validation, and lists third-party components' options too."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from cgfw.cli.schema import schema_cmd, validate_cmd
from cgfw.errors import CgfwError
from cgfw.plugin.loader import Loaded, load_plugins
from cgfw.recipe import default_model, read_recipe, read_toml, slots_of, validate
from cgfw.recipe.jsonschema import recipe_schema

try:
    import jsonschema
except ImportError:  # the structural checks below still run
    jsonschema = None

needs_jsonschema = pytest.mark.skipif(jsonschema is None, reason="pip install jsonschema")
BUNDLED = sorted((Path(__file__).parents[2] / "recipes").glob("*.toml"))
PAPER = Path(__file__).parents[2] / "recipes" / "paper_default.toml"


def as_json(data: dict[str, Any]) -> Any:
    """A recipe as a JSON document (TOML's tuples and tables become arrays and objects)."""
    return json.loads(json.dumps(data))


def schema_accepts(schema: dict[str, Any], data: dict[str, Any]) -> bool:
    assert jsonschema is not None
    return jsonschema.Draft202012Validator(schema).is_valid(as_json(data))


def cgfw_accepts(loaded: Loaded, data: dict[str, Any]) -> bool:
    try:
        validate(data, loaded.registry, "test")
    except CgfwError:
        return False
    return True


def section(schema: dict[str, Any], path: str) -> dict[str, Any]:
    node = schema
    for part in path.split("."):
        node = node["properties"][part]
        if "$ref" in node:
            node = schema["$defs"][node["$ref"].removeprefix("#/$defs/")]
    return node


def test_the_schema_is_well_formed(loaded: Loaded) -> None:
    schema = recipe_schema(loaded.registry)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert json.loads(json.dumps(schema)) == schema  # plain JSON all the way down
    # Every $ref points at a definition that exists.
    text = json.dumps(schema)
    for ref in {r.split('"')[0] for r in text.split('"$ref": "#/$defs/')[1:]}:
        assert ref in schema["$defs"], ref
    # Every component section is a oneOf over exactly the registered components.
    for path, slot in slots_of(default_model(loaded.registry)).items():
        engine_keys = list(slot.keys.model_fields) if slot.keys else []
        branches = section(schema, path)["oneOf"]
        names = [b["properties"]["name"]["const"] for b in branches]
        assert names == loaded.registry.names(slot.kind), path
        for branch in branches:
            assert set(engine_keys) <= set(branch["properties"]), (path, branch["title"])
    if jsonschema is not None:
        jsonschema.Draft202012Validator.check_schema(schema)


def test_component_options_are_in_the_schema(loaded: Loaded) -> None:
    schema = recipe_schema(loaded.registry)
    resnet = next(
        b
        for b in section(schema, "generator")["oneOf"]
        if b["properties"]["name"]["const"] == "resnet"
    )
    assert resnet["properties"]["n_blocks"]["minimum"] == 0
    assert resnet["properties"]["norm"]["enum"] == ["instance", "batch", "none"]
    assert resnet["additionalProperties"] is False
    assert "required" not in resnet  # the default generator: `name` may be left out
    gan = section(schema, "losses.gan")["oneOf"][0]
    assert gan["required"] == ["name"] and "weight" in gan["properties"]
    assert "data" in schema["then"]["required"]  # the default dataset (folder) needs a root


@needs_jsonschema
@pytest.mark.parametrize("recipe", BUNDLED, ids=[p.stem for p in BUNDLED])
def test_bundled_recipes_validate_against_the_schema(loaded: Loaded, recipe: Path) -> None:
    data = read_toml(recipe)
    jsonschema.validate(as_json(data), recipe_schema(loaded.registry))  # type: ignore[union-attr]
    # A fully resolved recipe (every default written out) is valid too.
    merged = read_recipe(recipe, loaded.registry)
    resolved = validate(merged, loaded.registry, str(recipe)).to_dict()
    jsonschema.validate(as_json(resolved), recipe_schema(loaded.registry))  # type: ignore[union-attr]


def _variant(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    data = json.loads(json.dumps(base))
    *parents, last = path.split(".")
    node = data
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    return data


VARIANTS = [
    ("generator.n_blocks", 6, True),
    ("generator.name", "resnet_upsample", True),
    ("generator", {"name": "resnet_upsample", "ngf": 8}, True),
    ("losses.gan", {"name": "bce", "real_label": 0.9, "weight": 2.0}, True),
    ("losses.cycle", {"name": "l1", "forward": False}, True),
    ("generator.bogus", 1, False),  # an unknown generator option
    ("generator.n_blocks", -1, False),
    ("generator.norm", "group", False),
    ("generator.name", "nonexistent", False),
    ("losses.gan.weight", -1.0, False),
    ("losses.gan", {"name": "hinge", "real_label": 0.9}, False),  # lsgan's option on hinge
    ("train.epochs", 0, False),
    ("train.precision", "fp8", False),
    ("optimizer.betas", [0.5], False),
    ("run.colour", "blue", False),
    ("nonsense", {}, False),
]


@needs_jsonschema
@pytest.mark.parametrize(("path", "value", "valid"), VARIANTS)
def test_the_schema_agrees_with_cgfw(loaded: Loaded, path: str, value: Any, valid: bool) -> None:
    schema = recipe_schema(loaded.registry)
    data = _variant(read_toml(PAPER), path, value)
    assert cgfw_accepts(loaded, data) is valid
    assert schema_accepts(schema, data) is valid


@needs_jsonschema
def test_a_recipe_without_the_required_dataset_root_is_rejected(loaded: Loaded) -> None:
    data = read_toml(PAPER)
    del data["data"]["root"]
    assert not cgfw_accepts(loaded, data)
    assert not schema_accepts(recipe_schema(loaded.registry), data)


PLUGIN = """
    import cgfw
    from pydantic import BaseModel, ConfigDict
    from torch import nn

    class Inner(BaseModel):
        model_config = ConfigDict(extra="forbid")
        depth: int = 2

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        width: int = 8
        inner: Inner = Inner()

    class Loose(BaseModel):  # pydantic's default: unknown keys are dropped, not refused
        scale: float = 1.0

    @cgfw.hookimpl
    def register_generators(register):
        register("tiny", lambda o: nn.Identity(), Options, "two convs")
        register("loose", lambda o: nn.Identity(), Loose, "accepts anything")
"""


@needs_jsonschema
def test_a_third_party_component_is_in_the_schema(
    fake_distribution: Callable[[str, str], Path],
) -> None:
    fake_distribution("cgfw-schema-test", PLUGIN)
    loaded = load_plugins()
    schema = recipe_schema(loaded.registry)
    base = read_toml(PAPER)
    good = _variant(base, "generator", {"name": "tiny", "width": 4, "inner": {"depth": 3}})
    assert cgfw_accepts(loaded, good) and schema_accepts(schema, good)
    for bad in ({"name": "tiny", "inner": {"depth": "x"}}, {"name": "tiny", "n_blocks": 9}):
        data = _variant(base, "generator", bad)
        assert not cgfw_accepts(loaded, data) and not schema_accepts(schema, data)
    loose = _variant(base, "generator", {"name": "loose", "whatever": 1})
    assert cgfw_accepts(loaded, loose) and schema_accepts(schema, loose)
    assert any(name.startswith("generator.tiny.") for name in schema["$defs"])


# --- the click commands ----------------------------------------------------------------------


def invoke(command: Any, *args: str) -> Result:
    return CliRunner().invoke(command, list(args))


def test_schema_command_prints_json() -> None:
    result = invoke(schema_cmd)
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert schema["title"] == "cgfw recipe" and "generator" in schema["properties"]
    assert "\n" not in invoke(schema_cmd, "--indent", "0").stdout.strip()


def test_validate_command(tmp_path: Path) -> None:
    ok = invoke(validate_cmd, str(PAPER))
    assert ok.exit_code == 0 and ok.stdout.strip() == "ok"
    assert invoke(validate_cmd, "quickstart", "--set", "generator.n_blocks=4").exit_code == 0
    bad = invoke(validate_cmd, str(PAPER), "--set", "generator.n_block=6")
    assert bad.exit_code == 2
    assert "generator.n_block: unknown option for generator 'resnet'" in bad.stderr
    assert "did you mean 'n_blocks'?" in bad.stderr
    broken = tmp_path / "broken.toml"
    broken.write_text("[generator\n", encoding="utf-8")
    assert "not valid TOML" in invoke(validate_cmd, str(broken)).stderr
