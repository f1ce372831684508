"""cgfw pretrained NAME against a local HTTP server (127.0.0.1 only, tests/cli/test_data.py's)
that serves a generator file written here in the authors' format: a tiny ResnetGenerator (the
authors' files are 9 blocks of 64 filters; the import reads the settings from the file). The
download is held to the hash recorded on its first download, kept in the cache, and becomes a
run directory that translates A -> B and refuses B -> A."""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner, Result
from PIL import Image
from torch import nn

import cgfw
from cgfw.cli import main
from cgfw.errors import CgfwError
from cgfw.plugin.loader import load_plugins
from cgfw.tools.download import RECORD
from cgfw_paper.pretrained import PUBLISHED, URL_ENV
from tests.cli.test_data import Served, no_proxy, serving
from tests.cli.test_startup import _imports
from tests.plugins.test_import_weights import authors_file, authors_resnet, ours

NAME = "horse2zebra"
KEY = f"pretrained/{NAME}.pth"
TINY = {"n_blocks": 2, "ngf": 8, "norm": "instance", "dropout": False}
# Small networks and data for what the file does not decide (paper_default's are 256 px).
SETS = (
    *("--set", "discriminator.ndf=4"),
    *("--set", "data.load_size=32"),
    *("--set", "data.crop_size=32"),
    *("--set", "train.num_workers=0"),
)


@dataclass
class Site:
    served: Served
    url: str
    generator: nn.Module  # what the served file holds
    file: bytes


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny networks: threads only wait for each other on 2 cores
    folder = tmp_path_factory.mktemp("authors")
    generator = ours(load_plugins(), "generator", "resnet", **TINY)
    # The authors' released files: the old (pre-1.6) format, with stale InstanceNorm buffers.
    path = authors_file(folder / "latest_net_G.pth", generator, authors_resnet(8, 2), legacy=True)
    with pytest.MonkeyPatch.context() as mp, serving() as (served, url):
        no_proxy(mp)
        yield Site(served, url, generator, path.read_bytes())
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def fresh_server(site: Site, monkeypatch: pytest.MonkeyPatch) -> Served:
    """Each test starts with the generator served whole and no request seen."""
    monkeypatch.setenv(URL_ENV, site.url)
    site.served.files = {f"{NAME}.pth": site.file}
    site.served.ranges.clear()
    site.served.cut_after = site.served.fail_with = None
    return site.served


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This test's own cache folder (and record of hashes), empty."""
    monkeypatch.setenv("CGFW_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@dataclass
class First:
    """The module's one real first download, its run and the cache it left."""

    run: Path
    cache: Path
    result: Result


def tiny_dataset(root: Path) -> Path:
    for split in ("trainA", "trainB", "testA", "testB"):
        (root / split).mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (32, 32), (40 * i, 200, 90)).save(root / split / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def first(site: Site, tmp_path_factory: pytest.TempPathFactory) -> Iterator[First]:
    base = tmp_path_factory.mktemp("first")
    data = tiny_dataset(base / "data")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(URL_ENV, site.url)
        mp.setenv("CGFW_CACHE", str(base / "cache"))
        site.served.files = {f"{NAME}.pth": site.file}
        result = CliRunner().invoke(
            main,
            ["pretrained", NAME, "--out", str(base / "run"), *SETS, "--set", f"data.root={data}"],
            catch_exceptions=False,
        )
    site.served.ranges.clear()  # the test that set this up counts only its own requests
    yield First(base / "run", base / "cache", result)


def copy_cache(first: First, cache: Path) -> Path:
    shutil.copytree(first.cache, cache)
    return cache


def record(cache: Path) -> dict[str, dict[str, object]]:
    data: dict[str, dict[str, object]] = json.loads((cache / RECORD).read_text())
    return data


def files_in(cache: Path) -> list[str]:
    folder = cache / "pretrained"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def error(result: Result) -> str:
    """The one error line (the console wraps it), after checking it is one."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    return " ".join(result.stderr.split())


# --- the first download, the run it makes, and what the run does -----------------------------


def test_the_first_download_is_recorded_kept_and_imported(first: First, site: Site) -> None:
    assert first.result.exit_code == 0, first.result.output
    assert files_in(first.cache) == [f"{NAME}.pth"]  # kept, no .part left
    assert (first.cache / "pretrained" / f"{NAME}.pth").read_bytes() == site.file
    entry = record(first.cache)[KEY]
    assert entry["size"] == len(site.file)
    assert entry["sha256"] == hashlib.sha256(site.file).hexdigest()
    assert entry["url"] == f"{site.url}{NAME}.pth"
    assert "translate A -> B with: cgfw translate" in first.result.stdout
    assert "B -> A translation is untrained" in first.result.stderr
    recipe = cgfw.load(first.run).recipe
    assert recipe["generator"] | TINY == recipe["generator"]  # read from the file
    meta = json.loads((first.run / "run.json").read_text())
    assert [i["network"] for i in meta["imported"]] == ["g_ab"]


def test_the_run_translates_as_the_authors_generator(first: First, site: Site) -> None:
    run = cgfw.load(first.run, device="cpu")
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(3)) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(run.translate(x), site.generator(x), atol=1e-6)
    image = run.translate(Image.new("RGB", (48, 32), (10, 120, 200)))
    assert image.mode == "RGB" and min(image.size) == 32


def test_b_to_a_is_refused_as_untrained(
    first: First, tmp_path: Path, cli: Callable[..., Result]
) -> None:
    with pytest.raises(CgfwError, match=r"imported without g_ba weights .* b2a is untrained"):
        cgfw.load(first.run, device="cpu").translate(Image.new("RGB", (32, 32)), "b2a")
    Image.new("RGB", (32, 32)).save(tmp_path / "in.png")
    back = cli(
        "translate", first.run, tmp_path / "in.png", tmp_path / "out.png", "--direction", "b2a"
    )
    message = error(back)
    assert "use --direction a2b" in message and "cgfw run --resume" in message
    assert not (tmp_path / "out.png").exists()
    assert error(cli("export", first.run, "--direction", "b2a"))
    assert cli("translate", first.run, tmp_path / "in.png", tmp_path / "out.png").exit_code == 0


def test_eval_scores_a_to_b_and_says_why_not_b_to_a(
    first: First, cli: Callable[..., Result]
) -> None:
    scored = cli("eval", first.run, "--metrics", "psnr", "--device", "cpu")
    assert scored.exit_code == 0, scored.output
    assert "b2a is untrained" in " ".join(scored.stderr.split())
    assert "scored a -> b only" in " ".join(scored.stderr.split())
    metrics = cgfw.load(first.run).metrics
    assert metrics is not None and "a2b" in metrics and "b2a" not in metrics


def test_a_second_call_uses_the_cached_file(
    first: First, cache: Path, tmp_path: Path, fresh_server: Served, cli: Callable[..., Result]
) -> None:
    copy_cache(first, cache)
    again = cli("pretrained", NAME, "--out", tmp_path / "again", *SETS)
    assert again.exit_code == 0, again.output
    assert "downloaded before" in again.stderr
    assert fresh_server.ranges == []  # nothing was requested
    assert record(cache) == record(first.cache)


def test_an_existing_run_directory_is_refused_before_any_download(
    first: First, cache: Path, fresh_server: Served, cli: Callable[..., Result]
) -> None:
    message = error(cli("pretrained", NAME, "--out", first.run))
    assert f"{first.run}: already a run directory" in message and "--out" in message
    assert fresh_server.ranges == [] and files_in(cache) == []


# --- a download that fails leaves nothing behind --------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("failure", ["404", "500", "refused"])
def test_a_failed_download_is_one_error(
    failure: str,
    cache: Path,
    tmp_path: Path,
    fresh_server: Served,
    monkeypatch: pytest.MonkeyPatch,
    cli: Callable[..., Result],
) -> None:
    if failure == "404":
        fresh_server.files = {}
    elif failure == "500":
        fresh_server.fail_with = 500
    else:
        monkeypatch.setenv(URL_ENV, f"http://127.0.0.1:{free_port()}/models")
    message = error(cli("pretrained", NAME, "--out", tmp_path / "run"))
    expected = {
        "404": "not found (HTTP 404)",
        "500": "the server answered HTTP 500",
        "refused": "cannot download",
    }
    assert f"{NAME}.pth: {expected[failure]}" in message
    assert not (tmp_path / "run").exists()
    assert files_in(cache) == [] and not (cache / RECORD).exists()


def test_a_truncated_download_is_refused_then_resumed(
    cache: Path, tmp_path: Path, site: Site, fresh_server: Served, cli: Callable[..., Result]
) -> None:
    fresh_server.cut_after = 1000  # the connection drops after 1,000 bytes of the file
    message = error(cli("pretrained", NAME, "--out", tmp_path / "run"))
    assert f"incomplete, 1000 of {len(site.file)} bytes received" in message
    assert not (tmp_path / "run").exists()
    assert files_in(cache) == [f"{NAME}.pth.part"]  # only the part, to resume; no NAME.pth
    assert not (cache / RECORD).exists()
    fresh_server.cut_after = None
    resumed = cli("pretrained", NAME, "--out", tmp_path / "run", *SETS)
    assert resumed.exit_code == 0, resumed.output
    assert fresh_server.ranges == [None, "bytes=1000-"]
    assert (cache / "pretrained" / f"{NAME}.pth").read_bytes() == site.file


# --- a file that is not the one first downloaded ---------------------------------------------


def test_a_cached_file_changed_since_is_refused_and_deleted(
    first: First, cache: Path, tmp_path: Path, fresh_server: Served, cli: Callable[..., Result]
) -> None:
    copy_cache(first, cache)
    kept = cache / "pretrained" / f"{NAME}.pth"
    data = kept.read_bytes()
    kept.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # one bit altered in the cache
    message = error(cli("pretrained", NAME, "--out", tmp_path / "run", *SETS))
    assert f"{kept}: not the file first downloaded as {KEY}" in message
    assert "altered" in message and "--accept-new-hash" in message
    assert not (tmp_path / "run").exists() and files_in(cache) == []
    assert record(cache) == record(first.cache)
    assert fresh_server.ranges == []


def test_a_changed_server_file_is_refused_until_accepted(
    first: First,
    cache: Path,
    tmp_path: Path,
    site: Site,
    fresh_server: Served,
    cli: Callable[..., Result],
) -> None:
    copy_cache(first, cache)
    (cache / "pretrained" / f"{NAME}.pth").unlink()  # the record stays: downloaded afresh
    other = ours(load_plugins(), "generator", "resnet", **TINY)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(0.5)
    changed = authors_file(tmp_path / "latest_net_G.pth", other, authors_resnet(8, 2))
    fresh_server.files = {f"{NAME}.pth": changed.read_bytes()}
    message = error(cli("pretrained", NAME, "--out", tmp_path / "run", *SETS))
    assert "the server's file" in message and "changed" in message
    assert f"run the command again with --accept-new-hash (or delete the '{KEY}' entry" in message
    assert not (tmp_path / "run").exists() and files_in(cache) == []  # the part was deleted
    assert record(cache) == record(first.cache)

    accepted = cli("pretrained", NAME, "--out", tmp_path / "run", *SETS, "--accept-new-hash")
    assert accepted.exit_code == 0, accepted.output
    assert record(cache)[KEY]["sha256"] != record(first.cache)[KEY]["sha256"]
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(cgfw.load(tmp_path / "run").translate(x), other(x), atol=1e-6)


def test_a_served_file_that_is_no_generator_is_not_kept(
    cache: Path, tmp_path: Path, fresh_server: Served, cli: Callable[..., Result]
) -> None:
    torch.save({"weight": torch.zeros(2)}, tmp_path / "other.pth")
    fresh_server.files = {f"{NAME}.pth": (tmp_path / "other.pth").read_bytes()}
    message = error(cli("pretrained", NAME, "--out", tmp_path / "run"))
    assert "no key 'model.1.weight', so not the authors' ResNet generator" in message
    assert "was deleted and its hash not recorded" in message
    assert files_in(cache) == [] and not (cache / RECORD).exists()
    assert not (tmp_path / "run").exists()


# --- names ------------------------------------------------------------------------------------


def test_the_list_names_the_authors_eighteen_without_torch() -> None:
    listed, imported = _imports("pretrained", "--list")
    assert len(PUBLISHED) == 18
    for name in PUBLISHED:
        assert name in listed
    assert imported["heavy"] == []


def test_an_unknown_name_suggests_the_closest(
    cache: Path, fresh_server: Served, cli: Callable[..., Result]
) -> None:
    message = error(cli("pretrained", "horse2zebr"))
    assert "unknown pretrained model 'horse2zebr'; did you mean 'horse2zebra'?" in message
    assert fresh_server.ranges == []
