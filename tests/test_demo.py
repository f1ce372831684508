"""`cgfw demo`: the page in a real browser (headless Chromium driven by Selenium) against one
demo server of the module's tiny run, its translations compared with `cgfw translate`'s pixel
for pixel; and the command line, the one-sided case and a missing extra without a browser.

The browser tests skip when Gradio, Selenium, Chromium or chromedriver is missing, and fail
instead with CGFW_REQUIRE_BROWSER=1 (.ci/run sets it once scripts/install_chromium.sh has
installed Debian's chromium and chromium-driver: there they must run)."""

from __future__ import annotations

import base64
import os
import shutil
import socket
import struct
import sys
import urllib.request
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import Result
from PIL import Image

from cgfw.session import load as session_load
from cgfw.tools import tiles

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
# Gradio's queue warns of pandas deprecations in its own code, from the server's threads.
pytestmark = pytest.mark.filterwarnings("ignore::Warning:gradio.queueing")


def _missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    for module, what in (("gradio", "the demo extra (gradio)"), ("selenium", "selenium")):
        try:
            __import__(module)
        except ImportError:
            return f"{what} is not installed: pip install -e '.[dev]'"
    for program in ("chromium", "chromedriver"):
        if shutil.which(program) is None:
            return f"{program} is not on PATH: scripts/install_chromium.sh installs it (root)"
    return None


@pytest.fixture(scope="session")
def browser_ready() -> None:
    """Skips (or fails, with CGFW_REQUIRE_BROWSER=1) before the tiny run is trained."""
    reason = _missing()
    if reason is not None:
        if os.environ.get("CGFW_REQUIRE_BROWSER") == "1":
            pytest.fail(f"CGFW_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def outbound() -> Iterator[list[str]]:
    """Every host this process looks up or connects to beyond loopback while the module runs
    (the demo server runs in it, in threads)."""
    seen: list[str] = []
    lookup, connect = socket.getaddrinfo, socket.socket.connect

    def watched_lookup(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host is not None and str(host) not in LOOPBACK:
            seen.append(f"lookup {host}")
        return lookup(host, *args, **kwargs)

    def watched_connect(self: socket.socket, address: Any) -> Any:
        if isinstance(address, tuple) and str(address[0]) not in LOOPBACK:
            seen.append(f"connect {address[0]}")
        return connect(self, address)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket, "getaddrinfo", watched_lookup)
        mp.setattr(socket.socket, "connect", watched_connect)
        yield seen


@pytest.fixture(scope="module")
def server(browser_ready: None, trained_run: Path, outbound: list[str]) -> Iterator[str]:
    """The demo of the tiny run, served on a free 127.0.0.1 port for the whole module."""
    from cgfw.tools.demo import build_app, launch, load_demo

    app = build_app(load_demo(trained_run, device="cpu"))
    url = launch(app, "127.0.0.1", _free_port())
    try:
        yield url
    finally:
        app.close()


@pytest.fixture(scope="module")
def browser(server: str) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(shutil.which("chromium"))
    for flag in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root, where Chromium's sandbox refuses to start
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,1000",
        # Chromium's own calls home (updates, sync, field trials): this machine only.
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ):
        options.add_argument(flag)
    # The driver's path given: Selenium Manager (which downloads drivers) is never run.
    driver = webdriver.Chrome(service=Service(str(shutil.which("chromedriver"))), options=options)
    driver.set_script_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def page(browser: Any, server: str) -> Any:
    """A fresh page of the demo, loaded."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(server)
    WebDriverWait(browser, 30).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "#upload input[type=file]")
    )
    return browser


def _upload(page: Any, path: Path) -> None:
    """Put `path` into the page's file field (clearing the one there first)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    if not page.find_elements(By.CSS_SELECTOR, "#upload input[type=file]"):
        page.find_element(By.CSS_SELECTOR, "#upload button[aria-label=Clear]").click()
    field = WebDriverWait(page, 10).until(
        lambda d: d.find_element(By.CSS_SELECTOR, "#upload input[type=file]")
    )
    field.send_keys(str(path.resolve()))


def _translate(page: Any, expect: str) -> str:
    """Press Translate; the status line once it says `expect`."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    page.find_element(By.CSS_SELECTOR, "#translate").click()
    WebDriverWait(page, 30).until(lambda d: expect in _status(d))
    return _status(page)


def _status(page: Any) -> str:
    from selenium.webdriver.common.by import By

    return str(page.find_element(By.CSS_SELECTOR, "#status").text)


def _fetched(page: Any, url: str) -> bytes:
    """`url`'s bytes as the page fetches them."""
    script = """
        const done = arguments[arguments.length - 1];
        fetch(arguments[0]).then(r => r.arrayBuffer()).then(buffer => {
            let text = "";
            for (const b of new Uint8Array(buffer)) text += String.fromCharCode(b);
            done(btoa(text));
        }, error => done("error: " + error));
    """
    encoded = page.execute_async_script(script, url)
    assert not encoded.startswith("error"), encoded
    return base64.b64decode(encoded)


def _results(page: Any) -> tuple[bytes, bytes]:
    """The download link's file and the shown translation's, as the browser gets them."""
    from selenium.webdriver.common.by import By

    link = page.find_element(By.CSS_SELECTOR, "#download a[data-testid=download-link]")
    shown = page.find_element(By.CSS_SELECTOR, "#result img")
    return _fetched(page, link.get_attribute("href")), _fetched(page, shown.get_attribute("src"))


def _pixels(data: bytes | Path) -> np.ndarray:
    if isinstance(data, bytes):
        assert data.startswith(b"\x89PNG\r\n\x1a\n"), "not a PNG"
        import io

        data = io.BytesIO(data)  # type: ignore[assignment]
    with Image.open(data) as image:
        return np.asarray(image.convert("RGB"))


def _noise(path: Path, width: int, height: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)
    return path


def _huge_png(path: Path, side: int) -> Path:
    """A PNG whose header declares side x side pixels, with no pixel data: a decompression
    bomb is refused from its header, before anything is decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))
    return path


def test_the_page_translates_an_upload_as_cgfw_translate_does(
    page: Any, trained_run: Path, tmp_path: Path, cli: Callable[..., Result]
) -> None:
    source = _noise(tmp_path / "photo_1.png", 44, 36, seed=1)
    _upload(page, source)
    status = _translate(page, "photo_1.png: translated a2b")
    assert "whole" in status
    downloaded, shown = _results(page)
    assert downloaded == shown  # the picture on the page is the file offered
    expected = tmp_path / "expected.png"
    result = cli("translate", trained_run, source, expected, "--full-resolution")
    assert result.exit_code == 0, result.output
    assert np.array_equal(_pixels(downloaded), _pixels(expected))


def test_the_page_translates_in_tiles_as_translate_tile_does(
    page: Any,
    trained_run: Path,
    tmp_path: Path,
    cli: Callable[..., Result],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from selenium.webdriver.common.by import By

    tiled: list[int] = []
    real = tiles.translate_tiled

    def counted(net: Any, image: Any, tile: int) -> Any:
        tiled.append(tile)
        return real(net, image, tile)

    monkeypatch.setattr(tiles, "translate_tiled", counted)  # the server runs in this process
    source = _noise(tmp_path / "wide.png", 72, 40, seed=2)
    _upload(page, source)
    field = page.find_element(By.CSS_SELECTOR, "#tile input")
    field.clear()
    field.send_keys("16")
    page.find_element(By.CSS_SELECTOR, "#direction input[value=b2a]").click()
    status = _translate(page, "wide.png: translated b2a")
    assert "in tiles of 16 px" in status
    assert tiled == [16], "the page did not translate in tiles"
    downloaded, _ = _results(page)
    expected = tmp_path / "expected.png"
    args = ("--full-resolution", "--tile", 16, "--direction", "b2a")
    result = cli("translate", trained_run, source, expected, *args)
    assert result.exit_code == 0, result.output
    assert tiled == [16, 16]
    assert np.array_equal(_pixels(downloaded), _pixels(expected))


def test_a_bad_upload_shows_one_message_and_the_server_goes_on(page: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    notes = tmp_path / "notes.txt"
    notes.write_text("not an image\n", encoding="utf-8")
    _upload(page, notes)
    status = _translate(page, "notes.txt")
    assert status == "error: notes.txt: cannot be translated: not an image that Pillow can read"
    _upload(page, _huge_png(tmp_path / "bomb.png", 9000))
    status = _translate(page, "bomb.png")
    assert status == "error: bomb.png: cannot be translated: 9000x9000 is over the 64 MP limit"
    # The message is the page's own: no Gradio error popup, which an exception would raise.
    assert page.find_elements(By.CSS_SELECTOR, "[data-testid=toast-body]") == []
    _upload(page, _noise(tmp_path / "after.png", 32, 32, seed=3))
    assert "after.png: translated a2b" in _translate(page, "after.png")


def test_the_page_offers_only_the_directions_the_model_learns(
    trained_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gradio = pytest.importorskip("gradio", reason="the demo extra (gradio) is not installed")
    from cgfw.tools import demo

    def one_sided(source: Path, direction: str, *args: Any, **kwargs: Any) -> Any:
        if direction == "b2a":  # what load_generator says of a CUT run (tests/test_api.py)
            raise session_load.OneSided("--direction b2a: model 'forward' learns a2b only")
        return session_load.load_generator(source, direction, *args, **kwargs)

    monkeypatch.setattr(demo, "load_generator", one_sided)
    loaded = demo.load_demo(trained_run, device="cpu")
    assert loaded.directions == ["a2b"]
    app = demo.build_app(loaded)
    (radio,) = [b for b in app.blocks.values() if isinstance(b, gradio.Radio)]
    assert [value for _, value in radio.choices] == ["a2b"]
    assert radio.interactive is False


def test_without_gradio_the_command_says_how_to_install_it(
    trained_run: Path, cli: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "gradio", None)  # import gradio raises ImportError
    result = cli("demo", trained_run)
    assert result.exit_code == 2
    assert "pip install 'cgfw[demo]'" in result.output
    assert "Traceback" not in result.output


def test_the_command_serves_on_127_0_0_1_and_prints_its_url(
    trained_run: Path, cli: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    gradio = pytest.importorskip("gradio", reason="the demo extra (gradio) is not installed")
    port = _free_port()
    answered: list[int] = []

    def visit_then_stop(app: Any) -> None:  # instead of waiting for Ctrl-C
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30) as response:
            answered.append(response.status)

    monkeypatch.setattr(gradio.Blocks, "block_thread", visit_then_stop)
    result = cli("demo", trained_run, "--port", port, "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert f"serving on http://127.0.0.1:{port}/" in result.output
    assert answered == [200]


def test_a_port_in_use_is_one_message(trained_run: Path, cli: Callable[..., Result]) -> None:
    pytest.importorskip("gradio", reason="the demo extra (gradio) is not installed")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = cli("demo", trained_run, "--port", port, "--device", "cpu")
    assert result.exit_code == 2
    assert f"--port {port}: cannot serve on 127.0.0.1:{port}, it is in use" in result.output
    assert "launch()" not in result.output  # Gradio's advice names its own arguments


def test_nothing_reaches_beyond_this_machine(server: str, outbound: list[str]) -> None:
    """Gradio's analytics and version check are off and there is no share link: the server
    (started in this process for the module) looked up and connected to loopback only."""
    assert outbound == []
