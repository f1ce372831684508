"""`cgfw save-pretrained`, model folders and the Hub: a folder translates as its run does (API
and CLI), is written whole or not at all, bad folders are one error naming the file, hf://
names load from huggingface_hub's cache (offline), and `cgfw push` makes the right calls.

Nothing here reaches the Hub: the download is read from a cache laid out as huggingface_hub
lays it out, and the upload's calls are recorded by patching HfApi."""

from __future__ import annotations

import errno
import hashlib
import json
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import Result
from PIL import Image

import cgfw
from cgfw.errors import CgfwError
from cgfw.store.folder import ModelFolder
from cgfw.tools import share

# A run's metrics.json as `cgfw eval --metrics psnr,kid,fid --option fid.resize=clean` writes it.
METRICS = {
    "split": "test",
    "samples": 9,
    "paired": True,
    "options": {"fid": {"resize": "clean"}, "kid": {"resize": "clean"}},
    "a2b": {"psnr": 11.25, "fid": 123.5},
    "b2a": {"psnr": 12.5, "fid": 99.0},
    "baseline": {"psnr": 10.0},
    "iteration": 4,
    "weights": "trained",
}
COMMIT = "0123456789abcdef0123456789abcdef01234567"  # a snapshot's commit in the Hub cache


@pytest.fixture(scope="module")
def run(trained_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shared tiny run, copied (its metrics.json is this module's own)."""
    copy = tmp_path_factory.mktemp("share") / "run"
    shutil.copytree(trained_run, copy)
    (copy / "metrics.json").write_text(json.dumps(METRICS), encoding="utf-8")
    return copy


@pytest.fixture(scope="module")
def folder(run: Path) -> Path:
    """The run's model folder, written once for the module."""
    out = run.parent / "model"
    share.save_pretrained(run, out)
    return out


@pytest.fixture
def folder_copy(folder: Path, tmp_path: Path) -> Path:
    """A copy to damage."""
    return Path(shutil.copytree(folder, tmp_path / "model"))


def batch() -> torch.Tensor:
    return torch.rand(2, 3, 36, 44, generator=torch.Generator().manual_seed(3)) * 2 - 1


def photo() -> Image.Image:
    image = Image.linear_gradient("L").resize((40, 52)).convert("RGB")
    image.putpixel((20, 26), (255, 0, 0))
    return image


def test_a_folder_translates_exactly_as_its_run(run: Path, folder: Path) -> None:
    by_run, by_folder = cgfw.load(run, device="cpu"), cgfw.load(folder, device="cpu")
    for direction in ("a2b", "b2a"):
        assert torch.equal(
            by_run.translate(batch(), direction), by_folder.translate(batch(), direction)
        )
    assert by_run.translate(photo()).tobytes() == by_folder.translate(photo()).tobytes()
    assert by_folder.recipe == by_run.recipe
    assert by_folder.metrics == METRICS and by_folder.final_losses is None


def test_the_folder_layout_config_and_model_card(folder: Path) -> None:
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md",
        "config.json",
        "generator_a2b.safetensors",
        "generator_b2a.safetensors",
        "metrics.json",
        "recipe.toml",
    ]
    assert not list(folder.parent.glob("model.*"))  # no staging folder left beside it
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    assert config["format"] == "cgfw-model-folder" and config["format_version"] == 1
    assert config["cgfw_version"] == cgfw.__version__
    assert config["generators"]["b2a"]["network"] == "g_ba"
    assert config["generators"]["b2a"]["file"] == "generator_b2a.safetensors"
    assert (config["iteration"], config["weights"], config["checkpoint"]) == (
        4,
        "trained",
        "latest",
    )
    # The front matter as the Hub reads it: huggingface_hub's own parser.
    hub = pytest.importorskip("huggingface_hub", reason="pip install 'cgfw[hub]'")
    card = hub.ModelCard.load(folder / "README.md")
    assert card.data.library_name == "cgfw" and card.data.license == "other"
    assert {"cyclegan", "image-to-image", "cgfw"} <= set(card.data.tags)
    text = card.text
    assert "License: not stated" in text
    assert "`resnet`: dropout = false, in_channels = 3, n_blocks = 2, ngf = 8" in text
    assert "crop size 32" in text and "train.max_iters = 4" in text and "iteration 4" in text
    assert "train.precision = auto" in text and "data: emoji" in text
    assert "| a2b | fid | 123.5 |" in text and "| b2a | psnr | 12.5 |" in text
    assert "`fid.resize = clean`" in text and "9 held-out images" in text
    assert 'cgfw.load("path/to/this/folder")' in text and "--direction b2a" in text


def test_cli_translates_with_a_folder(run: Path, folder: Path, cli: Callable[..., Result]) -> None:
    source = folder.parent / "photo.png"
    photo().save(source)
    outputs = []
    for model in (run, folder):
        target = folder.parent / f"out-{model.name}.png"
        result = cli("translate", model, source, target, "--direction", "b2a")
        assert result.exit_code == 0, result.output
        with Image.open(target) as image:
            outputs.append(image.tobytes())
    assert outputs[0] == outputs[1]


def test_export_reads_a_folder(folder_copy: Path, cli: Callable[..., Result]) -> None:
    target = folder_copy.parent / "g.safetensors"
    result = cli("export", folder_copy, "--format", "safetensors", "--output", target)
    assert result.exit_code == 0, result.output
    assert target.is_file()


def test_eval_scores_a_folder_without_its_authors_trackers(
    folder_copy: Path, monkeypatch: pytest.MonkeyPatch, cli: Callable[..., Result]
) -> None:
    from cgfw.tools import evaluate

    def scored(g_ab: Any, g_ba: Any, *args: Any) -> dict[str, Any]:
        assert g_ab is not None and g_ba is not None  # both of the folder's generators
        return {"split": "test", "samples": 1, "a2b": {"psnr": 1.0}, "b2a": {"psnr": 2.0}}

    monkeypatch.setattr(evaluate, "evaluate", scored)  # the scoring itself is test_evaluate's
    result = cli("eval", folder_copy, "--metrics", "psnr")
    assert result.exit_code == 0, result.output
    metrics = json.loads((folder_copy / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["a2b"] == {"psnr": 1.0} and metrics["iteration"] == 4
    assert metrics["checkpoint"].endswith("generator_a2b.safetensors")
    assert not list(folder_copy.glob("events.out.tfevents.*"))  # the recipe's TensorBoard


def test_save_pretrained_cli_and_its_license(
    run: Path, tmp_path: Path, cli: Callable[..., Result]
) -> None:
    out = tmp_path / "out"
    result = cli("save-pretrained", run, out, "--license", "apache-2.0")
    assert result.exit_code == 0, result.output
    assert f"to {out}" in result.stdout
    assert 'license: "apache-2.0"' in (out / "README.md").read_text(encoding="utf-8")
    result = cli("save-pretrained", run, tmp_path / "two", "--license", "Apache 2.0: yes")
    assert result.exit_code == 2 and "--license 'Apache 2.0: yes'" in result.output
    assert not (tmp_path / "two").exists()


def test_a_non_empty_out_is_refused_unless_force_and_only_a_folder_is_replaced(
    run: Path, folder_copy: Path, tmp_path: Path, cli: Callable[..., Result]
) -> None:
    (folder_copy / "recipe.toml").write_text("# an older model\n", encoding="utf-8")
    result = cli("save-pretrained", run, folder_copy)
    assert result.exit_code == 2 and "not empty; --force" in result.output
    assert (folder_copy / "recipe.toml").read_text(encoding="utf-8") == "# an older model\n"
    result = cli("save-pretrained", run, folder_copy, "--force")
    assert result.exit_code == 0, result.output
    assert "an older model" not in (folder_copy / "recipe.toml").read_text(encoding="utf-8")
    other = tmp_path / "notes"
    other.mkdir()
    (other / "mine.txt").write_text("keep", encoding="utf-8")
    result = cli("save-pretrained", run, other, "--force")
    assert result.exit_code == 2 and "not a model folder" in result.output
    assert [p.name for p in other.iterdir()] == ["mine.txt"]
    result = cli("save-pretrained", run, tmp_path / "empty")  # an empty folder is filled
    assert result.exit_code == 0, result.output


def test_a_failed_write_leaves_nothing(
    run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Callable[..., Result]
) -> None:
    written = []
    real = share.export_safetensors

    def full_disk(generator: Any, path: Path) -> None:
        if written:
            path.write_bytes(b"half")
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(path)
        real(generator, path)

    monkeypatch.setattr(share, "export_safetensors", full_disk)
    result = cli("save-pretrained", run, tmp_path / "out")
    assert result.exit_code == 2
    assert "cannot write" in result.output and "generator_b2a.safetensors" in result.output
    assert "No space left on device" in result.output
    assert list(tmp_path.iterdir()) == []  # neither OUT nor its staging folder


def damage_weights(folder: Path) -> None:
    """The b2a file with one tensor of another shape (another ngf's, say)."""
    from safetensors.torch import load_file, save_file

    path = folder / "generator_b2a.safetensors"
    weights = load_file(str(path))
    key = next(k for k, v in weights.items() if v.dim() == 4)
    weights[key] = torch.zeros(3, *weights[key].shape[1:])
    save_file(weights, str(path))


@pytest.mark.parametrize(
    ("damage", "said"),
    [
        (
            lambda f: (f / "generator_b2a.safetensors").unlink(),
            "generator_b2a.safetensors: missing",
        ),
        (damage_weights, "generator_b2a.safetensors: the weights do not fit"),
        (
            lambda f: (f / "generator_b2a.safetensors").write_bytes(b"\x08\x00\x00\x00garbage"),
            "generator_b2a.safetensors: not a readable safetensors file",
        ),
        (lambda f: (f / "config.json").unlink(), "config.json: missing"),
        (lambda f: (f / "recipe.toml").unlink(), "recipe.toml: missing"),
    ],
    ids=["missing-weights", "wrong-shapes", "not-safetensors", "no-config", "no-recipe"],
)
def test_a_bad_folder_is_one_error_naming_the_file(
    folder_copy: Path, damage: Callable[[Path], None], said: str, cli: Callable[..., Result]
) -> None:
    damage(folder_copy)
    source = folder_copy.parent / "photo.png"
    photo().save(source)
    result = cli(
        "translate", folder_copy, source, folder_copy.parent / "o.png", "--direction", "b2a"
    )
    assert result.exit_code == 2, result.output
    assert said in " ".join(result.output.split())  # rich wraps long lines
    assert "Traceback" not in result.output


def test_a_newer_format_and_checkpoint_choices_are_refused(folder_copy: Path) -> None:
    config = json.loads((folder_copy / "config.json").read_text(encoding="utf-8"))
    (folder_copy / "config.json").write_text(json.dumps(config | {"format_version": 2}))
    with pytest.raises(CgfwError, match=r"config.json: model folder format 2 is newer"):
        cgfw.load(folder_copy)
    (folder_copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(CgfwError, match=r"checkpoint 'best': .* is a model folder"):
        cgfw.load(folder_copy, checkpoint="best")


def cache_repo(cache: Path, repo_id: str, folder: Path, commit: str = COMMIT) -> None:
    """`folder` as huggingface_hub caches a downloaded snapshot (the Hub's local-cache layout):
    CACHE/models--USER--REPO/blobs/<sha256> holds each file, snapshots/<commit>/<name> links to
    it, refs/main names the commit."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "blobs").mkdir(parents=True)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for path in folder.iterdir():
        data = path.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        (snapshot / path.name).symlink_to(Path("..", "..", "blobs", blob.name))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit, encoding="utf-8")


@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """huggingface_hub offline (HF_HUB_OFFLINE=1: no request leaves) over a cache of our own."""
    constants = pytest.importorskip("huggingface_hub.constants", reason="pip install 'cgfw[hub]'")
    cache = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # read at import, so set too
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


def test_hf_names_load_from_the_hub_cache(
    run: Path,
    folder: Path,
    hub_cache: Path,
    monkeypatch: pytest.MonkeyPatch,
    cli: Callable[..., Result],
) -> None:
    cache_repo(hub_cache, "someone/emoji-cyclegan", folder)
    import huggingface_hub

    asked: list[dict[str, Any]] = []
    real = huggingface_hub.snapshot_download

    def recorded(repo_id: str, **kwargs: Any) -> str:
        asked.append(kwargs)
        return real(repo_id, **kwargs)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", recorded)
    by_run = cgfw.load(run, device="cpu")
    for name in ("hf://someone/emoji-cyclegan", f"hf://someone/emoji-cyclegan@{COMMIT}"):
        by_hub = cgfw.load(name, device="cpu")
        assert by_hub.path.name == COMMIT  # huggingface_hub's snapshot folder, read in place
        assert torch.equal(by_hub.translate(batch(), "b2a"), by_run.translate(batch(), "b2a"))
    source = hub_cache.parent / "photo.png"
    photo().save(source)
    result = cli("translate", "hf://someone/emoji-cyclegan", source, hub_cache.parent / "o.png")
    assert result.exit_code == 0, result.output
    with Image.open(hub_cache.parent / "o.png") as image:
        assert image.tobytes() == by_run.translate(photo()).tobytes()
    with pytest.raises(CgfwError, match=r"hf://someone/other: cannot be had from the Hugging"):
        cgfw.load("hf://someone/other")
    assert asked[1]["revision"] == COMMIT
    # Only a model folder's files are fetched, whatever else the repository holds.
    assert "*.safetensors" in asked[0]["allow_patterns"] and "*" not in asked[0]["allow_patterns"]


def test_without_huggingface_hub_hf_names_say_what_to_install(
    run: Path, monkeypatch: pytest.MonkeyPatch, cli: Callable[..., Result]
) -> None:
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import fails as if absent
    with pytest.raises(CgfwError, match=r"needs huggingface_hub .*pip install 'cgfw\[hub\]'"):
        cgfw.load("hf://someone/emoji-cyclegan")
    result = cli("push", run, "someone/emoji-cyclegan")
    assert result.exit_code == 2 and "pip install 'cgfw[hub]'" in result.output


def test_push_creates_the_repo_and_uploads_the_folder(
    run: Path, monkeypatch: pytest.MonkeyPatch, cli: Callable[..., Result]
) -> None:
    hub = pytest.importorskip("huggingface_hub", reason="pip install 'cgfw[hub]'")
    calls: list[tuple[str, dict[str, Any]]] = []

    def create_repo(self: Any, repo_id: str, **kwargs: Any) -> str:
        calls.append(("create_repo", {"repo_id": repo_id, **kwargs}))
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self: Any, **kwargs: Any) -> None:
        uploaded = Path(kwargs["folder_path"])
        files = sorted(p.name for p in uploaded.iterdir())
        card = (uploaded / "README.md").read_text(encoding="utf-8")
        calls.append(("upload_folder", kwargs | {"files": files, "card": card}))

    monkeypatch.setattr(hub.HfApi, "create_repo", create_repo)
    monkeypatch.setattr(hub.HfApi, "upload_folder", upload_folder)
    result = cli("push", run, "someone/emoji-cyclegan", "--private", "--license", "mit")
    assert result.exit_code == 0, result.output
    assert "pushed to https://huggingface.co/someone/emoji-cyclegan" in result.stdout
    (name, created), (_, uploaded) = calls
    assert name == "create_repo"
    assert created == {
        "repo_id": "someone/emoji-cyclegan",
        "private": True,
        "exist_ok": True,
        "repo_type": "model",
    }
    assert uploaded["repo_id"] == "someone/emoji-cyclegan" and uploaded["repo_type"] == "model"
    assert "generator_a2b.safetensors" in uploaded["files"] and "config.json" in uploaded["files"]
    assert 'cgfw.load("hf://someone/emoji-cyclegan")' in uploaded["card"]
    assert 'license: "mit"' in uploaded["card"]
    assert not Path(uploaded["folder_path"]).exists()  # the temporary folder is gone


def test_a_failed_push_is_one_error(
    run: Path, monkeypatch: pytest.MonkeyPatch, cli: Callable[..., Result]
) -> None:
    hub = pytest.importorskip("huggingface_hub", reason="pip install 'cgfw[hub]'")

    def refused(self: Any, repo_id: str, **kwargs: Any) -> str:
        raise OSError("401 Client Error: Unauthorized")

    monkeypatch.setattr(hub.HfApi, "create_repo", refused)
    result = cli("push", run, "someone/emoji-cyclegan")
    assert result.exit_code == 2
    assert "push to someone/emoji-cyclegan failed (OSError: 401" in result.output
    assert "hf auth login" in " ".join(result.output.split())
    result = cli("push", run, "no-namespace")
    assert result.exit_code == 2 and "USER/REPO" in result.output


def test_model_folder_detection(folder: Path, run: Path) -> None:
    assert ModelFolder(folder).is_folder() and not ModelFolder(run).is_folder()
