"""Recipe values that cannot work are refused while the recipe is read, each with one error that
names the key (and the bound), exit code 2 and no traceback: a section that is no table, a
component name that is no string, nesting deeper than the limit, numbers out of range, a run
name that would leave run.output_dir (cgfw issue 26)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

from cgfw.errors import CgfwError
from cgfw.plugin.loader import Loaded
from cgfw.recipe import MAX_DEPTH, load

Cli = Callable[..., Result]


def refused(result: Result, *fragments: str) -> None:
    """One clean error: exit 2, a single `error:`, every fragment in it (the cli fixture lets a
    traceback through as an exception, so reaching here means there was none)."""
    assert result.exit_code == 2, result.output
    assert result.output.count("error:") == 1, result.output
    for fragment in fragments:
        assert fragment in result.output, (fragment, result.output)


def show(cli: Cli, *sets: str) -> Result:
    return cli("recipe", "show", "quickstart", *[a for s in sets for a in ("--set", s)])


# --- component names that are no string ------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "key", "known"),
    [
        ("generator={name=5}", "generator.name", "resnet"),
        ("generator.name=5", "generator.name", "resnet"),
        ("generator.name=true", "generator.name", "resnet"),
        ("generator.name=false", "generator.name", "resnet"),  # not "or the default"
        ("generator.name=[1]", "generator.name", "resnet"),
        ("generator.name={a=1}", "generator.name", "resnet"),
        ("generator.name=''", "generator.name", "resnet"),
        ("discriminator.name=2.5", "discriminator.name", "patchgan"),
        ("losses.gan.name=5", "losses.gan.name", "lsgan"),
        ("buffer.name=[]", "buffer.name", "image_pool"),
        ("data.name=[1]", "data.name", "emoji"),
        ("schedule.name=5", "schedule.name", "constant"),
        ("model.name=5", "model.name", "cyclegan"),
        ("regularizer.name=0", "regularizer.name", "r1"),
    ],
)
def test_a_component_name_must_be_a_string_naming_one(
    cli: Cli, setting: str, key: str, known: str
) -> None:
    refused(show(cli, setting), f"{key}: must be a string naming a", "known:", known)


def test_a_name_of_the_wrong_type_in_a_recipe_file_is_named_with_the_file(
    tmp_path: Path, cli: Cli
) -> None:
    path = tmp_path / "r.toml"
    path.write_text("extends = 'quickstart'\n[generator]\nname = true\n", encoding="utf-8")
    refused(cli("recipe", "show", path), f"{path}: generator.name: must be a string naming a")


# --- sections that are no table ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "key", "example"),
    [
        ("generator=5", "generator", "generator={name='resnet'}"),
        ("discriminator='patchgan'", "discriminator", "discriminator={name='patchgan'}"),
        ("buffer=[1]", "buffer", "buffer={name='image_pool'}"),
        ("losses.gan=5", "losses.gan", "losses.gan={name='lsgan'}"),
        ("losses=5", "losses", "losses={"),
        ("regularizer=true", "regularizer", "regularizer={name='"),
        ("data=5", "data", "data={name='"),
        ("schedule=5", "schedule", "schedule={name='"),
        ("model=5", "model", "model={name='cyclegan'}"),
        ("run=5", "run", "run={"),
        ("optimizer=5", "optimizer", "optimizer={"),
        ("train=[1]", "train", "train={"),
        ("eval=5", "eval", "eval={"),
        ("alarms=false", "alarms", "alarms={"),
        ("init='normal'", "init", "init={"),
    ],
)
def test_a_section_given_a_value_is_refused_with_an_example_table(
    cli: Cli, setting: str, key: str, example: str
) -> None:
    refused(show(cli, setting), f"{key}: must be a table", example)


def test_a_section_given_a_value_in_a_recipe_file_is_refused(tmp_path: Path, cli: Cli) -> None:
    path = tmp_path / "r.toml"
    path.write_text("extends = 'quickstart'\ngenerator = 5\n", encoding="utf-8")
    refused(cli("recipe", "show", path), f"{path}: generator: must be a table")


# --- nesting ----------------------------------------------------------------------------------

DEEP = 2000


@pytest.mark.parametrize(
    "text",
    [
        "x = " + "[" * DEEP + "]" * DEEP,
        "x = " + "{a=" * DEEP + "1" + "}" * DEEP,
        ".".join(["a"] * DEEP) + " = 1",
        "x = " + "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1),  # parses, but is too deep
    ],
    ids=["arrays", "tables", "dotted-key", "just-over"],
)
def test_a_recipe_file_nested_too_deep_is_refused_naming_the_limit(
    tmp_path: Path, cli: Cli, text: str
) -> None:
    path = tmp_path / "deep.toml"
    path.write_text(text + "\n", encoding="utf-8")
    refused(cli("recipe", "show", path), f"{path}: ", f"deeper than {MAX_DEPTH} levels")


@pytest.mark.parametrize(
    "setting",
    [
        "generator.x=" + "[" * DEEP + "]" * DEEP,
        "generator.x=" + "{a=" * DEEP + "1" + "}" * DEEP,
        ".".join(["a"] * DEEP) + "=1",
        "generator.x=" + "[" * MAX_DEPTH + "]" * MAX_DEPTH,
    ],
    ids=["arrays", "tables", "dotted-key", "just-over"],
)
def test_a_set_value_nested_too_deep_is_refused_naming_the_limit(cli: Cli, setting: str) -> None:
    key = setting.partition("=")[0]
    refused(show(cli, setting), f"--set {key[:40]}", f"deeper than {MAX_DEPTH} levels")


def test_an_ablation_value_nested_too_deep_is_refused(tiny_recipe: Path, cli: Cli) -> None:
    deep = "[" * DEEP + "]" * DEEP
    refused(cli("ablate", tiny_recipe, "--vary", f"generator.x={deep}"), "--vary generator.x")


def test_nesting_at_the_limit_reaches_the_schema(tmp_path: Path, cli: Cli) -> None:
    """Not refused for depth: the unknown key is what is wrong."""
    path = tmp_path / "r.toml"
    path.write_text("x = " + "[" * MAX_DEPTH + "]" * MAX_DEPTH + "\n", encoding="utf-8")
    refused(cli("recipe", "show", path), "unknown key 'x'")
    within = "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1)  # generator is the first level
    refused(show(cli, f"generator.x={within}"), "generator.x: unknown option")


# --- numbers that cannot work -----------------------------------------------------------------

BOUNDS = [
    ("run.seed=1e20", "run.seed", "exceeded maximum size"),  # past 64 bits: pydantic says so
    ("run.seed=1e18", "run.seed", "less than or equal to 4294967295"),
    ("run.seed=4294967296", "run.seed", "less than or equal to 4294967295"),
    ("run.seed=-1", "run.seed", "greater than or equal to 0"),
    ("data.load_size=1e5", "data.load_size", "less than or equal to 16384"),
    ("data.crop_size=1e5", "data.crop_size", "less than or equal to 16384"),
    (
        "data={name='folder', root='x', channels=1e18}",
        "data.channels",
        "less than or equal to 1024",
    ),
    ("optimizer.lr=1e308", "optimizer.lr", "less than or equal to 10"),
    ("optimizer.lr=inf", "optimizer.lr", "finite"),
    ("optimizer.lr=nan", "optimizer.lr", "finite"),
    ("optimizer.betas=[0.5, 1.5]", "optimizer.betas.1", "less than 1"),
    ("optimizer.betas=[-0.1, 0.9]", "optimizer.betas.0", "greater than or equal to 0"),
    ("init.gain=1e308", "init.gain", "less than or equal to 10"),
    ("init.gain=inf", "init.gain", "finite"),
    ("losses.gan.real_label=1e308", "losses.gan.real_label", "less than or equal to 1"),
    ("losses.gan.fake_label=-1e308", "losses.gan.fake_label", "greater than or equal to -1"),
    ("losses.gan.real_label=nan", "losses.gan.real_label", "finite"),
    ("losses.cycle.weight=inf", "losses.cycle.weight", "finite"),
    ("buffer.capacity=1e18", "buffer.capacity", "less than or equal to 100000"),
    ("discriminator.n_layers=1e18", "discriminator.n_layers", "less than or equal to 10"),
    ("discriminator.ndf=1e18", "discriminator.ndf", "less than or equal to 1024"),
    ("generator.ngf=1e18", "generator.ngf", "less than or equal to 1024"),
    ("generator.n_blocks=1e18", "generator.n_blocks", "less than or equal to 64"),
    ("train.num_workers=1e6", "train.num_workers", "less than or equal to 256"),
    ("train.batch_size=1e18", "train.batch_size", "less than or equal to 65536"),
    ("eval.batch_size=1e18", "eval.batch_size", "less than or equal to 65536"),
    ("train.max_iters=1e18", "train.max_iters", "less than or equal to 1000000000"),
    ("train.epochs=1e18", "train.epochs", "less than or equal to 1000000000"),
    ("train.log_every=1e18", "train.log_every", "less than or equal to 1000000000"),
    ("train.image_every=1e18", "train.image_every", "less than or equal to 1000000000"),
    ("train.checkpoint_every=1e18", "train.checkpoint_every", "less than or equal to 1000000000"),
    ("train.samples=1e18", "train.samples", "less than or equal to 256"),
    ("eval.every=1e18", "eval.every", "less than or equal to 1000000000"),
    ("alarms.d_loss_below=inf", "alarms.d_loss_below", "finite"),
    ("alarms.identity_below=inf", "alarms.identity_below", "finite"),
    ("schedule={name='step', gamma=10}", "schedule.gamma", "less than or equal to 1"),
    ("schedule={name='step', step_size=1e18}", "schedule.step_size", "1000000000"),
    ("schedule={name='linear_decay', n_epochs=1e18}", "schedule.n_epochs", "1000000000"),
    (
        "schedule={name='linear_decay', n_epochs_decay=1e18}",
        "schedule.n_epochs_decay",
        "1000000000",
    ),
    ("schedule={name='cosine', n_epochs=1e18}", "schedule.n_epochs", "1000000000"),
    ("schedule={name='cosine', min_factor=inf}", "schedule.min_factor", "finite"),
    ("regularizer={name='r1', gamma=inf}", "regularizer.gamma", "finite"),
    ("augment={name='diffaugment', p=nan}", "augment.p", "finite"),
]


@pytest.mark.parametrize(("setting", "key", "bound"), BOUNDS, ids=[b[0] for b in BOUNDS])
def test_a_number_that_cannot_work_is_refused_naming_key_and_bound(
    cli: Cli, setting: str, key: str, bound: str
) -> None:
    refused(show(cli, setting), f"{key}: ", bound)


def test_a_number_out_of_bounds_in_a_recipe_file_is_named_with_the_file(
    tmp_path: Path, cli: Cli
) -> None:
    path = tmp_path / "r.toml"
    path.write_text("extends = 'quickstart'\n[optimizer]\nlr = inf\n", encoding="utf-8")
    refused(cli("recipe", "show", path), f"{path}: optimizer.lr: ", "finite")


def test_the_bounds_leave_the_bundled_recipes_and_the_largest_values_valid(
    loaded: Loaded,
) -> None:
    for name in loaded.registry.names("recipe"):
        load(name, loaded.registry)
    load(
        "quickstart",
        loaded.registry,
        [
            "run.seed=4294967295",
            "data.load_size=16384",
            "data.crop_size=16384",
            "optimizer.lr=10",
            "buffer.capacity=100000",
            "discriminator.n_layers=10",
            "train.num_workers=256",
            "train.max_iters=1000000000",
        ],
    )


# --- run.name ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",  # as TOML strings: 'literal' keeps backslashes as they are
    ['"../x"', '"/abs"', '"a/b"', "'a\\b'", "'..\\x'", "'C:\\runs\\x'", '"a\\u0000b"'],
)
def test_a_run_name_is_one_path_component(cli: Cli, name: str) -> None:
    refused(show(cli, f"run.name={name}"), "run.name: ", "one path component")


def test_a_run_name_with_a_separator_in_a_recipe_file_is_refused(tmp_path: Path, cli: Cli) -> None:
    path = tmp_path / "r.toml"
    path.write_text("extends = 'quickstart'\n[run]\nname = '../../etc'\n", encoding="utf-8")
    refused(cli("recipe", "show", path), f"{path}: run.name: ")


def test_a_run_name_with_dots_and_dashes_is_fine(loaded: Loaded) -> None:
    assert load("quickstart", loaded.registry, ["run.name='h2z-v1.2_a'"]).recipe.run.name


def test_a_run_directory_is_never_made_outside_its_parent(tmp_path: Path) -> None:
    """The last check, where the directory is made (for callers that skip the recipe)."""
    from cgfw.store.provenance import new_run_dir

    with pytest.raises(CgfwError, match=r"run\.name"):
        new_run_dir(tmp_path / "runs", "../escaped")
    assert not (tmp_path / "escaped").exists() and not list(tmp_path.glob("escaped*"))
