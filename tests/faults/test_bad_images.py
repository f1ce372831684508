"""The hostile-image corpus through every command that reads user images: `cgfw data check`,
`cgfw run` on a folder dataset and `cgfw translate`. Each refused file is skipped or refused with
one message naming it, never a traceback, and no decoder is ever asked for an oversized image
(decoding_guard): memory stays bounded because the limits are checked on headers."""

from __future__ import annotations

import io
import logging
import shutil
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import tifffile
from click.testing import CliRunner, Result
from PIL import Image, ImageFile

from cgfw.cli import main
from cgfw.images import decode, inspect
from cgfw.planes import read_array
from tests.conftest import TINY, make_folder_dataset, run_dirs
from tests.faults.bad_images import (
    BAD_SAMPLES,
    OVERSIZED,
    REFUSED,
    USABLE,
    bad_images,
    decoding_guard,
)

Cli = Callable[..., Result]


@pytest.fixture
def corpus(tmp_path: Path) -> list[Path]:
    return bad_images(tmp_path / "corpus")


def dataset_with_corpus(root: Path) -> Path:
    """The authors' layout of good images, with the corpus written into trainA/ (not copied:
    a copy would fill the sparse .npy in)."""
    make_folder_dataset(root, {"trainA": 2, "trainB": 3, "testA": 2, "testB": 2})
    bad_images(root / "trainA")
    return root


def test_the_guard_passes_good_decodes_and_flags_oversized_ones(
    corpus: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """decoding_guard itself: were it to break a good decode or miss a bomb, the tests above
    would pass for the wrong reason (cgfw turns a decoder's exception into a skipped file)."""
    folder = corpus[0].parent
    small = tmp_path / "small.tif"
    tifffile.imwrite(small, np.ones((3, 8, 8), np.uint16), photometric="minisblack")
    np.save(tmp_path / "small.npy", np.ones((8, 8), np.float32))
    with decoding_guard(monkeypatch) as over:
        assert read_array(small).channels == 3
        assert read_array(tmp_path / "small.npy").channels == 1
        assert decode(folder / "gray16.png", 1).channels == 1  # type: ignore[union-attr]
        assert over == []
        for decoder in (
            lambda: tifffile.imread(folder / "gray16_81mp.tif"),
            lambda: tifffile.TiffFile(folder / "rgb16_9000x9000.tif").series[0].asarray(),
            lambda: np.load(folder / "huge_81mp.npy"),
            lambda: Image.open(folder / "gray16_81mp.tif").load(),
        ):
            with pytest.raises(MemoryError, match="decoding_guard"):
                decoder()
    assert len(over) == 4, over


@pytest.mark.parametrize(
    ("name", "channels", "owner", "method", "detail"),
    [
        ("rgba.png", 3, Image, "open", "not an image that Pillow can read"),
        ("rgba.png", 3, ImageFile.ImageFile, "load", "cannot be decoded"),
        ("gray16.png", 1, ImageFile.ImageFile, "load", "cannot be decoded"),
        ("small.tif", 1, tifffile.TiffPageSeries, "asarray", "cannot be decoded"),
        ("small.npy", 1, np, "load", "cannot be decoded"),
    ],
)
def test_whatever_a_decoder_raises_the_file_is_skipped_with_the_reason(
    corpus: list[Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    channels: int,
    owner: object,
    method: str,
    detail: str,
) -> None:
    """Hostile files break Pillow, tifffile and numpy in more ways than OSError and ValueError
    (tifffile alone raises ZeroDivisionError and zlib.error on the corpus); a type none of them
    is known for stands for the rest."""
    shutil.copy(corpus[0].parent / "rgba.png", tmp_path / "rgba.png")
    shutil.copy(corpus[0].parent / "gray16.png", tmp_path / "gray16.png")
    tifffile.imwrite(tmp_path / "small.tif", np.ones((8, 8), np.uint16))
    np.save(tmp_path / "small.npy", np.ones((8, 8), np.float32))

    def broken(*args: object, **kwargs: object) -> None:
        raise struct.error("unpack requires a buffer of 4 bytes")

    monkeypatch.setattr(owner, method, broken)
    finding = inspect(tmp_path / name, 16, channels)
    assert finding.status == "skipped", finding
    assert f"{detail} (unpack requires a buffer of 4 bytes)" in finding.detail, finding


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_every_file_is_judged_from_its_header_first_whatever_the_channels(
    corpus: list[Path], channels: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    with decoding_guard(monkeypatch) as over:
        findings = {p.name: inspect(p, 16, channels) for p in corpus}
    assert over == []
    for name in OVERSIZED:
        if channels == 3 and name in USABLE:
            continue  # a multi-page TIFF: Pillow reads its first page only, as RGB
        assert findings[name].status == "skipped", findings[name]
        assert "limit" in findings[name].detail, findings[name]
    for name in REFUSED:
        assert findings[name].status == "skipped", findings[name]
    assert "never unpickles" in findings["object_dtype.npy"].detail
    assert "truncated" in findings["short_data.npy"].detail


def test_data_check_names_each_refused_file_and_decodes_no_bomb(
    tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = dataset_with_corpus(tmp_path / "set")
    with decoding_guard(monkeypatch) as over:
        result = cli("data", "check", root, "--crop-size", "16")
    assert over == []
    assert result.exit_code == 1, result.output  # usable, but files would be skipped
    assert "Traceback" not in result.output
    for name in REFUSED:
        assert f"skipped: {root / 'trainA' / name}" in result.output, name
    for name in USABLE:
        assert f"skipped: {root / 'trainA' / name}" not in result.output, name


@dataclass
class CorpusRun:
    root: Path  # the dataset: good images, and the corpus in trainA/
    result: Result
    log: str  # what cgfw.data warned
    over: list[str]  # decodes past the limits (decoding_guard)
    run_dir: Path


@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory: pytest.TempPathFactory) -> CorpusRun:
    """One tiny `cgfw run` on a folder dataset holding the corpus; its generator is also the
    one the translate test uses (a second training run would double the time)."""
    tmp = tmp_path_factory.mktemp("corpus_run")
    root = dataset_with_corpus(tmp / "set")
    recipe = tmp / "folder.toml"
    recipe.write_text(  # data.cache decodes every image up front: all of the corpus is read
        TINY.format(out=tmp / "runs").replace(
            'name = "emoji"', f'name = "folder"\nroot = "{root}"\ncache = true'
        ),
        encoding="utf-8",
    )
    log = io.StringIO()
    handler = logging.StreamHandler(log)
    logging.getLogger("cgfw.data").addHandler(handler)
    try:
        with pytest.MonkeyPatch.context() as monkeypatch, decoding_guard(monkeypatch) as over:
            result = CliRunner().invoke(main, ["run", str(recipe)], catch_exceptions=False)
    finally:
        logging.getLogger("cgfw.data").removeHandler(handler)
    runs = run_dirs(tmp / "runs")
    return CorpusRun(root, result, log.getvalue(), over, runs[0] if runs else tmp / "none")


def test_a_run_on_a_folder_holding_the_corpus_skips_it_and_trains(corpus_run: CorpusRun) -> None:
    assert corpus_run.over == []
    assert corpus_run.result.exit_code == 0, corpus_run.result.output
    assert "Traceback" not in corpus_run.result.output + corpus_run.log
    assert f"skipped {len(REFUSED - BAD_SAMPLES)} unusable file(s)" in corpus_run.log
    for name in BAD_SAMPLES:
        where = corpus_run.root / "trainA" / name
        assert f"skipping {where}: cannot be decoded" in corpus_run.log, name
    assert (corpus_run.run_dir / "checkpoints" / "latest.pt").exists()


def test_translate_refuses_each_bad_file_by_name_and_translates_the_rest(
    corpus_run: CorpusRun,
    corpus: list[Path],
    tmp_path: Path,
    cli: Cli,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run, out = corpus_run.run_dir, tmp_path / "out"
    with decoding_guard(monkeypatch) as over:
        for path in corpus:
            result = cli("translate", run, path, out / f"{path.stem}.png")
            assert "Traceback" not in result.output
            if path.name in REFUSED:
                assert result.exit_code == 2, (path.name, result.output)
                assert f"{path}: cannot be translated" in result.output, path.name
            else:
                assert result.exit_code == 0, (path.name, result.output)
        folder = cli("translate", run, corpus[0].parent, tmp_path / "folder")
    assert over == []
    assert folder.exit_code == 0, folder.output
    assert f"skipped {len(REFUSED)} file(s)" in folder.output
    assert f"translated {len(USABLE)} image(s)" in folder.output
