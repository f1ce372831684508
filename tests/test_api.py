"""The Python API used as a notebook uses it: `import cgfw`, train a bundled recipe with a few
overrides, reopen the run, translate images and tensors both ways, build and list components."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from torch import nn

import cgfw
from cgfw.cli import main
from cgfw.errors import CgfwError
from cgfw.store import checkpoint
from cgfw.training import loop as trainer

# The quickstart made tiny: 8 filters, two iterations of batch 2; EMA 0.5 so that the averaged
# weights translate already differ from the trained ones.
TINY = {
    "generator.ngf": 8,
    "discriminator.ndf": 8,
    "train.max_iters": 2,
    "train.batch_size": 2,
    "train.samples": 2,
    "train.ema": 0.5,
}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> cgfw.Run:
    runs = tmp_path_factory.mktemp("api") / "runs"
    return cgfw.train("quickstart", {**TINY, "run.output_dir": runs}, device="cpu", progress=False)


def by_hand(run: cgfw.Run, network: str, weights: str) -> nn.Module:
    """The run's generator rebuilt outside the API: the recipe's ResNet, the checkpoint's
    `weights` ("ema" or the trained "model" ones) of `network` (g_ab, g_ba)."""
    net = cgfw.create("generator", "resnet", n_blocks=2, ngf=8)
    state = checkpoint.load(run.path / "checkpoints" / "latest.pt")
    net.load_state_dict(
        state.ema[network] if weights == "ema" else state.model["networks"][network]
    )
    return net.eval()


def test_train_applies_the_overrides_and_load_reopens_the_run(run: cgfw.Run) -> None:
    assert run.path.parent.name == "runs" and run.path.name.startswith("quickstart-")
    assert run.recipe["generator"]["ngf"] == 8 and run.recipe["train"]["max_iters"] == 2
    assert run.recipe["generator"]["n_blocks"] == 2  # the quickstart's own, kept
    assert run.final_losses is not None and "g_total" in run.final_losses
    assert run.metrics is None  # `cgfw eval` has not scored it
    again = cgfw.load(str(run.path), device="cpu")
    assert again.path == run.path and again.recipe == run.recipe


def test_translate_a_tensor_either_way_is_the_generator_applied_by_hand(run: cgfw.Run) -> None:
    real = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        fake_b = by_hand(run, "g_ab", "ema")(real)
        fake_a = by_hand(run, "g_ba", "ema")(real)
        fake_b_raw = by_hand(run, "g_ab", "model")(real)
    translated = run.translate(real)
    assert translated.shape == real.shape and not translated.requires_grad
    assert torch.equal(translated, fake_b)
    assert torch.equal(run.translate(real, "b2a"), fake_a)
    assert torch.equal(run.translate(real, raw=True), fake_b_raw)
    assert not torch.equal(fake_b, fake_b_raw)  # so the line above tells the two apart
    single = run.translate(real[0], "b2a")  # one (C, H, W) image comes back as one
    assert single.shape == real[0].shape
    assert torch.allclose(single, fake_a[0], atol=1e-5)


def test_translate_a_pil_image_as_cgfw_translate_does(run: cgfw.Run, tmp_path: Path) -> None:
    image = Image.new("RGBA", (50, 40), (200, 40, 10, 128))  # alpha: made RGB on white
    for i in range(50):
        image.putpixel((i, i % 40), (10, 180, 90, 255))
    fake = run.translate(image, "b2a")
    assert fake.mode == "RGB" and fake.size == (40, 32)  # shorter side to data.crop_size
    assert run.translate(image, full_resolution=True).size == (50, 40)
    assert run.translate(image, size=16).size == (20, 16)
    image.save(tmp_path / "in.png")
    cli = [str(run.path), str(tmp_path / "in.png"), str(tmp_path / "out.png"), "--device", "cpu"]
    result = CliRunner().invoke(main, ["translate", *cli, "--direction", "b2a"])
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "out.png") as written:
        assert np.array_equal(np.asarray(written), np.asarray(fake))


def test_create_builds_one_component_with_checked_options() -> None:
    six = cgfw.create("generator", "resnet", n_blocks=6)
    assert isinstance(six, nn.Module)
    assert sum(p.numel() for p in six.parameters()) == 7_837_699  # the paper's resnet_6blocks
    with pytest.raises(CgfwError, match=r"generator\.n_blok: unknown option .* 'n_blocks'"):
        cgfw.create("generator", "resnet", n_blok=6)
    with pytest.raises(CgfwError, match=r"unknown generator 'resnt'; did you mean 'resnet'"):
        cgfw.create("generator", "resnt")


def test_components_lists_the_registered_names_by_kind() -> None:
    every = cgfw.components()
    assert "resnet" in every["generator"] and "patchgan" in every["discriminator"]
    assert cgfw.components("generator") == {"generator": every["generator"]}
    with pytest.raises(CgfwError, match=r"unknown kind 'generatr'; did you mean 'generator'"):
        cgfw.components("generatr")


def test_mistakes_raise_one_error_that_names_the_key(run: cgfw.Run, tmp_path: Path) -> None:
    out = {"run.output_dir": tmp_path / "runs"}
    with pytest.raises(
        CgfwError, match=r"^override 'train.max_iter': unknown key 'train.max_iter'.*'max_iters'"
    ):
        cgfw.train("quickstart", {**out, "train.max_iter": 2}, progress=False)
    with pytest.raises(CgfwError, match=r"train.max_iters: .*\(got 'two'\)"):
        cgfw.train("quickstart", {**out, "train.max_iters": "two"}, progress=False)
    assert not (tmp_path / "runs").exists()  # refused before a run directory was made
    with pytest.raises(CgfwError, match="not a run directory"):
        cgfw.load(tmp_path)
    with pytest.raises(CgfwError, match=r"direction 'b2c': use one of a2b, b2a"):
        run.translate(torch.zeros(3, 32, 32), "b2c")
    with pytest.raises(CgfwError, match=r"uint8 tensor; give floats in \[-1, 1\]"):
        run.translate(torch.zeros(3, 32, 32, dtype=torch.uint8))


# A model that learns a -> b only, as CUT does: the smallest one-sided objective.
ONE_SIDED = """
    from typing import ClassVar

    import cgfw
    from cgfw import Model, Slot


    class Forward(Model):
        slots: ClassVar = {"generator": Slot("generator", "resnet")}
        directions: ClassVar = {"a2b": ("g", "generator")}

        def __init__(self, options, build):
            super().__init__(options, build)
            self.g = build.network("generator")
            self.networks = {"g": self.g}
            self.optimizers = {"g": build.optimizer(self.g)}

        def step(self, real_a, real_b):
            loss = (self.g(real_a) - real_b).abs().mean()
            self.optimizers["g"].zero_grad(set_to_none=True)
            self.rt.optimizer_step(loss, self.optimizers["g"])
            return {"l1": loss.detach()}


    @cgfw.hookimpl
    def register_models(register):
        register("forward", Forward, None, "a -> b only")
"""


def test_a_one_sided_run_refuses_b2a_as_the_cli_does(
    fake_distribution: Callable[[str, str], Path], tmp_path: Path
) -> None:
    fake_distribution("cgfw-forward", ONE_SIDED)
    overrides = {"model.name": "forward", "generator.ngf": 8, "train.max_iters": 1}
    run = cgfw.train(
        "quickstart", {**overrides, "run.output_dir": tmp_path}, device="cpu", progress=False
    )
    assert run.translate(torch.zeros(1, 3, 32, 32)).shape == (1, 3, 32, 32)
    with pytest.raises(CgfwError, match=r"model 'forward' learns a2b only \(it is one-sided\)"):
        run.translate(torch.zeros(1, 3, 32, 32), "b2a")


def test_interrupting_training_checkpoints_and_raises_keyboard_interrupt(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    step = trainer.train_iteration

    def then_interrupt(*args: Any, **kwargs: Any) -> None:
        step(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGINT)  # what interrupting the kernel sends, mid-run

    monkeypatch.setattr(trainer, "train_iteration", then_interrupt)
    overrides = {**TINY, "train.max_iters": 5, "run.output_dir": tmp_path}
    with pytest.raises(KeyboardInterrupt, match=r"at iteration 1, checkpoint saved; .*--resume"):
        cgfw.train("quickstart", overrides, device="cpu", progress=False)
    (run_dir,) = tmp_path.iterdir()
    assert checkpoint.load(run_dir / "checkpoints" / "latest.pt").iteration == 1
    stopped = cgfw.load(run_dir, device="cpu")  # unfinished, but it has a checkpoint
    assert stopped.final_losses is None
    assert stopped.translate(torch.zeros(3, 32, 32)).shape == (3, 32, 32)
