"""Share a model: `cgfw save-pretrained` writes a run's translators as a model folder in the
Hugging Face layout (cgfw/store/folder.py), with a model card; `cgfw push` uploads one to the Hub.

The weights are written by cgfw/tools/export.py's safetensors export (one implementation, its
metadata included), and the folder is loaded back as `cgfw.load` will load it before it is
renamed into place: a folder that is there is one that loads."""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

import cgfw
from cgfw.errors import CgfwError
from cgfw.plugin.loader import load_plugins
from cgfw.recipe import get_dotted
from cgfw.session.hub import huggingface_hub, parse
from cgfw.session.load import DIRECTIONS, LATEST, Generator, load_generator
from cgfw.store.folder import EMA, TRAINED, FolderConfig, GeneratorEntry, ModelFolder, staged
from cgfw.store.layout import RunDir, write_error
from cgfw.tools.export import check_installed, export_safetensors, metadata
from cgfw.training.model import count_parameters

# The model card's license when --license is not given: the Hub's word for "none of the
# licenses it lists", and the card says it was not stated.
UNSTATED_LICENSE = "other"
_LICENSE = re.compile(r"[a-z0-9][a-z0-9.+-]*")


@dataclass(frozen=True)
class Saved:
    """What save_pretrained wrote, for the command line to report."""

    folder: ModelFolder
    config: FolderConfig
    files: list[str]


def check_license(license: str | None) -> str:
    if license is None:
        return UNSTATED_LICENSE
    if not _LICENSE.fullmatch(license):
        raise CgfwError(
            f"--license {license!r}: give a Hugging Face license identifier, lowercase, such "
            "as mit, apache-2.0 or cc-by-4.0 ('other' for one the Hub does not list)"
        )
    return license


def generators_of(source: Path, which: str = LATEST, raw: bool = False) -> list[Generator]:
    """Every direction the run's model learns (both of a two-sided model, a2b of a one-sided
    one), loaded from the same checkpoint."""
    first = load_generator(source, DIRECTIONS[0], raw, which)
    learned = first.resolved.model.info("directions", {})
    rest = [load_generator(source, d, raw, which) for d in DIRECTIONS[1:] if d in learned]
    return [first, *rest]


def save_pretrained(
    source: Path,
    out: Path,
    *,
    which: str = LATEST,
    raw: bool = False,
    license: str | None = None,
    force: bool = False,
    repo_id: str | None = None,
) -> Saved:
    """Write the translators of the run directory (or checkpoint file) `source` into the model
    folder `out`: safetensors weights, recipe.toml, metrics.json (when the run has one),
    config.json and a model card. `out` appears whole or not at all; a non-empty `out` is
    refused unless `force` (which replaces a model folder, nothing else). `repo_id` (user/repo)
    is what the card's commands load it as, once pushed."""
    check_installed("safetensors")
    license = check_license(license)
    generators = generators_of(source, which, raw)
    first = generators[0]
    run = RunDir.holding(source)
    metrics_text = run.metrics.read_text(encoding="utf-8") if run.metrics.is_file() else None
    config = FolderConfig(
        cgfw_version=cgfw.__version__,
        model=first.resolved.model.name,
        iteration=first.iteration,
        checkpoint=which,
        weights=EMA if first.averaged else TRAINED,
        channels=first.channels,
        generators={
            g.direction: GeneratorEntry(
                network=g.network,
                slot=g.slot,
                component=g.resolved.components[g.slot].name,
                plugin=g.resolved.components[g.slot].plugin,
                file=ModelFolder(out).weights(g.direction).name,
                parameters=count_parameters(g.net),
            )
            for g in generators
        },
    )
    with staged(out, force) as folder:
        for g in generators:
            path = folder.weights(g.direction)
            try:
                export_safetensors(g, path)
            except OSError as exc:
                raise write_error(path, exc) from None
        folder.write_recipe(first.resolved.to_toml())
        if metrics_text is not None:
            folder.write_metrics(metrics_text)
        folder.write_config(config)
        card = model_card(generators, config, _metrics(metrics_text), license, repo_id, run)
        folder.write_card(card)
        _check_loads(folder, generators)
        files = sorted(p.name for p in folder.path.iterdir())
    return Saved(ModelFolder(out), config, files)


def _check_loads(folder: ModelFolder, generators: list[Generator]) -> None:
    """The staged folder read back the way cgfw.load reads it, tensor for tensor."""
    for g in generators:
        back = load_generator(folder.path, g.direction, which=LATEST).net.state_dict()
        mine = g.net.state_dict()
        if back.keys() != mine.keys() or not all(torch.equal(back[k], mine[k]) for k in mine):
            raise CgfwError(
                f"{folder.weights(g.direction)}: read back, it differs from the weights written "
                "(nothing was kept); please report this"
            )


def _metrics(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return None  # copied as it is; the card just has no table of it
    return data if isinstance(data, dict) else None


def _yaml(value: str) -> str:
    """A YAML scalar: JSON strings are YAML strings, so no value can break the front matter."""
    return json.dumps(value)


def _distributions(generators: list[Generator]) -> list[str]:
    """The pip packages beyond cgfw that provide the model and the generators."""
    by_plugin = {p.name: p.distribution for p in load_plugins().plugins}
    resolved = generators[0].resolved
    plugins = [resolved.model.plugin, *(g.resolved.components[g.slot].plugin for g in generators)]
    found = {by_plugin.get(p, "") for p in plugins}
    return sorted(d for d in found if d and d != "cgfw")


def _value(number: Any) -> str:
    if isinstance(number, float):
        return f"{number:.4g}"
    return str(number)


def _metric_lines(metrics: dict[str, Any], config: FolderConfig) -> list[str]:
    rows = []
    for direction in ("a2b", "b2a", "baseline"):
        scores = metrics.get(direction)
        if isinstance(scores, dict):
            for name, value in scores.items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    rows.append(f"| {direction} | {name} | {_value(value)} |")
    if not rows:
        return []
    lines = ["## Metrics", "", "| direction | metric | value |", "| --- | --- | --- |", *rows, ""]
    notes = []
    split, samples = metrics.get("split"), metrics.get("samples")
    if samples is not None:
        notes.append(f"{samples} held-out images per direction (split {split or '?'})")
    options = metrics.get("options")
    resize = get_dotted(options, "fid.resize") if isinstance(options, dict) else None
    if resize is None and isinstance(options, dict):
        resize = get_dotted(options, "kid.resize")
    if resize is not None:
        notes.append(
            f"FID / KID with `fid.resize = {resize}` (cgfw's README, 'Which FID': compare only "
            "with FIDs computed the same way)"
        )
    scored = metrics.get("iteration")
    if isinstance(scored, int) and scored != config.iteration:
        notes.append(
            f"**scored at iteration {scored}, while these weights are of iteration "
            f"{config.iteration}**: run `cgfw eval` on this checkpoint for its own scores"
        )
    weights = metrics.get("weights")
    if weights in (EMA, TRAINED) and weights != config.weights:
        notes.append(f"scored with the {weights} weights; these are the {config.weights} ones")
    lines += [f"- {n}" for n in notes]
    lines.append(
        "- baseline: the untranslated inputs scored the same way (what doing nothing gets)"
    )
    return [*lines, ""]


def model_card(
    generators: list[Generator],
    config: FolderConfig,
    metrics: dict[str, Any] | None,
    license: str,
    repo_id: str | None,
    run: RunDir,
) -> str:
    """README.md: Hugging Face YAML front matter, what the model is, how it was trained, its
    scores, and the commands and Python that use it."""
    first = generators[0]
    resolved = first.resolved
    recipe = resolved.to_dict()
    model = resolved.model.name
    tags = ["cgfw", "image-to-image", *([model] if model not in ("cgfw", "image-to-image") else [])]
    front = [
        "---",
        "library_name: cgfw",
        f"license: {_yaml(license)}",
        "pipeline_tag: image-to-image",
        "tags:",
        *(f"- {_yaml(t)}" for t in tags),
        "---",
    ]
    data = recipe.get("data") or {}
    dataset = str(data.get("name", "?"))
    if data.get("root"):
        dataset += f" ({Path(str(data['root'])).name})"
    where = f"hf://{repo_id}" if repo_id else "path/to/this/folder"
    title = repo_id or f"{model} {dataset}"
    description = str(get_dotted(recipe, "run.description") or "").strip()
    directions = ", ".join(
        f"{g.direction} ({g.network}, {count_parameters(g.net):,} parameters)" for g in generators
    )
    sections = sorted({g.slot for g in generators})
    generator_lines = []
    for slot in sections:
        section = dict(get_dotted(recipe, slot) or {})
        name = section.pop("name", "?")
        options = ", ".join(f"{k} = {json.dumps(v)}" for k, v in sorted(section.items()))
        generator_lines.append(f"- [{slot}] `{name}`: {options or 'its defaults'}")
    train = recipe.get("train") or {}
    length = (
        f"train.max_iters = {train['max_iters']}"
        if train.get("max_iters")
        else f"train.epochs = {train.get('epochs', '?')}"
    )
    device = _provenance(run).get("device")
    precision = f"train.precision = {train.get('precision', '?')}" + (
        f", trained on {device}" if device else ""
    )
    weights = (
        "train.ema's moving average of the generators"
        if config.weights == EMA
        else "the trained weights"
    )
    spec = metadata(first)
    license_line = (
        f"License: `{license}`."
        if license != UNSTATED_LICENSE
        else "License: not stated when this folder was written (`other`); ask its author "
        "before you use it (`cgfw save-pretrained --license mit ...` states one)."
    )
    extra = _distributions(generators)
    install = "pip install 'cgfw[hub]'" + "".join(f" {d}" for d in extra)
    b2a = "b2a" in config.generators
    lines = [
        *front,
        "",
        f"# {title}",
        "",
        f"A {model} image-to-image translator trained with cgfw (CycleGAN experiments from "
        f"TOML recipes and plugins): {directions}.",
        *(["", description] if description else []),
        "",
        license_line,
        "",
        "## Use it",
        "",
        "```bash",
        install,
        f"cgfw translate {where} input.png output.png",
        *([f"cgfw translate {where} input.png output.png --direction b2a"] if b2a else []),
        "```",
        "",
        "```python",
        "import cgfw",
        "from PIL import Image",
        "",
        f'model = cgfw.load("{where}")',
        'model.translate(Image.open("input.png")).save("output.png")',
        *(['model.translate(Image.open("input.png"), "b2a")  # the other way'] if b2a else []),
        "```",
        "",
        f"The networks take and give {spec['input']}. Without cgfw: each "
        "`generator_*.safetensors` holds one network's state dict, and its metadata the "
        "recipe section (`generator`) and plugin that build it.",
        "",
        "## Training",
        "",
        f"- model: `{model}`",
        *generator_lines,
        f"- data: {dataset}, crop size {data.get('crop_size', '?')} "
        f"(load size {data.get('load_size', '?')}, preprocess "
        f"{data.get('preprocess', '?')}), {config.channels} channel(s)",
        f"- length: {length}; these weights are of iteration {config.iteration} (checkpoint "
        f"`{config.checkpoint}`), {weights}",
        f"- precision: {precision}",
        "- every key: `recipe.toml` (the resolved recipe; `cgfw run recipe.toml` trains it again)",
        "",
        *(_metric_lines(metrics, config) if metrics else []),
        "## Files",
        "",
        "| file | what |",
        "| --- | --- |",
        *(
            f"| `{config.generators[g.direction].file}` | {g.direction} generator "
            f"`{g.network}` (safetensors) |"
            for g in generators
        ),
        "| `recipe.toml` | the resolved recipe the networks are built from |",
        *(["| `metrics.json` | `cgfw eval`'s scores |"] if metrics is not None else []),
        f"| `config.json` | format {config.format_version}, cgfw {config.cgfw_version}, "
        "the networks and their files |",
        "",
        f"Written by cgfw {cgfw.__version__} (`cgfw save-pretrained`).",
        "",
    ]
    return "\n".join(lines)


def _provenance(run: RunDir) -> dict[str, Any]:
    try:
        data = json.loads(run.provenance.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def push(
    source: Path,
    repo_id: str,
    *,
    which: str = LATEST,
    raw: bool = False,
    license: str | None = None,
    private: bool = False,
    message: str | None = None,
) -> str:
    """Write the model folder of `source` into a temporary folder and upload it to the Hub
    repository `repo_id` (user/repo; created when absent, `private` then), with
    huggingface_hub's own login (`hf auth login`, or HF_TOKEN). Returns the repository's URL."""
    hub = huggingface_hub("cgfw push")  # before anything is read: the fix is an install
    named, revision = parse(f"hf://{repo_id}")
    if revision is not None or "/" not in named:
        raise CgfwError(f"{repo_id}: give the Hub repository as USER/REPO (or ORG/REPO)")
    with tempfile.TemporaryDirectory(prefix="cgfw-push-") as tmp:
        saved = save_pretrained(
            source, Path(tmp) / "model", which=which, raw=raw, license=license, repo_id=repo_id
        )
        api = hub.HfApi()
        try:
            url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
            api.upload_folder(
                repo_id=repo_id,
                folder_path=str(saved.folder.path),
                repo_type="model",
                commit_message=message
                or f"cgfw save-pretrained (iteration {saved.config.iteration})",
            )
        except Exception as exc:  # huggingface_hub's HTTP, auth and network errors
            lines = str(exc).strip().splitlines()
            raise CgfwError(
                f"push to {repo_id} failed ({type(exc).__name__}: "
                f"{lines[0] if lines else 'no detail'}); log in with `hf auth login` (or set "
                "HF_TOKEN) with a token that may write to it"
            ) from None
    return str(url)
