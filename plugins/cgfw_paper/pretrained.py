"""`cgfw pretrained NAME`: the authors' published CycleGAN generators by name, from their server,
as their scripts/download_cyclegan_model.sh fetches them (NAME.pth under
cyclegan/pretrained_models/, one generator's state_dict each), made into a run directory by
import_weights, so translate, eval, export and cgfw.load use them.

The download is cgfw's (cgfw.fetch: resumed, size-checked; cgfw.check_known: held to the
SHA-256 recorded on the first download). The file is kept in the cache folder
(CACHE/pretrained/NAME.pth), so the next `cgfw pretrained NAME` checks it against the record
and downloads nothing. Each file is one generator, A -> B in the name's direction: the run's
g_ba and discriminators stay at their initialisation, and translate refuses b2a until the run
is trained (cgfw.session.load reads which networks the import brought).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cgfw import Known, RunDir, cache_dir, check_known, console, fetch, server_url
from cgfw.errors import CgfwError, did_you_mean

if TYPE_CHECKING:  # torch: imported when a model is imported, not to list the names
    from cgfw_paper.import_weights import Imported

# The address in the authors' scripts/download_cyclegan_model.sh.
BASE_URL = "http://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models"
URL_ENV = "CGFW_PRETRAINED_URL"  # a mirror, or a local server in the tests
RUNS = Path("runs") / "pretrained"


@dataclass(frozen=True)
class Published:
    """One of the authors' models: what it translates, and the authors' dataset (`cgfw data
    download`) whose testA/testB hold its A and B, when there is one."""

    a: str
    b: str
    dataset: str | None = None

    @property
    def direction(self) -> str:
        return f"{self.a} -> {self.b}"


# The 18 names of the authors' script, in its order.
PUBLISHED: dict[str, Published] = {
    "apple2orange": Published("apple", "orange", "apple2orange"),
    "orange2apple": Published("orange", "apple"),
    "summer2winter_yosemite": Published("summer", "winter", "summer2winter_yosemite"),
    "winter2summer_yosemite": Published("winter", "summer"),
    "horse2zebra": Published("horse", "zebra", "horse2zebra"),
    "zebra2horse": Published("zebra", "horse"),
    "monet2photo": Published("Monet painting", "photo", "monet2photo"),
    "style_monet": Published("photo", "Monet painting"),
    "style_cezanne": Published("photo", "Cezanne painting"),
    "style_ukiyoe": Published("photo", "ukiyo-e print"),
    "style_vangogh": Published("photo", "Van Gogh painting"),
    "sat2map": Published("aerial photo", "map"),
    "map2sat": Published("map", "aerial photo"),
    "cityscapes_photo2label": Published("street photo", "label map", "cityscapes"),
    "cityscapes_label2photo": Published("label map", "street photo"),
    "facades_photo2label": Published("facade photo", "label map"),
    "facades_label2photo": Published("label map", "facade photo"),
    "iphone2dslr_flower": Published("iPhone flower", "DSLR flower", "iphone2dslr_flower"),
}


def check_name(name: str) -> Published:
    """Only known names: they become a URL and a file name, so nothing else may pass."""
    if name not in PUBLISHED:
        raise CgfwError(
            f"unknown pretrained model '{name}'{did_you_mean(name, PUBLISHED)} "
            "(`cgfw pretrained --list` lists them)"
        )
    return PUBLISHED[name]


def cached(name: str) -> Path:
    return cache_dir() / "pretrained" / f"{name}.pth"


def obtain(name: str, accept_new_hash: bool = False) -> tuple[Path, Known]:
    """NAME.pth in the cache, downloaded unless there, and checked against its recorded hash."""
    check_name(name)
    file = cached(name)
    url = f"{server_url(URL_ENV, BASE_URL)}/{name}.pth"
    key = f"pretrained/{name}.pth"
    if file.is_file():
        console.print(f"using {file}, downloaded before")
        return file, check_known(key, file, url, accept_new_hash)
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CgfwError(
            f"{file.parent}: cannot create it ({exc.strerror}); set CGFW_CACHE to another folder"
        ) from None
    part = file.with_name(file.name + ".part")
    console.print(f"downloading {url}")
    fetch(url, part, URL_ENV)
    known = check_known(key, part, url, accept_new_hash)
    os.replace(part, file)  # complete and checked: the cache never holds half a file
    return file, known


def pretrained(
    name: str,
    out_dir: Path | None = None,
    overrides: Sequence[str] = (),
    accept_new_hash: bool = False,
) -> Imported:
    """The authors' generator NAME as a run directory (default runs/pretrained/NAME), its
    recipe paper_default with the generator read from the file and `overrides` on top."""
    from cgfw_paper.import_weights import import_weights, read_sources

    published = check_name(name)
    out_dir = out_dir if out_dir is not None else RUNS / name
    run = RunDir(out_dir)
    if run.is_run() or run.checkpoints.exists():  # before a download that could not be used
        raise CgfwError(
            f"{out_dir}: already a run directory; use it as it is, or choose another with --out"
        )
    file, known = obtain(name, accept_new_hash)
    spec = f"G={file}"
    try:
        read_sources([spec])  # the authors' ResNet generator, or an error naming the file
    except CgfwError as exc:
        if not known.new:
            raise
        file.unlink(missing_ok=True)  # never recorded and not a generator: nothing to keep
        raise CgfwError(f"{exc}\n{file} was deleted and its hash not recorded") from None
    known.remember()  # a real generator: later downloads are held to its hash
    root = f"datasets/{published.dataset or name}"
    return import_weights([spec], out_dir, "paper_default", [f'data.root="{root}"', *overrides])
