"""What the field added to CycleGAN after the paper, as components: gradient penalties (r1,
wgan_gp, gp_mix) and the WGAN loss, the relativistic ralsgan loss, DiffAugment, and their named
ablations. Registered through cgfw's entry points like the paper's plugin; spectral norm is the
paper PatchGAN's `norm = "spectral"` and the generator EMA the engine's `train.ema`."""
