#!/usr/bin/env python3
"""Build the embedded Noto -> Twemoji emoji dataset shipped with ``cgfw_paper``.

The dataset is a small, self-contained unpaired/paired image-translation
benchmark: domain A is Google's Noto Emoji style, domain B is the Twemoji
style.  Both come from the ``emoji-datasource-*`` npm packages of the
emoji-data project, which ship the same emoji as aligned 64x64 RGBA PNGs named
by code point (e.g. ``1f600.png``, ``1f468-200d-1f469.png``).

What this script does:

1. ``npm pack`` both pinned packages into a temporary directory and check each
   tarball against npm's sha512 integrity and a sha256 pinned below.
2. Read the per-emoji PNGs straight out of the tarballs into memory (nothing is
   extracted to disk, so member paths can never escape anywhere).
3. Keep emoji present in BOTH packages whose code points contain no skin-tone
   modifier (U+1F3FB..U+1F3FF).
4. Composite every image onto an opaque white background (RGBA -> RGB) and,
   if ``--tile`` is below 64, downscale it.
5. Write ``noto.webp`` and ``twemoji.webp`` (RGB atlases; tile ``i`` of both is
   the same emoji, at row ``i // columns`` and column ``i % columns``),
   ``index.json`` (tile order, per-emoji split, source and file hashes),
   licence/attribution files and a README.

Splits are assigned per *base* code point (the first code point of the file
name), from a sha256 of that code point: about 10% of bases go to ``test``, the
rest are divided evenly between ``train_a`` (used for the Noto domain) and
``train_b`` (used for the Twemoji domain), so the two training domains hold
disjoint emoji.  Both atlases still contain every emoji, so paired training
and held-out paired evaluation are possible too.

The output is deterministic: running the script twice with the same Pillow and
zlib gives byte-identical files.  It also prints the "do-nothing" baseline,
i.e. the mean PSNR between the Noto and Twemoji tile of each emoji.

Usage (from the repository root)::

    python scripts/build_emoji_dataset.py [--out DIR] [--tile N]

Requires ``npm`` on PATH and Pillow.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import math
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import PIL
from PIL import Image, ImageChops, features

DEFAULT_OUT = "plugins/cgfw_paper/data/emoji"
SCRIPT_PATH = "scripts/build_emoji_dataset.py"
SOURCE_TILE = 64  # size of the PNGs inside the npm packages
MIN_TILE = 8
INDEX_FORMAT = 1
WHITE = (255, 255, 255)
SKIN_TONE_MODIFIERS = range(0x1F3FB, 0x1F3FF + 1)
MAX_PNG_BYTES = 1 << 20  # a 64x64 emoji PNG is a few KiB; refuse anything huge
SPLIT_SALT = "cgfw-emoji-split-v1:"
TEST_PERCENT = 10
SPLIT_NAMES = ("train_a", "train_b", "test")

# File stem of one emoji image: lowercase hex code points joined by '-'.
EMOJI_ID_RE = re.compile(r"[0-9a-f]{4,6}(?:-[0-9a-f]{4,6})*")


@dataclass(frozen=True)
class Source:
    """One pinned npm package holding one emoji style."""

    key: str  # dataset-side name: "noto" or "twemoji"
    package: str  # npm package name
    version: str
    image_set: str  # directory under package/img/
    tarball_sha256: str  # pinned hash of the `npm pack` tarball
    license: str  # SPDX id of the images' licence

    @property
    def spec(self) -> str:
        return f"{self.package}@{self.version}"

    @property
    def atlas_name(self) -> str:
        return f"{self.key}.webp"


NOTO = Source(
    key="noto",
    package="emoji-datasource-google",
    version="16.0.0",
    image_set="google",
    tarball_sha256="fb5fd131b362aab7a55542d2a147a79708cce0a8b1c1bbacd470172708b5c438",
    license="Apache-2.0",
)
TWEMOJI = Source(
    key="twemoji",
    package="emoji-datasource-twitter",
    version="16.0.0",
    image_set="twitter",
    tarball_sha256="f64a530c63bca463bd8317fdc4615ce63a53a0c65018e4ce2d848aaba7a28877",
    license="CC-BY-4.0",
)
SOURCES = (NOTO, TWEMOJI)


class BuildError(RuntimeError):
    """Raised when an input does not look the way the build expects."""


@dataclass(frozen=True)
class Emoji:
    """One dataset entry; its position in the list is its tile index."""

    id: str
    split: str


# --------------------------------------------------------------------------
# Fetching and reading the npm tarballs
# --------------------------------------------------------------------------


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_npm_integrity(path: Path, integrity: str) -> None:
    """Check a tarball against npm's Subresource-Integrity string."""
    algorithm, _, expected_b64 = integrity.partition("-")
    if algorithm not in {"sha512", "sha384", "sha256"} or not expected_b64:
        raise BuildError(f"unexpected npm integrity string for {path.name}: {integrity!r}")
    digest = hashlib.new(algorithm)
    digest.update(path.read_bytes())
    if base64.b64encode(digest.digest()).decode("ascii") != expected_b64:
        raise BuildError(f"{path.name} does not match npm's {algorithm} integrity")


def npm_pack(npm: str, source: Source, workdir: Path) -> Path:
    """Download ``source`` with ``npm pack`` into ``workdir``; return the tarball."""
    command = [npm, "pack", source.spec, "--json", "--ignore-scripts"]
    print(f"$ {' '.join(command)}", file=sys.stderr)
    result = subprocess.run(command, cwd=workdir, check=True, stdout=subprocess.PIPE, text=True)
    try:
        report = json.loads(result.stdout)
        filename = str(report[0]["filename"])
        integrity = str(report[0]["integrity"])
    except (ValueError, LookupError, TypeError) as exc:
        raise BuildError(f"cannot parse `npm pack --json` output for {source.spec}") from exc
    # npm names the tarball itself; accept only a plain file name in workdir.
    if Path(filename).name != filename or not filename.endswith(".tgz"):
        raise BuildError(f"unexpected tarball name from npm: {filename!r}")
    tarball = workdir / filename
    if not tarball.is_file():
        raise BuildError(f"npm pack did not produce {tarball}")
    check_npm_integrity(tarball, integrity)
    actual = sha256_file(tarball)
    if actual != source.tarball_sha256:
        raise BuildError(
            f"{source.spec}: tarball sha256 is {actual}, expected the pinned "
            f"{source.tarball_sha256}; the published package changed, refusing to build"
        )
    print(f"  {filename}: sha256 {actual} (pinned, OK)", file=sys.stderr)
    return tarball


def read_emoji_pngs(tarball: Path, image_set: str) -> dict[str, bytes]:
    """Return ``{emoji id: PNG bytes}`` for ``package/img/<set>/64/*.png``.

    Members are read into memory, never extracted, and only regular files whose
    whole path matches the expected pattern are accepted.
    """
    pattern = re.compile(
        rf"package/img/{re.escape(image_set)}/{SOURCE_TILE}/(?P<id>{EMOJI_ID_RE.pattern})\.png"
    )
    images: dict[str, bytes] = {}
    with tarfile.open(tarball, mode="r:gz") as archive:
        for member in archive:
            match = pattern.fullmatch(member.name)
            if match is None:
                continue
            if not member.isfile():
                raise BuildError(f"{tarball.name}: {member.name} is not a regular file")
            if member.size > MAX_PNG_BYTES:
                raise BuildError(f"{tarball.name}: {member.name} is suspiciously large")
            emoji_id = match["id"]
            if emoji_id in images:
                raise BuildError(f"{tarball.name}: duplicate member {member.name}")
            handle = archive.extractfile(member)
            if handle is None:
                raise BuildError(f"{tarball.name}: cannot read {member.name}")
            with handle:
                images[emoji_id] = handle.read()
    if not images:
        raise BuildError(f"{tarball.name}: no images under package/img/{image_set}/{SOURCE_TILE}/")
    return images


# --------------------------------------------------------------------------
# Selecting emoji and assigning splits
# --------------------------------------------------------------------------


def code_points(emoji_id: str) -> tuple[int, ...]:
    return tuple(int(part, 16) for part in emoji_id.split("-"))


def has_skin_tone(emoji_id: str) -> bool:
    return any(cp in SKIN_TONE_MODIFIERS for cp in code_points(emoji_id))


def base_code_point(emoji_id: str) -> str:
    return emoji_id.split("-", 1)[0]


def split_for_base(base: str) -> str:
    """Deterministic split of a base code point: ~10% test, rest A/B halves."""
    digest = hashlib.sha256(f"{SPLIT_SALT}{base}".encode("ascii")).digest()
    bucket = int.from_bytes(digest[:8], "big") % 100
    if bucket < TEST_PERCENT:
        return "test"
    return "train_a" if bucket % 2 == 0 else "train_b"


def select_emoji(ids_a: Iterable[str], ids_b: Iterable[str]) -> list[Emoji]:
    """Emoji present in both sets without skin tones, in code point order."""
    common = set(ids_a) & set(ids_b)
    kept = sorted((i for i in common if not has_skin_tone(i)), key=code_points)
    return [Emoji(id=i, split=split_for_base(base_code_point(i))) for i in kept]


# --------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------


def load_tile(png: bytes, tile: int, label: str) -> Image.Image:
    """Decode one emoji PNG, composite it on white and return an RGB tile."""
    with Image.open(io.BytesIO(png)) as image:
        if image.format != "PNG" or image.size != (SOURCE_TILE, SOURCE_TILE):
            raise BuildError(f"{label}: expected a {SOURCE_TILE}x{SOURCE_TILE} PNG")
        rgba = image.convert("RGBA")
    # Straight-alpha "over" onto opaque white.  Dropping alpha instead would
    # expose the (often black) colour of transparent pixels as halos.
    background = Image.new("RGBA", rgba.size, (*WHITE, 255))
    rgb = Image.alpha_composite(background, rgba).convert("RGB")
    if tile != SOURCE_TILE:
        rgb = rgb.resize((tile, tile), Image.Resampling.LANCZOS)
    return rgb


def atlas_columns(count: int) -> int:
    return max(1, math.ceil(math.sqrt(count)))


def build_atlas(tiles: Sequence[Image.Image], tile: int, columns: int) -> Image.Image:
    rows = math.ceil(len(tiles) / columns)
    atlas = Image.new("RGB", (columns * tile, rows * tile), WHITE)
    for index, image in enumerate(tiles):
        row, col = divmod(index, columns)
        atlas.paste(image, (col * tile, row * tile))
    return atlas


def encode_atlas(image: Image.Image) -> bytes:
    """Lossless WebP at maximum effort: pixel-exact, deterministic, and about 27 % smaller than
    the best PNG (7.6 MB for both atlases instead of 10.4 MB), which keeps the package small."""
    buffer = io.BytesIO()
    image.save(buffer, format="WEBP", lossless=True, quality=100, method=6)
    return buffer.getvalue()


def psnr(a: Image.Image, b: Image.Image) -> float:
    """PSNR in dB between two RGB images of equal size (peak 255)."""
    histogram = ImageChops.difference(a, b).histogram()  # 256 bins per band
    squared_error = sum(count * (index % 256) ** 2 for index, count in enumerate(histogram))
    mse = squared_error / (a.width * a.height * len(a.getbands()))
    if mse == 0:
        return math.inf
    return 10.0 * math.log10(255.0**2 / mse)


def mean_psnr(pairs: Iterable[tuple[Image.Image, Image.Image]]) -> float:
    values = [psnr(a, b) for a, b in pairs]
    finite = [v for v in values if math.isfinite(v)]
    if len(finite) != len(values):
        print(f"  note: {len(values) - len(finite)} identical pairs left out", file=sys.stderr)
    return sum(finite) / len(finite) if finite else math.inf


# --------------------------------------------------------------------------
# Text outputs
# --------------------------------------------------------------------------


def build_command(tile: int) -> str:
    command = f"python {SCRIPT_PATH}"
    return command if tile == SOURCE_TILE else f"{command} --tile {tile}"


def split_counts(emoji: Sequence[Emoji]) -> dict[str, int]:
    return {name: sum(1 for e in emoji if e.split == name) for name in SPLIT_NAMES}


def render_index(
    emoji: Sequence[Emoji],
    tile: int,
    columns: int,
    tarball_sha256: dict[str, str],
    file_sha256: dict[str, str],
) -> str:
    """index.json text: indented header, then one line per emoji entry."""
    header = {
        "format": INDEX_FORMAT,
        "tile": tile,
        "columns": columns,
        "count": len(emoji),
        "sources": {
            s.key: {
                "package": s.spec,
                "tarball_sha256": tarball_sha256[s.key],
                "license": s.license,
            }
            for s in SOURCES
        },
        "files": file_sha256,
        "splits": split_counts(emoji),
    }
    head = json.dumps(header, indent=2, ensure_ascii=True)
    assert head.endswith("\n}")
    entries = ",\n".join(
        "    " + json.dumps({"id": e.id, "split": e.split}, ensure_ascii=True) for e in emoji
    )
    return f'{head[:-2]},\n  "emoji": [\n{entries}\n  ]\n}}\n'


def modification_note(tile: int) -> str:
    resized = "" if tile == SOURCE_TILE else f", downscaled to {tile}x{tile} (Lanczos)"
    return textwrap.fill(
        f"Each {SOURCE_TILE}x{SOURCE_TILE} RGBA image was alpha-composited onto an opaque "
        f"white background and converted to RGB{resized}, and the images were packed "
        "into a single atlas image in the tile order listed in index.json.",
        width=78,
    )


def render_noto_license(tile: int) -> str:
    return f"""\
Noto Emoji images (noto.webp in this directory)
==============================================

The tiles of noto.webp are derived from the Noto Emoji images by Google
(https://github.com/googlefonts/noto-emoji), as redistributed in the npm
package {NOTO.spec} (files package/img/google/64/*.png).

Noto Emoji image resources are licensed under the Apache License, Version 2.0,
reproduced in full below.  The Noto Emoji project states that its flag images
(from the region-flags project) are in the public domain or otherwise exempt
from copyright.

Modifications, made by the cgfw project with {SCRIPT_PATH}:
{modification_note(tile)}

------------------------------------------------------------------------------
{APACHE_LICENSE_2_0}"""


def render_twemoji_license(tile: int) -> str:
    return f"""\
Twemoji graphics (twemoji.webp in this directory)
================================================

Twemoji graphics: Copyright 2019 Twitter, Inc and other contributors.
Graphics licensed under CC-BY 4.0 (Creative Commons Attribution 4.0
International): https://creativecommons.org/licenses/by/4.0/
Full legal code: https://creativecommons.org/licenses/by/4.0/legalcode

Source: Twemoji (https://github.com/jdecked/twemoji, the maintained fork of
https://github.com/twitter/twemoji), as redistributed in the npm package
{TWEMOJI.spec} (files package/img/twitter/64/*.png).

The images have been modified by the cgfw project with
{SCRIPT_PATH}:
{modification_note(tile)}

No endorsement by Twitter, Inc or the Twemoji contributors is implied.
"""


def render_readme(
    emoji: Sequence[Emoji],
    tile: int,
    columns: int,
    tarball_sha256: dict[str, str],
    file_sha256: dict[str, str],
) -> str:
    counts = split_counts(emoji)
    rows = math.ceil(len(emoji) / columns)
    bases = len({base_code_point(e.id) for e in emoji})
    split_lines = "\n".join(f"| `{name}` | {counts[name]} |" for name in SPLIT_NAMES)
    source_lines = "\n".join(
        f"- `{s.spec}` ({s.license}), tarball sha256 `{tarball_sha256[s.key]}`" for s in SOURCES
    )
    file_lines = "\n".join(f"- `{name}`: sha256 `{digest}`" for name, digest in file_sha256.items())
    return f"""\
# Embedded emoji dataset: Noto -> Twemoji

A small image-to-image translation dataset bundled with `cgfw_paper`:
domain A is Google's **Noto Emoji** style, domain B is the **Twemoji** style.
It holds {len(emoji)} emoji ({bases} distinct base code points), each as a
{tile}x{tile} RGB image composited on a white background.

## Files

- `noto.webp`, `twemoji.webp`: lossless WebP RGB atlases of {columns} columns x {rows} rows of
  {tile}x{tile} tiles. Tile `i` of both atlases is the same emoji, at row
  `i // {columns}` and column `i % {columns}`; unused trailing tiles are white.
- `index.json`: `tile`, `columns`, `count`, source packages and tarball hashes,
  sha256 of both atlases, split sizes, and `emoji`: one `{{"id", "split"}}` entry
  per tile, in tile order. `id` is the emoji's code points in hex joined by `-`
  (e.g. `1f600`, `1f468-200d-1f469-200d-1f467`).
- `LICENSE-NOTO-EMOJI.txt`, `LICENSE-TWEMOJI.txt`: licences and attribution.

## Splits

| split | emoji |
| --- | --- |
{split_lines}

Splits are assigned per base code point (the first code point of `id`), so all
variants of one base (e.g. gendered ZWJ sequences) share a split. A base goes to
`test` when `int(sha256("{SPLIT_SALT}" + base)[:8 bytes]) % 100 < {TEST_PERCENT}`,
otherwise to `train_a` if that number is even and `train_b` if odd.
For unpaired training, domain A (Noto) uses the `train_a` emoji and domain B
(Twemoji) the `train_b` emoji, so the two domains hold disjoint emoji. Both
atlases contain every emoji, so paired training can use all train pairs and
the `test` pairs are held out for evaluation.

## How it was built

From the repository root (needs `npm` and Pillow):

    {build_command(tile)}

The script runs `npm pack` for both packages in a temporary directory, checks
each tarball against npm's integrity hash and the sha256 pinned in the script,
reads `package/img/<set>/64/*.png` from the tarballs in memory, keeps the emoji
present in both packages that contain no skin-tone modifier (U+1F3FB..U+1F3FF),
composites them onto white and writes this directory. Rebuilding with the same
Pillow/zlib gives byte-identical files (this build: Pillow {PIL.__version__},
zlib {features.version("zlib")}).

Sources:

{source_lines}

Outputs:

{file_lines}

## Attribution

- Noto Emoji images by Google; Apache License 2.0
  (https://github.com/googlefonts/noto-emoji). See `LICENSE-NOTO-EMOJI.txt`.
- Twemoji graphics: Copyright 2019 Twitter, Inc and other contributors;
  licensed under CC-BY 4.0 (https://creativecommons.org/licenses/by/4.0/).
  See `LICENSE-TWEMOJI.txt`.
- Both image sets were modified: composited onto white, converted to RGB and
  packed into atlases. The file names (code points) come from the emoji-data
  project (https://github.com/iamcal/emoji-data), whose own MIT licence covers
  its code and metadata, none of which is redistributed here.
"""


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(DEFAULT_OUT),
        help=f"output directory (default: {DEFAULT_OUT})",
    )
    parser.add_argument(
        "--tile",
        type=int,
        default=SOURCE_TILE,
        help=f"tile size in pixels, {MIN_TILE}..{SOURCE_TILE} (default: {SOURCE_TILE})",
    )
    parser.add_argument("--npm", default="npm", help="npm executable (default: npm)")
    args = parser.parse_args(argv)
    if not MIN_TILE <= args.tile <= SOURCE_TILE:
        parser.error(f"--tile must be between {MIN_TILE} and {SOURCE_TILE}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    tile: int = args.tile
    out: Path = args.out
    npm = shutil.which(args.npm)
    if npm is None:
        raise BuildError(f"npm executable {args.npm!r} not found")
    if sha256_bytes(APACHE_LICENSE_2_0.encode("ascii")) != APACHE_LICENSE_2_0_SHA256:
        raise BuildError("embedded Apache-2.0 text is not the canonical text")

    images: dict[str, dict[str, bytes]] = {}
    tarball_sha256: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="cgfw-emoji-") as tmp:
        for source in SOURCES:
            tarball = npm_pack(npm, source, Path(tmp))
            tarball_sha256[source.key] = source.tarball_sha256
            images[source.key] = read_emoji_pngs(tarball, source.image_set)

    emoji = select_emoji(images[NOTO.key], images[TWEMOJI.key])
    only_one = set(images[NOTO.key]) ^ set(images[TWEMOJI.key])
    print(
        f"images: noto {len(images[NOTO.key])}, twemoji {len(images[TWEMOJI.key])}, "
        f"in only one package {len(only_one)}; kept {len(emoji)} without skin tones",
        file=sys.stderr,
    )

    tiles = {
        source.key: [
            load_tile(images[source.key][e.id], tile, f"{source.spec}:{e.id}") for e in emoji
        ]
        for source in SOURCES
    }
    columns = atlas_columns(len(emoji))
    atlas_png = {
        source.atlas_name: encode_atlas(build_atlas(tiles[source.key], tile, columns))
        for source in SOURCES
    }
    file_sha256 = {name: sha256_bytes(data) for name, data in atlas_png.items()}

    outputs: dict[str, bytes] = dict(atlas_png)
    outputs["index.json"] = render_index(emoji, tile, columns, tarball_sha256, file_sha256).encode(
        "ascii"
    )
    outputs["LICENSE-NOTO-EMOJI.txt"] = render_noto_license(tile).encode("ascii")
    outputs["LICENSE-TWEMOJI.txt"] = render_twemoji_license(tile).encode("ascii")
    outputs["README.md"] = render_readme(emoji, tile, columns, tarball_sha256, file_sha256).encode(
        "utf-8"
    )

    out.mkdir(parents=True, exist_ok=True)
    for name, data in outputs.items():
        (out / name).write_bytes(data)

    total = 0
    for name, data in outputs.items():
        total += len(data)
        print(f"wrote {out / name} ({len(data):,} bytes)")
    print(f"total {total:,} bytes ({total / 1e6:.2f} MB)")
    print(f"tile {tile}, columns {columns}, count {len(emoji)}, splits {split_counts(emoji)}")

    pairs = list(zip(tiles[NOTO.key], tiles[TWEMOJI.key], strict=True))
    test_pairs = [p for p, e in zip(pairs, emoji, strict=True) if e.split == "test"]
    print(f"do-nothing baseline PSNR(noto, twemoji) at {tile}px:")
    print(f"  all {len(pairs)} pairs: {mean_psnr(pairs):.2f} dB")
    print(f"  test {len(test_pairs)} pairs: {mean_psnr(test_pairs):.2f} dB")
    return 0


# --------------------------------------------------------------------------
# Canonical Apache License 2.0 text (https://www.apache.org/licenses/LICENSE-2.0.txt),
# written verbatim into LICENSE-NOTO-EMOJI.txt.  The emoji-datasource-google
# tarball's own LICENSE is emoji-data's MIT licence, not the Noto one.
# --------------------------------------------------------------------------

APACHE_LICENSE_2_0_SHA256 = "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30"
APACHE_LICENSE_2_0 = """\

                                 Apache License
                           Version 2.0, January 2004
                        http://www.apache.org/licenses/

   TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION

   1. Definitions.

      "License" shall mean the terms and conditions for use, reproduction,
      and distribution as defined by Sections 1 through 9 of this document.

      "Licensor" shall mean the copyright owner or entity authorized by
      the copyright owner that is granting the License.

      "Legal Entity" shall mean the union of the acting entity and all
      other entities that control, are controlled by, or are under common
      control with that entity. For the purposes of this definition,
      "control" means (i) the power, direct or indirect, to cause the
      direction or management of such entity, whether by contract or
      otherwise, or (ii) ownership of fifty percent (50%) or more of the
      outstanding shares, or (iii) beneficial ownership of such entity.

      "You" (or "Your") shall mean an individual or Legal Entity
      exercising permissions granted by this License.

      "Source" form shall mean the preferred form for making modifications,
      including but not limited to software source code, documentation
      source, and configuration files.

      "Object" form shall mean any form resulting from mechanical
      transformation or translation of a Source form, including but
      not limited to compiled object code, generated documentation,
      and conversions to other media types.

      "Work" shall mean the work of authorship, whether in Source or
      Object form, made available under the License, as indicated by a
      copyright notice that is included in or attached to the work
      (an example is provided in the Appendix below).

      "Derivative Works" shall mean any work, whether in Source or Object
      form, that is based on (or derived from) the Work and for which the
      editorial revisions, annotations, elaborations, or other modifications
      represent, as a whole, an original work of authorship. For the purposes
      of this License, Derivative Works shall not include works that remain
      separable from, or merely link (or bind by name) to the interfaces of,
      the Work and Derivative Works thereof.

      "Contribution" shall mean any work of authorship, including
      the original version of the Work and any modifications or additions
      to that Work or Derivative Works thereof, that is intentionally
      submitted to Licensor for inclusion in the Work by the copyright owner
      or by an individual or Legal Entity authorized to submit on behalf of
      the copyright owner. For the purposes of this definition, "submitted"
      means any form of electronic, verbal, or written communication sent
      to the Licensor or its representatives, including but not limited to
      communication on electronic mailing lists, source code control systems,
      and issue tracking systems that are managed by, or on behalf of, the
      Licensor for the purpose of discussing and improving the Work, but
      excluding communication that is conspicuously marked or otherwise
      designated in writing by the copyright owner as "Not a Contribution."

      "Contributor" shall mean Licensor and any individual or Legal Entity
      on behalf of whom a Contribution has been received by Licensor and
      subsequently incorporated within the Work.

   2. Grant of Copyright License. Subject to the terms and conditions of
      this License, each Contributor hereby grants to You a perpetual,
      worldwide, non-exclusive, no-charge, royalty-free, irrevocable
      copyright license to reproduce, prepare Derivative Works of,
      publicly display, publicly perform, sublicense, and distribute the
      Work and such Derivative Works in Source or Object form.

   3. Grant of Patent License. Subject to the terms and conditions of
      this License, each Contributor hereby grants to You a perpetual,
      worldwide, non-exclusive, no-charge, royalty-free, irrevocable
      (except as stated in this section) patent license to make, have made,
      use, offer to sell, sell, import, and otherwise transfer the Work,
      where such license applies only to those patent claims licensable
      by such Contributor that are necessarily infringed by their
      Contribution(s) alone or by combination of their Contribution(s)
      with the Work to which such Contribution(s) was submitted. If You
      institute patent litigation against any entity (including a
      cross-claim or counterclaim in a lawsuit) alleging that the Work
      or a Contribution incorporated within the Work constitutes direct
      or contributory patent infringement, then any patent licenses
      granted to You under this License for that Work shall terminate
      as of the date such litigation is filed.

   4. Redistribution. You may reproduce and distribute copies of the
      Work or Derivative Works thereof in any medium, with or without
      modifications, and in Source or Object form, provided that You
      meet the following conditions:

      (a) You must give any other recipients of the Work or
          Derivative Works a copy of this License; and

      (b) You must cause any modified files to carry prominent notices
          stating that You changed the files; and

      (c) You must retain, in the Source form of any Derivative Works
          that You distribute, all copyright, patent, trademark, and
          attribution notices from the Source form of the Work,
          excluding those notices that do not pertain to any part of
          the Derivative Works; and

      (d) If the Work includes a "NOTICE" text file as part of its
          distribution, then any Derivative Works that You distribute must
          include a readable copy of the attribution notices contained
          within such NOTICE file, excluding those notices that do not
          pertain to any part of the Derivative Works, in at least one
          of the following places: within a NOTICE text file distributed
          as part of the Derivative Works; within the Source form or
          documentation, if provided along with the Derivative Works; or,
          within a display generated by the Derivative Works, if and
          wherever such third-party notices normally appear. The contents
          of the NOTICE file are for informational purposes only and
          do not modify the License. You may add Your own attribution
          notices within Derivative Works that You distribute, alongside
          or as an addendum to the NOTICE text from the Work, provided
          that such additional attribution notices cannot be construed
          as modifying the License.

      You may add Your own copyright statement to Your modifications and
      may provide additional or different license terms and conditions
      for use, reproduction, or distribution of Your modifications, or
      for any such Derivative Works as a whole, provided Your use,
      reproduction, and distribution of the Work otherwise complies with
      the conditions stated in this License.

   5. Submission of Contributions. Unless You explicitly state otherwise,
      any Contribution intentionally submitted for inclusion in the Work
      by You to the Licensor shall be under the terms and conditions of
      this License, without any additional terms or conditions.
      Notwithstanding the above, nothing herein shall supersede or modify
      the terms of any separate license agreement you may have executed
      with Licensor regarding such Contributions.

   6. Trademarks. This License does not grant permission to use the trade
      names, trademarks, service marks, or product names of the Licensor,
      except as required for reasonable and customary use in describing the
      origin of the Work and reproducing the content of the NOTICE file.

   7. Disclaimer of Warranty. Unless required by applicable law or
      agreed to in writing, Licensor provides the Work (and each
      Contributor provides its Contributions) on an "AS IS" BASIS,
      WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or
      implied, including, without limitation, any warranties or conditions
      of TITLE, NON-INFRINGEMENT, MERCHANTABILITY, or FITNESS FOR A
      PARTICULAR PURPOSE. You are solely responsible for determining the
      appropriateness of using or redistributing the Work and assume any
      risks associated with Your exercise of permissions under this License.

   8. Limitation of Liability. In no event and under no legal theory,
      whether in tort (including negligence), contract, or otherwise,
      unless required by applicable law (such as deliberate and grossly
      negligent acts) or agreed to in writing, shall any Contributor be
      liable to You for damages, including any direct, indirect, special,
      incidental, or consequential damages of any character arising as a
      result of this License or out of the use or inability to use the
      Work (including but not limited to damages for loss of goodwill,
      work stoppage, computer failure or malfunction, or any and all
      other commercial damages or losses), even if such Contributor
      has been advised of the possibility of such damages.

   9. Accepting Warranty or Additional Liability. While redistributing
      the Work or Derivative Works thereof, You may choose to offer,
      and charge a fee for, acceptance of support, warranty, indemnity,
      or other liability obligations and/or rights consistent with this
      License. However, in accepting such obligations, You may act only
      on Your own behalf and on Your sole responsibility, not on behalf
      of any other Contributor, and only if You agree to indemnify,
      defend, and hold each Contributor harmless for any liability
      incurred by, or claims asserted against, such Contributor by reason
      of your accepting any such warranty or additional liability.

   END OF TERMS AND CONDITIONS

   APPENDIX: How to apply the Apache License to your work.

      To apply the Apache License to your work, attach the following
      boilerplate notice, with the fields enclosed by brackets "[]"
      replaced with your own identifying information. (Don't include
      the brackets!)  The text should be enclosed in the appropriate
      comment syntax for the file format. We also recommend that a
      file or class name and description of purpose be included on the
      same "printed page" as the copyright notice for easier
      identification within third-party archives.

   Copyright [yyyy] [name of copyright owner]

   Licensed under the Apache License, Version 2.0 (the "License");
   you may not use this file except in compliance with the License.
   You may obtain a copy of the License at

       http://www.apache.org/licenses/LICENSE-2.0

   Unless required by applicable law or agreed to in writing, software
   distributed under the License is distributed on an "AS IS" BASIS,
   WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
   See the License for the specific language governing permissions and
   limitations under the License.
"""


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (BuildError, subprocess.CalledProcessError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
