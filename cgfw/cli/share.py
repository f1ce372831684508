"""`cgfw save-pretrained` and `cgfw push`: the command line over cgfw.tools.share."""

from __future__ import annotations

from pathlib import Path

import click

from cgfw.cli.console import checkpoint_option, console, friendly, out, raw_option

LICENSE_HELP = (
    "The model card's license: a Hugging Face identifier such as mit, apache-2.0, cc-by-4.0 "
    "(default: other, and the card says no license was stated)."
)


@click.command("save-pretrained")
@click.argument("model", metavar="RUN_DIR", type=click.Path(path_type=Path))
@click.argument("output", metavar="OUT", type=click.Path(path_type=Path))
@raw_option
@checkpoint_option
@click.option("--license", "license_id", metavar="ID", help=LICENSE_HELP)
@click.option("--force", is_flag=True, help="Replace a model folder already at OUT.")
@friendly
def save_pretrained_cmd(
    model: Path, output: Path, raw: bool, which: str, license_id: str | None, force: bool
) -> None:
    """Write RUN_DIR's translators into OUT as a model folder in the Hugging Face layout:
    safetensors weights, recipe.toml, metrics.json, config.json and a model card (README.md).

    `cgfw translate OUT ...` and `cgfw.load("OUT")` use it without any checkpoint; OUT is
    written whole or not at all."""
    from cgfw.tools.share import save_pretrained

    saved = save_pretrained(model, output, which=which, raw=raw, license=license_id, force=force)
    console.print(f"files: {', '.join(saved.files)}", highlight=False)
    directions = ", ".join(saved.config.generators)
    out.print(
        f"saved {saved.config.model} ({directions}, iteration {saved.config.iteration}, "
        f"{saved.config.weights} weights) to {saved.folder.path}",
        markup=False,
    )


@click.command("push")
@click.argument("model", metavar="RUN_DIR", type=click.Path(path_type=Path))
@click.argument("repo_id", metavar="USER/REPO")
@raw_option
@checkpoint_option
@click.option("--license", "license_id", metavar="ID", help=LICENSE_HELP)
@click.option(
    "--private",
    is_flag=True,
    help="Create the repository private (a repository that exists keeps its visibility).",
)
@click.option("--message", metavar="TEXT", help="The commit message.")
@friendly
def push_cmd(
    model: Path,
    repo_id: str,
    raw: bool,
    which: str,
    license_id: str | None,
    private: bool,
    message: str | None,
) -> None:
    """Upload RUN_DIR's model folder (as save-pretrained writes it) to the Hugging Face Hub
    repository USER/REPO; `cgfw.load("hf://USER/REPO")` then uses it.

    Needs `pip install 'cgfw[hub]'` and huggingface_hub's login (`hf auth login`, or
    HF_TOKEN)."""
    from cgfw.tools.share import push

    url = push(
        model,
        repo_id,
        which=which,
        raw=raw,
        license=license_id,
        private=private,
        message=message,
    )
    out.print(f"pushed to {url} (load it as hf://{repo_id})", markup=False)
