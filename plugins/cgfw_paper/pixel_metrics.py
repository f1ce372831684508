"""The paired image metrics of `cgfw eval`: PSNR, SSIM and L1, computed by torchmetrics; the
distribution metrics KID, FID and SWD live in cgfw_paper.distributions.

Images arrive in [-1, 1] and are mapped to [0, 1] first, so PSNR and SSIM use data_range 1 and
L1 is the mean absolute error on the [0, 1] scale (half of the same error in [-1, 1]).
"""

from __future__ import annotations

from torch import Tensor
from torchmetrics import MeanAbsoluteError, Metric
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure

from cgfw import NoOptions


def to_unit(images: Tensor) -> Tensor:
    """[-1, 1] -> [0, 1], clamped so a generator's overshoot cannot leave the data range."""
    return images.detach().float().clamp(-1.0, 1.0).add(1.0).mul(0.5)


class TorchMetric:
    """One torchmetrics metric behind cgfw's Metric contract (see hookspecs.register_metrics)."""

    paired = True

    def __init__(self, name: str, metric: Metric, higher_is_better: bool) -> None:
        self.name, self.metric, self.higher_is_better = name, metric, higher_is_better

    def update(self, fake: Tensor, real: Tensor) -> None:
        if fake.shape != real.shape:
            raise ValueError(
                f"{self.name}: fake {tuple(fake.shape)} and real {tuple(real.shape)} differ"
            )
        if self.metric.device != fake.device:
            self.metric = self.metric.to(fake.device)
        self.metric.update(to_unit(fake), to_unit(real))

    def compute(self) -> float:
        return float(self.metric.compute())

    def reset(self) -> None:
        self.metric.reset()


def psnr(_: NoOptions) -> TorchMetric:
    # dim=None: one PSNR from the mean squared error over every pixel of every image, so a
    # single identical pair (MSE 0, PSNR inf) cannot make the whole result infinite.
    return TorchMetric("psnr", PeakSignalNoiseRatio(data_range=1.0), higher_is_better=True)


def ssim(_: NoOptions) -> TorchMetric:
    return TorchMetric(
        "ssim", StructuralSimilarityIndexMeasure(data_range=1.0), higher_is_better=True
    )


def l1(_: NoOptions) -> TorchMetric:
    return TorchMetric("l1", MeanAbsoluteError(), higher_is_better=False)
