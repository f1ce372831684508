"""Reference statistics: the Inception features of a dataset's real images, saved once per
resize mode and read back by every later `cgfw eval` of that dataset, so that its real images
cost the network nothing after the first time.

One file per real image set and mode, ``CACHE/inception/NAME-MODE.npz`` (CACHE: $CGFW_CACHE,
else $XDG_CACHE_HOME/cgfw, else ~/.cache/cgfw; datasets are only ever read). It holds the mode,
the image count and the digest of the set's file list that the engine gives (cgfw.RealImages),
and is used only when all three match; then each image's features, under a digest of its
pixels, and ``mu`` / ``sigma``, which pytorch-fid reads as a statistics file. KID needs the
features themselves, not only their mean and covariance. Features are looked up by pixel digest
as well, so a file that matches but whose images changed (a file rewritten within its
modification time) still gives the network the images it has no features for.
"""

from __future__ import annotations

import hashlib
import logging
import os
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import torch
from torch import Tensor

from cgfw import RealImages, cache_dir

if TYPE_CHECKING:
    from cgfw_paper.distributions import InceptionFeatures

CACHE_ENV = "CGFW_CACHE"  # cgfw.cache_dir's variable, named in the warning below
FORMAT = 1  # the npz layout below, stored as "version"
log = logging.getLogger("cgfw.eval")


def image_digests(images: Tensor) -> list[str]:
    """One key per uint8 image (C, H, W): its pixels and shape."""
    array = images.cpu().contiguous().numpy()
    return [hashlib.sha1(a.tobytes()).hexdigest() + str(a.shape) for a in array]


class Reference:
    """One real image set's saved features in one mode. Every metric of an evaluation that
    scores against the set records its real batches here; the first to bring batch k keeps
    it (they all see the same batches), and the file is written when the set is complete."""

    _open: ClassVar[dict[tuple[Path, str, int], Reference]] = {}

    def __init__(self, path: Path, reals: RealImages, features: InceptionFeatures) -> None:
        self.path, self.reals, self.features = path, reals, features
        self.digests: list[str] = []
        self.rows: list[Tensor] = []
        self.complete = self._load()

    @classmethod
    def of(cls, reals: RealImages, features: InceptionFeatures) -> Reference:
        """The set's reference in `features`' mode, opened once per process."""
        path = cache_dir() / "inception" / f"{reals.name}-{features.resize}.npz"
        key = (path, reals.digest, reals.count)
        if key not in cls._open:
            cls._open[key] = cls(path, reals, features)
        return cls._open[key]

    def _load(self) -> bool:
        try:
            with np.load(self.path, allow_pickle=False) as data:
                saved = (int(data["version"]), str(data["resize"]), int(data["count"]))
                wanted = (FORMAT, self.features.resize, self.reals.count)
                if saved != wanted or str(data["files"]) != self.reals.digest:
                    return False  # another file list or mode: computed again, then rewritten
                digests = [str(d) for d in data["digests"]]
                features = torch.from_numpy(np.asarray(data["features"], dtype=np.float32))
        except FileNotFoundError:
            return False
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            log.warning("%s: unreadable (%s); computing its statistics again", self.path, exc)
            return False
        if len(digests) != self.reals.count or features.shape != (self.reals.count, 2048):
            return False
        self.features.known.update(zip(digests, features, strict=True))
        return True

    def record(self, start: int, images: Tensor) -> None:
        """Real uint8 images `start`, `start + 1`, ... of the set, as the network sees them."""
        if self.complete or start != len(self.digests):
            return
        self.digests += image_digests(images)
        self.rows.append(self.features(images).cpu())  # remembered: no second network call
        if len(self.digests) >= self.reals.count:
            self.complete = True
            self._save()

    def _save(self) -> None:
        count = self.reals.count
        features = torch.cat(self.rows)[:count].numpy()
        wide = features.astype(np.float64)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with tmp.open("wb") as file:  # a file object: numpy adds no second .npz
                np.savez(
                    file,
                    version=FORMAT,
                    resize=self.features.resize,
                    count=count,
                    files=self.reals.digest,
                    digests=np.array(self.digests[:count]),
                    features=features,
                    mu=wide.mean(axis=0),
                    sigma=np.cov(wide, rowvar=False),
                )
            os.replace(tmp, self.path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            log.warning(
                "reference statistics not saved: cannot write %s: %s (set %s to another folder)",
                self.path,
                exc.strerror or exc,
                CACHE_ENV,
            )
        self.rows = []
