"""Relativistic GAN losses: the discriminator judges whether a real image reads as more real
than the average fake, and a fake as less real than the average real, so both players' losses
depend on the real and the fake scores together. They take the GAN-loss hook's pair form
(cgfw/hookspecs.py, register_gan_losses): registered with ``pair=True``, called ``loss(real_scores,
fake_scores, for_discriminator)``."""

from __future__ import annotations

from cgfw import Register, hookimpl, lazy


@hookimpl
def register_gan_losses(register: Register) -> None:
    register(
        "ralsgan",
        lazy("cgfw_field.relativistic:RaLSGAN"),
        None,
        "relativistic average LSGAN: real vs the mean fake score and back (Jolicoeur-Martineau)",
        pair=True,
    )
