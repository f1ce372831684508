"""The relativistic average LSGAN loss (losses.py registers it lazily): imported when a run
builds it."""

from __future__ import annotations

from torch import Tensor

from cgfw.errors import CgfwError


class RaLSGAN:
    """Relativistic average LSGAN (Jolicoeur-Martineau 2018, "The relativistic discriminator",
    RaLSGAN). With C the discriminator's scores (logits, every patch of the batch) and the means
    over all patch scores of the batch:

        D: mean((C(x_r) - mean C(x_f) - 1)^2) + mean((C(x_f) - mean C(x_r) + 1)^2)
        G: mean((C(x_f) - mean C(x_r) - 1)^2) + mean((C(x_r) - mean C(x_f) + 1)^2)

    As the paper writes them, without a factor 1/2. The author's code (AlexiaJM/RelativisticGAN)
    and ESRGAN halve both players' losses; here the models' own weighting applies instead: the
    CycleGAN, CUT and pix2pix halve the discriminator's, which then equals the author's errD,
    while the generator's is twice the author's errG (losses.gan.weight = 0.5 matches it)."""

    def __init__(self, _options: object = None) -> None:
        pass

    def __call__(self, real_scores: Tensor, fake_scores: object, for_discriminator: bool) -> Tensor:
        if not isinstance(fake_scores, Tensor):
            raise CgfwError(
                "losses.gan.name = 'ralsgan' compares real and fake scores, so the model must "
                "call it with both (the pair form: loss(real_scores, fake_scores, "
                "for_discriminator)); this model calls it with one score tensor: pick a loss "
                "such as lsgan, or a model that supports pair losses (cyclegan, cut, pix2pix)"
            )
        # In fp32: under bf16 autocast the differences of means would lose their small values.
        real, fake = real_scores.float(), fake_scores.float()
        real_vs_fakes = real - fake.mean()  # how much more real each real patch reads
        fake_vs_reals = fake - real.mean()
        # D wants reals 1 above the average fake and fakes 1 below the average real; G the swap.
        target = 1.0 if for_discriminator else -1.0
        return (real_vs_fakes - target).pow(2).mean() + (fake_vs_reals + target).pow(2).mean()
