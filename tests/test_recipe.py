from pathlib import Path

import pytest

from cgfw.errors import CgfwError
from cgfw.plugin.loader import Loaded
from cgfw.recipe import load, parse_override, validate


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "r.toml"
    path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[generatr]\nname='resnet'\n",
            r"r\.toml: unknown key 'generatr'; did you mean 'generator'\?",
        ),
        ("[train]\nmax_iter = 3\n", r"unknown key 'train\.max_iter'; did you mean 'max_iters'\?"),
        ("[train]\nbatch_size = 'two'\n", r"train\.batch_size: Input should be a valid integer"),
        (
            "[losses.cycle]\nweight = -1\n",
            r"losses\.cycle\.weight: Input should be greater than or equal to 0",
        ),
        (
            "[generator]\nname = 'resnet9'\n",
            r"generator\.name: unknown generator 'resnet9'; did you mean 'resnet'\?",
        ),
        (
            "[generator]\nn_block = 6\n",
            r"generator\.n_block: unknown option for generator 'resnet'; did you mean 'n_blocks'\?",
        ),
        (
            "[data]\nname='emoji'\nload_size=32\ncrop_size=64\n",
            r"crop_size 64 is larger than load_size 32",
        ),
        ("[losses.gan]\nname = 'lsgann'\n", r"unknown gan loss 'lsgann'; did you mean 'lsgan'\?"),
        ("[train\n", r"r\.toml: not valid TOML"),
    ],
)
def test_bad_recipes_name_file_key_and_fix(
    tmp_path: Path, loaded: Loaded, text: str, message: str
) -> None:
    with pytest.raises(CgfwError, match=message):
        load(
            write(tmp_path, text),
            loaded.registry,
            ["data.name=emoji"] if "[data]" not in text else [],
        )


def test_missing_required_option_says_how_to_set_it(tmp_path: Path, loaded: Loaded) -> None:
    with pytest.raises(
        CgfwError,
        match=r"data\.root: required by dataset 'folder'; "
        r"add it to the recipe or --set data\.root=\.\.\.",
    ):
        load(write(tmp_path, "[data]\nname = 'folder'\n"), loaded.registry)


def test_overrides_are_typed_toml_values(tmp_path: Path, loaded: Loaded) -> None:
    spec = write(tmp_path, "[data]\nname='emoji'\n")
    r = load(
        spec,
        loaded.registry,
        ["generator.n_blocks=6", "data.flip=true", "run.name=abc", "optimizer.betas=[0.9, 0.99]"],
    )
    assert r.options["generator"].n_blocks == 6  # type: ignore[attr-defined]
    assert r.options["data"].flip is True  # type: ignore[attr-defined]
    assert r.recipe.run.name == "abc"
    assert r.recipe.optimizer.betas == (0.9, 0.99)


@pytest.mark.parametrize("bad", ["generator.n_blocks", "=3", "a..b=1"])
def test_malformed_set_is_explained(bad: str) -> None:
    with pytest.raises(CgfwError, match="expected KEY=VALUE"):
        parse_override(bad)


def test_resolved_recipe_round_trips_with_every_default(loaded: Loaded) -> None:
    resolved = load("paper_default", loaded.registry)
    data = resolved.to_dict()
    assert data["generator"] == {
        "name": "resnet",
        "n_blocks": 9,
        "ngf": 64,
        "norm": "instance",
        "dropout": False,
        "in_channels": 3,  # filled from data.channels (3) when the recipe is validated
        "out_channels": 3,
    }
    assert data["losses"]["identity"]["weight"] == 0.5
    again = validate(data, loaded.registry, "again")
    assert again.to_dict() == data


def test_bundled_recipe_by_name_and_missing_file(loaded: Loaded) -> None:
    assert load("quickstart", loaded.registry).components["data"].name == "emoji"
    with pytest.raises(CgfwError, match="unknown recipe 'quickstrat'; did you mean 'quickstart'"):
        load("quickstrat", loaded.registry)
    with pytest.raises(
        CgfwError,
        match=r"recipe file not found: nope/quickstart.toml; the bundled recipe 'quickstart'",
    ):
        load("nope/quickstart.toml", loaded.registry)


def test_cli_reports_recipe_errors_with_exit_2_and_no_traceback(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    result = cli(
        "run", write(tmp_path, "[data]\nname='emoji'\n[generator]\nn_block = 6\n"), "--dry-run"
    )
    assert result.exit_code == 2
    assert "did you mean 'n_blocks'" in result.output
    assert "Traceback" not in result.output
    result = cli("recipe", "show", "quickstart", "--set", "oops")
    assert result.exit_code == 2 and "expected KEY=VALUE" in result.output


def test_recipes_are_data_names_are_looked_up_never_imported(
    tmp_path: Path, loaded: Loaded
) -> None:
    marker = tmp_path / "ran"
    spec = write(tmp_path, "[data]\nname = 'emoji'\n[generator]\nname = 'os:system'\n")
    with pytest.raises(CgfwError, match="unknown generator 'os:system'"):
        load(spec, loaded.registry)
    r = load(
        str(tiny_path(tmp_path)),
        loaded.registry,
        [f"run.description=__import__('os').system('touch {marker}')"],
    )
    assert r.recipe.run.description.startswith("__import__")  # kept as a plain string
    assert not marker.exists()


def tiny_path(tmp_path: Path) -> Path:
    path = tmp_path / "plain.toml"
    path.write_text("[data]\nname = 'emoji'\n", encoding="utf-8")
    return path


def test_a_recipe_can_extend_another_and_set_only_what_differs(
    tmp_path: Path, loaded: Loaded
) -> None:
    (tmp_path / "base.toml").write_text(
        '[run]\nname = "base"\nseed = 7\n[generator]\nn_blocks = 3\nngf = 8\n'
        '[data]\nname = "emoji"\nload_size = 32\ncrop_size = 32\n'
        "[losses.cycle]\nweight = 4.0\nforward = false\n",
        encoding="utf-8",
    )
    child = write(tmp_path, 'extends = "base.toml"\n[run]\nname = "child"\n[generator]\nngf = 4\n')
    resolved = load(child, loaded.registry)
    recipe = resolved.recipe
    assert (recipe.run.name, recipe.run.seed) == ("child", 7)  # [run] merged, not replaced
    assert resolved.section("generator") == {"n_blocks": 3, "ngf": 4}
    assert resolved.components["data"].name == "emoji" and recipe.extends is None
    # Writing out the default component's name is not a change of component.
    child = write(tmp_path, 'extends = "base.toml"\n[generator]\nname = "resnet"\n')
    assert load(child, loaded.registry).section("generator") == {
        "name": "resnet",
        "n_blocks": 3,
        "ngf": 8,
    }
    # Another component starts afresh (the old options would not fit), keeping engine keys.
    child = write(
        tmp_path,
        'extends = "base.toml"\n[generator]\nname = "resnet_upsample"\n'
        '[losses.cycle]\nname = "l1"\n',
    )
    resolved = load(child, loaded.registry)
    assert resolved.section("generator") == {"name": "resnet_upsample"}
    cycle = resolved.keys["losses.cycle"]
    assert (cycle.weight, cycle.forward) == (4.0, False)  # type: ignore[attr-defined]
    # Bundled names work; a loop, a missing file and an unknown name are named.
    bundled = load(write(tmp_path, 'extends = "quickstart"\n'), loaded.registry)
    assert bundled.recipe.run.name == "quickstart"
    (tmp_path / "base.toml").write_text('extends = "r.toml"\n', encoding="utf-8")
    with pytest.raises(CgfwError, match="leads back to itself"):
        load(write(tmp_path, 'extends = "base.toml"\n'), loaded.registry)
    with pytest.raises(CgfwError, match=r"r\.toml: extends = 'nope': unknown recipe 'nope'"):
        load(write(tmp_path, 'extends = "nope"\n'), loaded.registry)
    with pytest.raises(CgfwError, match="no such file next to this recipe"):
        load(write(tmp_path, 'extends = "gone.toml"\n'), loaded.registry)
    with pytest.raises(CgfwError, match="write it at the top of the file"):
        load(write(tmp_path, ""), loaded.registry, ["extends=quickstart"])


def test_set_name_starts_the_section_afresh_keeping_the_models_keys(
    tiny_recipe: Path, loaded: Loaded
) -> None:
    """`--set discriminator.name=pixel` on a recipe whose patchgan has n_layers: the pixel
    discriminator has no n_layers, so the section starts afresh (as extends does) instead of
    failing; a loss section keeps its weight, which the model reads."""
    resolved = load(
        str(tiny_recipe),
        loaded.registry,
        ["losses.cycle.weight=4.0", "discriminator.name=pixel", "losses.cycle.name=l1"],
    )
    assert resolved.section("discriminator") == {"name": "pixel"}
    resolved = load(
        str(tiny_recipe),
        loaded.registry,
        [
            "losses.gan.weight=0.5",
            "losses.gan.name=bce",
            "discriminator.name=pixel",
            "discriminator.ndf=4",
        ],
    )
    assert resolved.section("discriminator") == {"name": "pixel", "ndf": 4}
    assert resolved.keys["losses.gan"].weight == 0.5  # type: ignore[attr-defined]
    assert resolved.components["losses.gan"].name == "bce"


def test_a_recipe_without_a_model_section_trains_the_plugins_default(
    tiny_recipe: Path, loaded: Loaded
) -> None:
    resolved = load(str(tiny_recipe), loaded.registry)
    assert "[model]" not in tiny_recipe.read_text()
    assert (resolved.model.name, resolved.model.plugin) == ("cyclegan", "paper-models")
    assert resolved.to_dict()["model"] == {"name": "cyclegan"}


def test_a_section_of_another_model_is_a_typo_named_with_the_valid_keys(
    tiny_recipe: Path, loaded: Loaded
) -> None:
    with pytest.raises(CgfwError) as err:
        load(str(tiny_recipe), loaded.registry, ["bufer.capacity=3"])
    assert "unknown key 'bufer'; did you mean 'buffer'?" in str(err.value)
    with pytest.raises(CgfwError) as err:
        load(str(tiny_recipe), loaded.registry, ["losses.cycel.weight=3"])
    assert "unknown key 'losses.cycel'" in str(err.value)
    assert "valid here with model 'cyclegan': cycle, gan, identity, paired" in str(err.value)
