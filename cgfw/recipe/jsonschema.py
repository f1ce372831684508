"""`cgfw recipe schema` and `cgfw recipe validate`: a JSON Schema of recipes for editors and other
tools, and a check of a recipe file without training.

The schema is built from the same pydantic models that validate recipes (cgfw.recipe.Recipe) and
from every registered component's options model, so it lists whatever the installed plugins
provide. Each component section becomes a oneOf over its kind's components, told apart by the
`name` const and carrying the section's engine keys (such as `weight`) beside the options.
"""

from __future__ import annotations

import json
from typing import Any

from cgfw.plugin.registry import Component, Registry
from cgfw.recipe import Recipe, Slot, default_model, slots_of

DIALECT = "https://json-schema.org/draft/2020-12/schema"
DEFS = "#/$defs/"


def _options_schema(component: Component, defs: dict[str, Any]) -> dict[str, Any]:
    """The component's options schema; its nested definitions move to the top-level `$defs`
    under a prefix, as two plugins may both name a model `Options`."""
    prefix = f"{component.kind}.{component.name}."
    try:
        schema = component.options.model_json_schema(ref_template=DEFS + prefix + "{model}")
    except Exception as exc:  # a plugin option type with no JSON form (a callable, say)
        return {"description": f"options not expressible as JSON Schema ({exc})"}
    for name, definition in schema.pop("$defs", {}).items():
        defs[prefix + name] = definition
    return schema


def _branch(
    component: Component,
    engine: dict[str, Any],
    is_default: bool,
    defs: dict[str, Any],
) -> dict[str, Any]:
    options = _options_schema(component, defs)
    name: dict[str, Any] = {"const": component.name}
    if component.summary:
        name["description"] = component.summary
    if is_default:
        name["default"] = component.name
    branch: dict[str, Any] = {
        "title": f"{component.kind} '{component.name}' (plugin {component.plugin})",
        "type": "object",
        # Engine keys last: the engine reads them from the section, never the component.
        "properties": {"name": name, **options.get("properties", {}), **engine},
    }
    # Without `name` the section picks its default component; every other one must be named.
    required = ([] if is_default else ["name"]) + list(options.get("required", []))
    if required:
        branch["required"] = required
    # Only components that forbid unknown keys get additionalProperties false: a model with
    # pydantic's default (ignore) really does accept and drop them.
    if "additionalProperties" in options:
        branch["additionalProperties"] = options["additionalProperties"]
    return branch


def section_schema(
    path: str, slot: Slot, registry: Registry, defs: dict[str, Any]
) -> tuple[dict[str, Any], bool]:
    """A slot's schema, and whether the section must appear in a recipe (its default
    component needs options, or there is no default)."""
    kind, default = slot.kind, slot.default
    engine: dict[str, Any] = {}
    if slot.keys is not None:
        keys_schema = slot.keys.model_json_schema(ref_template=DEFS + "{model}")
        engine = keys_schema.get("properties", {})
    names = registry.names(kind)
    if not names:
        return {"not": {}, "description": f"no {kind} component is installed"}, True
    branches = [_branch(registry.get(kind, n), engine, n == default, defs) for n in names]
    default_branch = next((b for n, b in zip(names, branches, strict=True) if n == default), None)
    required = not slot.optional and (
        default_branch is None or bool(default_branch.get("required"))
    )
    description = f"a {kind}: `name` picks one of {', '.join(names)}"
    if default_branch is not None:
        description += f" (default {default})"
    return {"description": description, "type": "object", "oneOf": branches}, required


def recipe_schema(registry: Registry, model_name: str | None = None) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a recipe for `model_name`, or for the default model
    (the one recipes without [model] train), with the registry's components."""
    schema = Recipe.model_json_schema(ref_template=DEFS + "{model}")
    defs: dict[str, Any] = schema.setdefault("$defs", {})
    model = registry.get("model", model_name) if model_name else default_model(registry)
    options = _options_schema(model, defs)
    name: dict[str, Any] = {"const": model.name} if model_name else {"enum": [model.name]}
    schema["properties"]["model"] = {
        "type": "object",
        "description": f"the training objective, {model.name} (plugin {model.plugin}); "
        f"installed: {', '.join(registry.names('model'))}. `cgfw recipe schema --model NAME` "
        "describes another model's sections",
        "properties": {"name": name, **options.get("properties", {})},
        "additionalProperties": False,
    }
    if model_name:  # a recipe without [model] trains the default one, not this
        schema.setdefault("required", []).append("model")
        schema["properties"]["model"]["required"] = ["name"]
    schema["additionalProperties"] = False
    for path, slot in slots_of(model).items():
        section, required = section_schema(path, slot, registry, defs)
        parts = path.split(".")
        node = schema
        for part in parts[:-1]:
            if required and part not in node.setdefault("required", []):
                node["required"].append(part)
            node = node["properties"].setdefault(
                part, {"type": "object", "properties": {}, "additionalProperties": False}
            )
        if required and parts[-1] not in node.setdefault("required", []):
            node["required"].append(parts[-1])
        node["properties"][parts[-1]] = section
    for node in (schema, *defs.values()):
        if node.get("required") == []:
            del node["required"]
    if "required" in schema:  # a recipe that extends another may leave them to its parent
        schema["if"] = {"not": {"required": ["extends"]}}
        schema["then"] = {"required": schema.pop("required")}
    # The plain section models (DefaultedSection, ...) were replaced above; drop the orphans.
    text = json.dumps(schema)
    for key in list(defs):
        if f'"{DEFS}{key}"' not in text:
            del defs[key]
    return {
        "$schema": DIALECT,
        **{k: v for k, v in schema.items() if k != "title"},
        "title": "cgfw recipe",
        "description": "A cgfw recipe (TOML), with the components installed when generated.",
    }
