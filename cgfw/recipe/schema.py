"""The recipe's schema: the engine's own sections as pydantic models, and `Slot`, through which a
model asks for components. Component sections are checked later by each component's options."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

# Upper bounds past which a value cannot work; without them a typo such as 1e18 is taken for a
# number and fails deep inside torch, or never ends. Floats are checked finite in shape.py.
# Iterations, epochs and intervals: 10**9 iterations are months of steps at 100 it/s.
MAX_ITERATIONS = 10**9
# The data order seeds torch generators with run.seed * 1_000_003 + epoch (and each process
# with run.seed + rank): a seed up to 2**32 - 1 (numpy's range too) keeps both in 64 bits.
MAX_SEED = 2**32 - 1
# Images in one step: 65,536 images of 256 px are 51 GB of input alone.
MAX_BATCH = 65536
# Characters that would make run.name more than the one path component of its run directory
# (NUL: no path may hold one).
PATH_CHARACTERS = ("/", "\\", "\0")


def check_run_name(name: str) -> str:
    """A run name is one path component: `../x`, `/abs` or `a/b` would put the run directory
    outside run.output_dir."""
    if any(c in name for c in PATH_CHARACTERS):
        raise ValueError(
            "a run name is one path component (its directory is NAME-TIMESTAMP inside "
            "run.output_dir): / and \\ (and NUL) are refused; set run.output_dir for the folder"
        )
    return name


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ComponentSection(BaseModel):
    """A section whose `name` picks a registered component; its other keys are that component's
    options and are validated by the component's own model."""

    model_config = ConfigDict(extra="allow")
    name: str

    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class RunSection(Strict):
    name: Annotated[str, AfterValidator(check_run_name)] = Field(
        "run",
        description="run directories are named NAME-TIMESTAMP, under output_dir: one path "
        "component, without / or \\",
    )
    seed: int = Field(0, ge=0, le=MAX_SEED)
    output_dir: str = "runs"
    description: str = ""
    trackers: list[str | dict[str, Any]] | None = Field(
        None,
        description='where scalars, sample grids and metrics go, e.g. ["tensorboard", '
        '"mlflow"] or tables with options ({name = "mlflow", uri = "sqlite:///runs/mlflow.db"}); '
        "left out: the default trackers (TensorBoard)",
    )


class DefaultedSection(ComponentSection):
    """A section whose `name` may be left out: [model] (then the model an installed plugin
    marks as the default, cgfw's paper plugin's cyclegan), [data] and [schedule] (then the
    model's default component)."""

    name: str | None = None  # type: ignore[assignment]


class InitSection(Strict):
    name: Literal["normal", "xavier", "kaiming", "orthogonal"] = "normal"
    # The paper's std is 0.02 and the largest usual gain sqrt(2) (ReLU); 10 is far past both.
    gain: float = Field(
        0.02, gt=0, le=10, description="std for normal, gain for xavier / orthogonal"
    )


# Adam's decay rates: torch refuses any outside [0, 1).
Beta = Annotated[float, Field(ge=0, lt=1)]


class OptimizerSection(Strict):
    # GANs train at 1e-4..1e-3; Adam's steps are about lr in size, and 10 diverges at once.
    lr: float = Field(
        2e-4, gt=0, le=10, description="Adam learning rate for generators and discriminators"
    )
    betas: tuple[Beta, Beta] = (0.5, 0.999)


class TrainSection(Strict):
    epochs: int = Field(
        200, ge=1, le=MAX_ITERATIONS, description="an epoch is one pass over the dataset's length"
    )
    max_iters: int | None = Field(
        None, ge=1, le=MAX_ITERATIONS, description="stop after this many iterations"
    )
    batch_size: int = Field(
        1, ge=1, le=MAX_BATCH, description="global: split between torchrun processes"
    )
    device: str = Field("auto", description="auto (cuda if present), cpu, cuda, cuda:N")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="autocast dtype; auto: bf16 on CUDA, fp32 on CPU"
    )
    # channels_last made the step slower on an H100 at 256 px, batch 1; compile = "default" made
    # it faster inside the CUDA graph (42 vs 33 it/s), and is off until whole compiled runs have
    # passed the GPU tests (docs/benchmarks.md).
    channels_last: bool = Field(False, description="NHWC memory layout for networks and images")
    compile: Literal["off", "default", "reduce-overhead", "max-autotune"] = Field(
        "off",
        description="torch.compile mode for the networks; default: fused kernels, replayed "
        "inside train.cuda_graph (fastest measured on an H100); reduce-overhead and "
        "max-autotune capture CUDA graphs of their own instead",
    )
    cuda_graph: bool | Literal["auto"] = Field(
        "auto",
        description="replay each iteration as one captured CUDA graph; auto: on for CUDA when "
        "the run allows it (fp32/bf16, one process, no channels_last, compile off or default)",
    )
    stack_calls: bool = Field(
        True,
        description="run a network once on same-sized inputs stacked along the batch (a "
        "generator's translation and identity images, and g_ba's forward-cycle image with them; "
        "a discriminator's real and fake ones); false: every call apart, in the authors' order, "
        "each computed as their modules compute it (on a CPU their loop's values, bit for bit)",
    )
    ema: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="decay of an exponential moving average of the generators (e.g. 0.999), "
        "which samples, [eval], eval, translate and export then use (--raw: the trained "
        "weights); 0: off",
    )
    activation_checkpointing: bool | list[str] = Field(
        False,
        description="recompute a network's activations in the backward pass instead of keeping "
        "them (less memory at high resolution, one more forward per call): true for every "
        'network, or the slots to do it for, e.g. ["generator"]',
    )
    # Each worker is a process with its own copy of the dataset; no machine has 256 cores' worth
    # of use for more.
    num_workers: int = Field(0, ge=0, le=256, description="data-loading worker processes")
    log_every: int = Field(
        50, ge=1, le=MAX_ITERATIONS, description="iterations between scalar logs"
    )
    image_every: int = Field(
        1000, ge=1, le=MAX_ITERATIONS, description="iterations between sample grids"
    )
    checkpoint_every: int = Field(
        5000, ge=1, le=MAX_ITERATIONS, description="iterations between checkpoints"
    )
    keep_every: int | None = Field(
        None,
        ge=1,
        le=MAX_ITERATIONS,
        description="keep the checkpoint of every N-th iteration as checkpoints/iter_NNNNNNN.pt "
        "(those iterations are checkpointed whatever checkpoint_every is); none: only "
        "latest.pt and previous.pt",
    )
    keep_best: str | None = Field(
        None,
        min_length=1,
        description='a score [eval] computes, e.g. "eval/a2b/kid": the checkpoint that scores '
        "best by it (lower or higher, as its metric declares) is kept as checkpoints/best.pt, "
        "its score in best.json; needs eval.every",
    )
    # Every sample image is translated at every image_every and drawn in one grid.
    samples: int = Field(
        4, ge=1, le=256, description="fixed held-out images shown in the sample grid"
    )


class EvalSection(Strict):
    every: int | None = Field(
        None,
        ge=1,
        le=MAX_ITERATIONS,
        description="iterations between held-out evaluations (none: off)",
    )
    metrics: list[str] | None = Field(
        None,
        description="registered metric names; none: the metrics their plugins mark as the "
        "default (cgfw's paper plugin: psnr, ssim, l1)",
    )
    split: Literal["test", "train"] = "test"
    batch_size: int = Field(8, ge=1, le=MAX_BATCH)
    options: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="each metric's options, as cgfw eval --option takes them: "
        '[eval.options.fid] resize = "clean" (KID takes FID\'s)',
    )


class AlarmsSection(Strict):
    """Warnings for runs that go wrong (cgfw/training/alarms.py); the run goes on."""

    enabled: bool = Field(True, description="false: no alarm is checked")
    d_loss_below: float = Field(
        0.001,
        ge=0,
        description="a discriminator loss whose log-window average stays below this for "
        "`windows` windows in a row: the discriminator has won and the generators learn nothing",
    )
    windows: int = Field(3, ge=1, le=1000, description="log windows in a row for d_loss_below")
    identity_below: float = Field(
        0.005,
        ge=0,
        description="translations of the sample images that differ from their inputs by less "
        "than this (mean absolute difference, images in [-1, 1]): the generator became the "
        "identity",
    )
    inversion_below: float = Field(
        -0.5,
        ge=-1,
        le=1,
        description="translations whose brightness correlates with their inputs' below this "
        "(mean over the sample images): a colour inversion",
    )


class Recipe(BaseModel):
    """The engine's sections. Every other top-level key belongs to the model's slots (for
    cyclegan: generator, discriminator, losses, buffer) and is checked against them."""

    model_config = ConfigDict(extra="allow")
    extends: str | None = Field(
        None,
        description="start from another recipe (a bundled name, or a path relative to this "
        "file) and set only what differs; merged when the recipe is loaded",
    )
    run: RunSection = Field(default_factory=RunSection)
    model: DefaultedSection = Field(default_factory=DefaultedSection)
    data: DefaultedSection = Field(default_factory=DefaultedSection)
    schedule: DefaultedSection = Field(default_factory=DefaultedSection)
    init: InitSection = Field(default_factory=InitSection)
    optimizer: OptimizerSection = Field(default_factory=OptimizerSection)
    train: TrainSection = Field(default_factory=TrainSection)
    eval: EvalSection = Field(default_factory=EvalSection)
    alarms: AlarmsSection = Field(default_factory=AlarmsSection)


@dataclass(frozen=True)
class Slot:
    """A recipe section through which a model asks for a component: the registry kind that
    fills it, the component used when the section names none, and the keys the model itself
    reads from the section (a loss weight), validated by `keys`; every other key of the
    section is the component's option. An `optional` slot without a section (or one set to an
    empty table) has no component: the model goes without (a regulariser, an augmentation)."""

    kind: str
    default: str | None = None
    keys: type[BaseModel] | None = None
    optional: bool = False


# What every model gets, whatever it declares: its data and its learning-rate schedule.
ENGINE_SLOTS: dict[str, Slot] = {"data": Slot("dataset"), "schedule": Slot("schedule")}
ENGINE_SECTIONS = tuple(Recipe.model_fields)
