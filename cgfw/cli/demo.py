"""`cgfw demo`: the command line over cgfw.tools.demo."""

from __future__ import annotations

from pathlib import Path

import click

from cgfw.cli.console import checkpoint_option, friendly, out

# The smallest tile translate takes (cgfw.tools.translate.MIN_SIDE), here without importing torch.
MIN_TILE = 8


@click.command()
@click.argument("model", metavar="RUN_DIR|CHECKPOINT", type=click.Path(path_type=Path))
@checkpoint_option
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="The address to serve on; 127.0.0.1 keeps the page to this machine (0.0.0.0 opens "
    "it to the network, without a password).",
)
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    help="The port to serve on (default: the first free one from 7860).",
)
@click.option(
    "--tile",
    type=click.IntRange(min=0),
    default=0,
    metavar="N",
    help="The page's initial tile size: images larger than N px translate in N px tiles, as "
    "`cgfw translate --tile N` (0, the default: the whole image at once).",
)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@friendly
def demo(model: Path, which: str, host: str, port: int | None, tile: int, device: str) -> None:
    """Serve a web page that translates an uploaded image with the generators of RUN_DIR (its
    latest checkpoint, or the one --checkpoint names) or of a CHECKPOINT file, at full
    resolution, whole or in tiles, and offers the result as a PNG to download.

    Needs the demo extra: pip install 'cgfw[demo]'. Ctrl-C stops the server.
    """
    from cgfw.errors import CgfwError
    from cgfw.tools.demo import require_gradio

    require_gradio()  # before the model loads: a missing extra fails at once
    if 0 < tile < MIN_TILE:
        raise CgfwError(f"--tile {tile}: give 0 (the whole image at once) or {MIN_TILE} or more")
    from cgfw.tools.demo import build_app, launch, load_demo

    loaded = load_demo(model, which, device)
    app = build_app(loaded, tile or None)
    url = launch(app, host, port)
    out.print(f"cgfw demo: {loaded.describe()}", markup=False, highlight=False)
    out.print(f"serving on {url} (Ctrl-C stops it)", markup=False, highlight=False)
    try:
        app.block_thread()
    finally:
        app.close()
