"""The plugin author's manual: one `register_*` hook per kind of component.

A plugin is a module (or object) exposed through the entry-point group ``cgfw``; cgfw's own
components in ``plugins/`` use exactly that door. Each hook receives ``register``, a callable::

    register(name, factory, options=None, summary="")

``options`` is a pydantic model (use ``extra="forbid"``); the recipe section's keys other than
``name`` (and the keys the model reads itself, such as ``weight``) are validated by it, and
``factory`` receives the validated instance. Type the hook's argument with ``cgfw.Register``.
What each factory must return is written on its hook below; which recipe section picks a
component of each kind is the model's to say (``cgfw.Model.slots``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pluggy
from pydantic import BaseModel
from typing_extensions import TypeVar

if TYPE_CHECKING:  # the hooks' types only; importing cgfw to register costs no torch
    from torch import Tensor, nn

PROJECT = "cgfw"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

F = TypeVar("F", bound=Callable[..., Any], default=Callable[..., Any], contravariant=True)


class Register(Protocol[F]):
    """The callable each hook receives; type your hook's argument with it, e.g.
    ``register: Register[GeneratorFactory]`` (plain ``Register`` takes any factory).
    Keywords say what the component is (``default=True``, ``requires=(package, extra)``,
    ``pair=True`` for a GAN loss, ``base=RECIPE`` for an ablation); they replace attributes
    set on the factory, which are still read, with a deprecation warning."""

    def __call__(
        self,
        name: str,
        factory: F,
        options: type[BaseModel] | None = None,
        summary: str = "",
        **meta: Any,
    ) -> None: ...


# What each hook's factories are called with and return (`options` is the validated pydantic
# model of the component's recipe section).
ModelFactory = Callable[..., Any]  # a cgfw.Model subclass: Model(options, build)
CommandFactory = Callable[[Any], Any]  # -> click.Command
NetworkFactory = Callable[[Any], "nn.Module"]
GanLossFactory = Callable[[Any], Callable[..., "Tensor"]]
ReconstructionLossFactory = Callable[[Any], Callable[["Tensor", "Tensor"], "Tensor"]]
BufferFactory = Callable[[Any], Any]  # -> .query(images), .state_dict(), .load_state_dict()
ScheduleFactory = Callable[[Any], Callable[[int], float]]
DatasetFactory = Callable[[Any, str], Any]  # (options, split) -> torch Dataset
RegularizerFactory = Callable[[Any], Callable[..., "Tensor"]]  # -> (d, real, fake) -> loss
AugmentFactory = Callable[[Any], Callable[["Tensor"], "Tensor"]]
AblationFactory = Callable[[Any], dict[str, Any]]
RecipeFactory = Callable[[Any], "Path | Any"]  # -> a path (or importlib.resources file)
MetricFactory = Callable[[Any], Any]  # -> an object as register_metrics says
LauncherFactory = Callable[[Any], Any]  # -> cgfw.Launcher
TrackerFactory = Callable[[Any, Any], Any]  # (options, cgfw.TrackedRun) -> cgfw.Tracker


@hookspec
def register_models(register: Register[ModelFactory]) -> None:
    """Training objectives: register a subclass of ``cgfw.Model`` (its class is the factory:
    ``Model(options, build)``), with a pydantic model of the [model] section's options. The
    class declares the recipe sections it builds components from (``slots``), the translations
    it learns (``directions``), its networks and optimizers, and its ``step``; see
    ``cgfw.training.model.Model`` and docs/plugins.md, "Writing a model"."""


@hookspec
def register_commands(register: Register[CommandFactory]) -> None:
    """Commands of the ``cgfw`` command line: ``factory(options) -> click.Command``; the
    registered name is the command's name (``cgfw NAME``). Options are unused (pass None)."""


@hookspec
def register_generators(register: Register[NetworkFactory]) -> None:
    """Generators: ``factory(options) -> nn.Module`` mapping (N, 3, H, W) in [-1, 1] to the same
    shape, for the sizes it documents (the paper's ResNet: multiples of 4; a U-Net: multiples of
    2 ** depth). Before training, cgfw calls it once on a sample and names the plugin if the
    shape is wrong or it raises; raise a ``cgfw.errors.CgfwError`` to say what size to use.

    The CycleGAN model calls generators and discriminators on same-sized inputs stacked along
    the batch (g_ab's translation with its identity image, g_ba's with its identity image and
    the forward cycle's, a discriminator's real with its pooled fake images): see "Stacked
    calls" in docs/plugins.md, and ``mixes_samples``."""


@hookspec
def register_discriminators(register: Register[NetworkFactory]) -> None:
    """Discriminators: ``factory(options) -> nn.Module`` mapping (N, 3, H, W) to raw scores
    (logits) of shape (N, 1, h, w); one score per patch (a conditional one, as pix2pix's,
    takes more channels). The CycleGAN calls them on stacked inputs as generators are (see
    register_generators)."""


@hookspec
def register_gan_losses(register: Register[GanLossFactory]) -> None:
    """Adversarial losses: ``factory(options) -> callable(scores, real, for_discriminator)``
    returning a scalar tensor. ``real`` says whether the scores should read as real;
    ``for_discriminator`` lets losses such as hinge differ between the two players.

    The pair form, for losses that compare real and fake scores (relativistic ones, such as
    cgfw_field's ralsgan): it is registered with ``pair=True`` (a model asks
    ``build.declares("losses.gan", "pair")``) and is called ``loss(real_scores, fake_scores,
    for_discriminator)``, once per player and discriminator: in the discriminator's update with
    its scores of the real and the fake images, and in the generator's with the frozen
    discriminator's scores of the real images (no gradient) and of the fakes. It returns that
    player's whole objective (for the discriminator, what the one-score form's real and fake
    calls sum to), which the model weights as it weights that sum: the CycleGAN, CUT and
    pix2pix halve the discriminator's."""


@hookspec
def register_reconstruction_losses(register: Register[ReconstructionLossFactory]) -> None:
    """Reconstruction losses for the cycle and identity terms:
    ``factory(options) -> callable(output, target)`` returning a scalar tensor."""


@hookspec
def register_buffers(register: Register[BufferFactory]) -> None:
    """Buffers of generated images shown to the discriminators: ``factory(options)`` returns an
    object with ``query(images) -> images``, ``state_dict()`` and ``load_state_dict(state)``."""


@hookspec
def register_schedules(register: Register[ScheduleFactory]) -> None:
    """Learning-rate schedules: ``factory(options) -> callable(epoch) -> float``, the factor
    applied to the base learning rate during ``epoch`` (1-based)."""


@hookspec
def register_datasets(register: Register[DatasetFactory]) -> None:
    """Datasets: ``factory(options, split) -> torch Dataset`` (split is "train" or "test").
    Items are dicts with "a" and "b", float tensors (3, H, W) in [-1, 1]. Training items are
    fetched with a key ``(index, seed)``: draw every random choice from ``seed`` (see
    ``cgfw.item_generator``) so runs are reproducible and resumable. Test items are fetched
    by plain index and are deterministic. A dataset whose test items are aligned pairs (item
    i's "b" is item i's "a" in the other domain) sets ``paired = True`` on the returned
    object; ``cgfw eval`` computes paired metrics (PSNR, SSIM) only on such datasets. A dataset
    without the split asked for raises ``cgfw.errors.MissingSplit`` (or returns an empty one):
    training then draws its sample grids from the training split; any other error stops it."""


@hookspec
def register_regularizers(register: Register[RegularizerFactory]) -> None:
    """Regularisers of a discriminator (gradient penalties): ``factory(options) -> callable(d,
    real, fake)`` returning the weighted scalar the model adds to that discriminator's loss
    (``real`` and ``fake`` are the images it judged this step, fakes from the pool). A class
    attribute ``graph_safe = True`` says it can be captured in a CUDA graph; without it, a run
    with ``train.cuda_graph = true`` is refused with the reason."""


@hookspec
def register_augments(register: Register[AugmentFactory]) -> None:
    """Discriminator augmentations: ``factory(options) -> callable(images) -> images``,
    differentiable, applied alike to every real and generated image a discriminator judges (in
    its own update and the generators'). ``graph_safe = True`` as for regularisers."""


@hookspec
def register_ablations(register: Register[AblationFactory]) -> None:
    """Named ablations for ``cgfw ablate --disable NAME``: ``factory(options) -> dict`` of dotted
    recipe overrides, e.g. ``{"buffer.name": "none"}``."""


@hookspec
def register_recipes(register: Register[RecipeFactory]) -> None:
    """Bundled recipes runnable by name (``cgfw run NAME``): ``factory(options) -> path`` of a
    TOML file (a ``pathlib.Path`` or ``importlib.resources`` traversable)."""


@hookspec
def register_metrics(register: Register[MetricFactory]) -> None:
    """Evaluation metrics for ``cgfw eval --metrics NAME,...``: ``factory(options) -> Metric``,
    an object with:

    - ``name: str``, the name shown in tables and metrics.json;
    - ``paired: bool``, True when ``fake[i]`` must be compared with its own ``real[i]`` (PSNR,
      SSIM), so it is computed only on datasets whose test split is aligned pairs; False for a
      distribution metric (KID), which compares the set of fakes with the set of reals;
    - optionally ``reported_with: tuple[str, ...]``, metrics always computed beside it (FID
      names KID);
    - ``higher_is_better: bool``, which way the tables call better and ``train.keep_best``
      keeps the best checkpoint by (required: a metric without it cannot pick one);
    - ``update(fake: Tensor, real: Tensor) -> None``: accumulate one batch, (N, 3, H, W) in
      [-1, 1], on any device; a distribution metric may get sets of different sizes, one of
      them possibly empty (an unpaired test split feeds each domain's images once);
    - ``compute() -> float``: the value over every batch since the last ``reset()``;
    - ``reset() -> None``: forget every batch;
    - optionally ``real_images(reals: cgfw.RealImages) -> None``, told before the first batch
      which real images are coming (a name, a digest of their file list, their count), so it
      may reuse what it computed from them before (cgfw_paper's KID and FID: saved features).

    The options (``cgfw eval --option NAME.KEY=VALUE``) are recorded in metrics.json and shown
    by ``cgfw compare``; a metric named in ``reported_with`` takes them unless given its own."""


@hookspec
def register_launchers(register: Register[LauncherFactory]) -> None:
    """Where ``cgfw ablate`` runs its runs (``--launcher NAME --launcher-opt KEY=VALUE,...``):
    ``factory(options) -> cgfw.Launcher``, whose ``launch(batch: cgfw.Batch)`` starts `cgfw
    run` for each planned run directory (``cgfw.run_command`` gives the command: from
    the run's variant.toml, or from its latest checkpoint) and returns the final losses by run
    name, or None when the runs go on after it returns (a scheduler's queue). ``default =
    True`` marks the one used without --launcher; ``requires`` as for trackers."""


@hookspec
def register_trackers(register: Register[TrackerFactory]) -> None:
    """Experiment trackers for ``[run] trackers``: ``factory(options, run: cgfw.TrackedRun) ->
    cgfw.Tracker`` (scalars, sample grids, a summary of final numbers, close). A factory
    attribute ``default = True`` puts it on when a recipe names none; ``requires = (package,
    extra)`` makes a recipe that asks for it without the package installed an error that says
    ``pip install "cgfw[extra]"``. A tracker's errors never stop a run: cgfw names it and goes
    on without it."""
