"""`cgfw demo`: a local web page that translates an uploaded image with a run's generator.

The page (Gradio, the `demo` extra) takes one image file, a direction (those the run's model
learns: a one-sided model offers one) and a tile size, and translates at full resolution, in one
piece or in tiles, as `cgfw translate --full-resolution [--tile N]` does: the same decoding and
pixel limit (cgfw.images.decode), the same Translator, the same PNG writer, so the download is
that command's file, pixel for pixel. `Demo.translate` is that translation without the page.

Nothing leaves the machine: Gradio's analytics and version check are off, there is no share
link, and the server binds to 127.0.0.1 unless asked otherwise.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from cgfw.errors import CgfwError
from cgfw.images import BadImage, decode
from cgfw.session.load import DIRECTIONS, LATEST, Generator, OneSided, load_generator
from cgfw.tools.translate import MIN_SIDE, Translator, side_of
from cgfw.training.loop import resolve_device

if TYPE_CHECKING:
    import gradio

HOST = "127.0.0.1"
INSTALL = "pip install 'cgfw[demo]'"
# Gradio's cache of uploads and results: files older than an hour go, checked every hour.
CACHE_LIFETIME = (3600, 3600)
# Uploads the page shows as they are (browsers decode these; EXIF turns them upright there too).
BROWSER_IMAGES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}
# Images fill their box, small ones scaled up, so a 32 px test image is not a speck.
IMAGE_HEIGHT = 360
CSS = "#input img, #result img { width: 100%; height: 100%; object-fit: contain; }"


def require_gradio() -> Any:
    """The gradio module, or one error saying how to install it."""
    try:
        import gradio
    except ImportError:
        raise CgfwError(f"cgfw demo needs Gradio, which is not installed: {INSTALL}") from None
    return gradio


@dataclass
class Demo:
    """The generators of one run (or checkpoint file), each direction its model learns loaded
    once onto `device`, and the translation the page runs."""

    source: Path
    generators: dict[str, Generator]
    device: torch.device

    @property
    def directions(self) -> list[str]:
        return list(self.generators)

    @property
    def channels(self) -> int:
        """The run's data.channels, which every upload is read as."""
        return next(iter(self.generators.values())).channels

    def translate(self, image: Path, direction: str, target: Path, tile: int | None = None) -> Path:
        """Translate the image file `image` at full resolution (in tiles of `tile` px when it
        is larger) with the `direction` generator; write the result to `target` (a PNG) as
        `cgfw translate --full-resolution [--tile N]` writes it. CgfwError when the file
        cannot be translated, saying why."""
        if direction not in self.generators:
            raise CgfwError(
                f"direction {direction!r}: this model learns {', '.join(self.directions)} only"
            )
        if tile is not None and tile < MIN_SIDE:
            raise CgfwError(
                f"tile {tile} px: give 0 (the whole image at once) or {MIN_SIDE} px or more"
            )
        generator = self.generators[direction]
        try:
            decoded = decode(image, generator.channels)
        except BadImage as exc:
            raise CgfwError(f"{image.name}: cannot be translated: {exc}") from None
        width, height = side_of(decoded)
        if min(width, height) < MIN_SIDE:
            raise CgfwError(
                f"{image.name}: {width}x{height} is under {MIN_SIDE} px on a side; give a "
                "larger image"
            )
        translator = Translator(generator.net, self.device, 1, False, tile)
        translator.add(target, decoded)
        translator.finish()
        return target

    def describe(self) -> str:
        generator = next(iter(self.generators.values()))
        return (
            f"{self.source.name}: model '{generator.resolved.model.name}', checkpoint "
            f"{generator.checkpoint.name} (iteration {generator.iteration}), on {self.device}"
        )


def load_demo(source: Path, which: str = LATEST, device: str = "auto") -> Demo:
    """Every direction the model of `source` (a run directory or a checkpoint file) learns,
    from its `which` checkpoint (latest, best or iter_N), on `device`."""
    dev = resolve_device(device, "--device")
    generators: dict[str, Generator] = {}
    for direction in DIRECTIONS:
        try:
            generator = load_generator(source, direction, which=which)
        except OneSided:
            continue
        generator.net.to(dev)
        generators[direction] = generator
    if not generators:
        raise CgfwError(f"{source}: its model learns no direction cgfw can translate")
    return Demo(source, generators, dev)


# Markdown's punctuation, escaped so a file name such as my_photo_1.png shows as written.
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~])")


def _plain(text: str) -> str:
    return _MARKDOWN.sub(r"\\\1", text)


class _Results:
    """The folder the page's translations are written to until Gradio has copied them into
    its cache; only the newest is kept (the page translates one image at a time)."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="cgfw-demo-"))
        weakref.finalize(self, shutil.rmtree, self.root, True)

    def fresh(self) -> Path:
        for old in self.root.iterdir():
            shutil.rmtree(old, ignore_errors=True)
        return Path(tempfile.mkdtemp(dir=self.root))


def build_app(demo: Demo, tile: int | None = None) -> gradio.Blocks:
    """The page: upload, direction, tile size (`tile` its initial value; 0 or None: the whole
    image at once), Translate; then the input and its translation side by side and the PNG to
    download. An upload that cannot be translated is named in the status line (elem_id
    "status") with the reason, and the server goes on."""
    gr = require_gradio()
    results = _Results()

    def run(path: str | None, direction: str, tile: float | None) -> tuple[Any, Any, Any, str]:
        if path is None:
            return None, None, None, "Upload an image first."
        source = Path(path)
        target = results.fresh() / f"{source.stem}_{direction}.png"
        start = time.perf_counter()
        try:
            demo.translate(source, direction, target, int(tile) if tile else None)
        except CgfwError as exc:
            return None, None, None, "**error:** " + _plain(str(exc))
        how = f"in tiles of {int(tile)} px" if tile else "whole"
        took = time.perf_counter() - start
        done = f"{source.name}: translated {direction} at full resolution, {how}, in {took:.1f} s"
        # The upload as it is, for the browser to show; one it cannot show (TIFF, .npy) is left out.
        shown = path if source.suffix.lower() in BROWSER_IMAGES else None
        return shown, str(target), str(target), _plain(done)

    with gr.Blocks(
        title=f"cgfw demo: {demo.source.name}",
        analytics_enabled=False,
        delete_cache=CACHE_LIFETIME,
    ) as app:
        gr.Markdown(f"## cgfw demo\n{_plain(demo.describe())}")
        with gr.Row():
            upload = gr.File(label="Image", type="filepath", elem_id="upload")
            with gr.Column():
                with gr.Row():
                    direction = gr.Radio(
                        demo.directions,
                        value=demo.directions[0],
                        label="Direction",
                        interactive=len(demo.directions) > 1,
                        elem_id="direction",
                    )
                    tiles = gr.Number(
                        value=tile or 0,
                        precision=0,
                        minimum=0,
                        label="Tile (px; 0: the whole image at once)",
                        elem_id="tile",
                    )
                button = gr.Button("Translate", variant="primary", elem_id="translate")
        status = gr.Markdown(elem_id="status")
        with gr.Row():
            preview = gr.Image(
                label="Input",
                type="filepath",
                interactive=False,
                height=IMAGE_HEIGHT,
                buttons=["fullscreen"],  # no share: it posts to Hugging Face
                elem_id="input",
            )
            result = gr.Image(
                label="Translation",
                type="filepath",
                format="png",
                interactive=False,
                height=IMAGE_HEIGHT,
                buttons=["download", "fullscreen"],  # no share: it posts to Hugging Face
                elem_id="result",
            )
        download = gr.File(label="Download (PNG)", interactive=False, elem_id="download")
        button.click(run, [upload, direction, tiles], [preview, result, download, status])
    return app


def launch(app: gradio.Blocks, host: str = HOST, port: int | None = None) -> str:
    """Start serving `app` in the background on host:port (port None: the first free one from
    7860); returns its URL. `app.close()` stops it."""
    try:
        _, url, _ = app.launch(
            server_name=host,
            server_port=port,
            share=False,
            prevent_thread_lock=True,
            quiet=True,
            ssr_mode=False,
            mcp_server=False,
            pwa=False,
            css=CSS,
        )
    except OSError:  # Gradio's own message names its launch() arguments, not our options
        if port is None:
            raise CgfwError(
                f"--host {host}: no free port from 7860 to 7959 there (or not this machine's "
                "address); give --port N"
            ) from None
        raise CgfwError(
            f"--port {port}: cannot serve on {host}:{port}, it is in use (or --host is not "
            "this machine's address); give another --port, or none for the first free one "
            "from 7860"
        ) from None
    return str(url)
