"""`cgfw import-weights`, a command the paper plugin registers: networks trained with the
authors' code (junyanz/pytorch-CycleGAN-and-pix2pix, files such as latest_net_G_A.pth) become a
cgfw run directory, so `cgfw translate` can use them and `cgfw run --resume` can fine-tune them.

The authors' ResnetGenerator and NLayerDiscriminator keep their layers in an nn.Sequential called
`model`, in the same order as cgfw_paper's resnet and patchgan; their keys are ours with a
`model.` prefix. The architecture settings (blocks, width, norm, dropout, layers) are read from
the keys and shapes, so the imported recipe always fits the files.
"""

from __future__ import annotations

import hashlib
import pickle
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.modules.instancenorm import _InstanceNorm

from cgfw import Model, create_run, refusal_reason, resolve_recipe
from cgfw.errors import CgfwError

# The authors' network names -> ours. Their D_A judges domain B (it is trained against G_A's
# fakes), so it is our d_b. A pretrained single-direction model is saved as `latest_net_G.pth`.
ROLES: dict[str, str] = {"G_A": "g_ab", "G_B": "g_ba", "D_A": "d_b", "D_B": "d_a", "G": "g_ab"}
OURS = ("g_ab", "g_ba", "d_a", "d_b")
SECTION = {"g_ab": "generator", "g_ba": "generator", "d_a": "discriminator", "d_b": "discriminator"}
# `latest_net_G_A.pth`, `200_net_D_B.pth`, `net_G.pth`
ROLE_IN_NAME = re.compile(r"(?:^|_)net_(G_A|G_B|D_A|D_B|G)\.pth$")
PREFIX = "model."
# Buffers that InstanceNorm saved before PyTorch 0.4; the authors' loader drops them too
# (BaseModel.__patch_instance_norm_state_dict), since affine-free instance norm has none now.
STALE_NORM_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")
SET_HELP = "Override a recipe key, e.g. --set data.root=datasets/horse2zebra (repeatable)."


@dataclass
class Source:
    """One weights file and the network it becomes."""

    path: Path
    role: str  # the authors' name: G_A, G_B, D_A, D_B or G
    network: str  # ours: g_ab, g_ba, d_a, d_b
    state: dict[str, Tensor]
    settings: dict[str, Any] = field(default_factory=dict)  # recipe options read from the keys
    dropped: list[str] = field(default_factory=list)  # stale instance-norm buffers

    @property
    def label(self) -> str:
        return f"{self.path} ({self.role})"


def parse_spec(spec: str) -> tuple[str, Path]:
    """`PATH` (the role read from the authors' file name) or `ROLE=PATH`."""
    role, sep, rest = spec.partition("=")
    if sep and not Path(spec).exists():
        key = role.strip()
        if key in ROLES:
            return key, Path(rest)
        theirs = {v: k for k, v in ROLES.items() if k != "G"}
        if key in theirs:  # our own names are accepted too
            return theirs[key], Path(rest)
        raise CgfwError(
            f"{spec!r}: unknown network '{key}'; use one of G_A, G_B, D_A, D_B, G "
            "(the authors' names) or g_ab, g_ba, d_a, d_b"
        )
    path = Path(spec)
    match = ROLE_IN_NAME.search(path.name)
    if match is None:
        raise CgfwError(
            f"{path}: cannot tell which network this is from its name; the authors' files are "
            "named like latest_net_G_A.pth (G_A, G_B, D_A, D_B, or G for a pretrained "
            f"single-direction model). Say it explicitly: G_A={path}"
        )
    return match.group(1), path


def read_state_dict(path: Path) -> dict[str, Tensor]:
    """Tensors and plain containers only: a file that needs code to unpickle is refused."""
    if not path.is_file():
        raise CgfwError(f"{path}: no such file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CgfwError(
            f"{path}: refused: it holds Python objects beyond tensors, which would run code "
            f"when loaded ({refusal_reason(exc)}). cgfw loads plain state_dicts only; "
            "re-save it with torch.save(net.state_dict(), ...) if you trust its source"
        ) from None
    except Exception as exc:
        raise CgfwError(
            f"{path}: not a PyTorch weights file ({type(exc).__name__}: {exc})"
        ) from None
    if not isinstance(obj, Mapping) or not obj:
        raise CgfwError(
            f"{path}: holds a {type(obj).__name__}, not a state_dict (a mapping of parameter "
            "names to tensors) as the authors' save_networks writes"
        )
    state: dict[str, Tensor] = {}
    for key, value in obj.items():
        if not isinstance(key, str) or not isinstance(value, Tensor):
            raise CgfwError(
                f"{path}: entry {key!r} holds {type(value).__name__}, not a tensor: not a "
                "state_dict of the authors' networks (is it a full training checkpoint?)"
            )
        state[key] = value
    # Saved from nn.DataParallel without `.module`: every key carries `module.`.
    if all(k.startswith("module.") for k in state):
        state = {k.removeprefix("module."): v for k, v in state.items()}
    return state


def _keys_preview(state: Mapping[str, Tensor]) -> str:
    keys = list(state)
    return ", ".join(keys[:4]) + (", ..." if len(keys) > 4 else "")


def generator_settings(source: Source) -> dict[str, Any]:
    """ResnetGenerator's options from its keys: conv 1 is c7s1-ngf, blocks are `conv_block`s."""
    state = source.state
    if "model.1.weight" not in state:
        unet = next((k for k in state if k.startswith("model.model.")), None)
        if unet is not None:
            raise CgfwError(
                f"{source.label}: key '{unet}' is the authors' U-Net generator "
                "(--netG unet_256 / unet_128); cgfw has no U-Net component, only the ResNet "
                "generator (--netG resnet_9blocks / resnet_6blocks) can be imported"
            )
        if "model.0.weight" in state and state["model.0.weight"].shape[-1] == 4:
            raise CgfwError(
                f"{source.label}: key 'model.0.weight' is a 4x4 conv: this is a PatchGAN "
                "discriminator, not a generator; name it *_net_D_A.pth / *_net_D_B.pth or "
                f"pass D_A={source.path}"
            )
        raise CgfwError(
            f"{source.label}: no key 'model.1.weight', so not the authors' ResNet generator "
            f"(its keys: {_keys_preview(state)})"
        )
    first = state["model.1.weight"]
    if first.dim() != 4 or tuple(first.shape[2:]) != (7, 7):
        raise CgfwError(
            f"{source.label}: key 'model.1.weight' has shape {tuple(first.shape)}; the ResNet "
            "generator's first layer is a 7x7 conv, (ngf, 3, 7, 7)"
        )
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"model\.(\d+)\.conv_block\.", k))}
    # With dropout the block's second conv moves from index 5 to 6 (where batch norm keeps its
    # 1-d weight otherwise).
    dropout = any(
        re.fullmatch(r"model\.\d+\.conv_block\.6\.weight", k) and v.dim() == 4
        for k, v in state.items()
    )
    return {
        "name": "resnet",
        "n_blocks": len(blocks),
        "ngf": int(first.shape[0]),
        "norm": _norm(source, conv="model.1", norm="model.2"),
        "dropout": dropout,
    }


def discriminator_settings(source: Source) -> dict[str, Any]:
    """NLayerDiscriminator's options: a 4x4 conv per layer, n_layers + 2 of them."""
    state = source.state
    if "model.0.weight" not in state:
        if any(k.startswith("net.") for k in state):
            raise CgfwError(
                f"{source.label}: key 'net.0.weight' is the authors' pixel discriminator "
                "(--netD pixel); only the PatchGAN (--netD basic / n_layers) can be imported"
            )
        if "model.1.weight" in state:
            raise CgfwError(
                f"{source.label}: key 'model.1.weight' belongs to a generator, not a "
                "discriminator; name it *_net_G_A.pth / *_net_G_B.pth or pass "
                f"G_A={source.path}"
            )
        raise CgfwError(
            f"{source.label}: no key 'model.0.weight', so not the authors' PatchGAN "
            f"discriminator (its keys: {_keys_preview(state)})"
        )
    first = state["model.0.weight"]
    if first.dim() != 4 or tuple(first.shape[2:]) != (4, 4):
        raise CgfwError(
            f"{source.label}: key 'model.0.weight' has shape {tuple(first.shape)}; the "
            "PatchGAN's first layer is a 4x4 conv, (ndf, 3, 4, 4)"
        )
    convs = [k for k in state if re.fullmatch(r"model\.\d+\.weight", k) and state[k].dim() == 4]
    if len(convs) < 3:
        raise CgfwError(
            f"{source.label}: only {len(convs)} conv layers; the PatchGAN has n_layers + 2 "
            "(at least 3)"
        )
    return {
        "name": "patchgan",
        "n_layers": len(convs) - 2,
        "ndf": int(first.shape[0]),
        "norm": _norm(source, conv="model.2", norm="model.3"),
    }


def _norm(source: Source, conv: str, norm: str) -> str:
    """The norm layer from the first normalised conv: the authors give convs a bias exactly
    when the norm is InstanceNorm, and only BatchNorm has an affine weight."""
    has_bias = f"{conv}.bias" in source.state
    has_affine = f"{norm}.weight" in source.state
    if has_affine and not has_bias:
        return "batch"
    if has_bias and not has_affine:
        return "instance"
    if not has_bias and not has_affine:
        return "none"  # the authors' --norm none: no bias either, as cgfw's (conv_bias)
    raise CgfwError(
        f"{source.label}: key '{norm}.weight' with a conv bias '{conv}.bias' is an affine "
        "InstanceNorm, which the authors' code does not build; cgfw cannot import it"
    )


def fit(source: Source, net: nn.Module, what: str) -> dict[str, Tensor]:
    """The file's tensors under our key names, every key and shape checked."""
    ours = net.state_dict()
    theirs = dict(source.state)
    modules = dict(net.named_modules())
    for key in list(theirs):
        path, _, leaf = key.removeprefix(PREFIX).rpartition(".")
        module = modules.get(path)
        if (
            leaf in STALE_NORM_BUFFERS
            and isinstance(module, _InstanceNorm)
            and f"{path}.{leaf}" not in ours
        ):
            source.dropped.append(key)
            del theirs[key]
    mapped: dict[str, Tensor] = {}
    for key, mine in ours.items():
        name = PREFIX + key
        if name in theirs:
            tensor = theirs.pop(name)
            if tensor.shape != mine.shape:
                raise CgfwError(
                    f"{source.label}: key '{name}' has shape {tuple(tensor.shape)}, but cgfw's "
                    f"{what} expects {tuple(mine.shape)}; the file was trained with other "
                    "settings (input/output channels other than 3?)"
                )
            if not tensor.dtype.is_floating_point and mine.dtype.is_floating_point:
                raise CgfwError(
                    f"{source.label}: key '{name}' holds {tensor.dtype} values, not weights"
                )
            mapped[key] = tensor
        elif key.endswith(".num_batches_tracked"):
            mapped[key] = mine  # BatchNorm's counter, absent from files before PyTorch 0.4.1
        else:
            raise CgfwError(f"{source.label}: key '{name}' is missing; cgfw's {what} needs it")
    if theirs:
        extra = sorted(theirs)
        more = f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""
        raise CgfwError(
            f"{source.label}: unexpected key '{extra[0]}'{more}; cgfw's {what} has no such "
            "layer: the file's architecture differs from the authors' ResNet / PatchGAN"
        )
    return mapped


def describe(settings: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in settings.items())


def read_sources(specs: Sequence[str]) -> list[Source]:
    if not specs:
        raise CgfwError("give at least one weights file, e.g. checkpoints/h2z/latest_net_G_A.pth")
    sources: list[Source] = []
    for spec in specs:
        role, path = parse_spec(spec)
        sources.append(Source(path, role, ROLES[role], read_state_dict(path)))
    seen: dict[str, Source] = {}
    for s in sources:
        if s.network in seen:
            raise CgfwError(
                f"{s.label} and {seen[s.network].label} both become {s.network}; give one file "
                "per network"
            )
        seen[s.network] = s
    for s in sources:
        is_generator = SECTION[s.network] == "generator"
        s.settings = generator_settings(s) if is_generator else discriminator_settings(s)
    # One recipe section describes both networks of a kind, so their settings must agree.
    for kind in ("generator", "discriminator"):
        of_kind = [s for s in sources if SECTION[s.network] == kind]
        for s in of_kind[1:]:
            if s.settings != of_kind[0].settings:
                raise CgfwError(
                    f"{s.label} ({describe(s.settings)}) and {of_kind[0].label} "
                    f"({describe(of_kind[0].settings)}) differ; both {kind}s of a cgfw run "
                    "share one architecture"
                )
    return sources


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class Imported:
    run_dir: Path
    sources: list[Source]
    fresh: list[str]  # our networks that no file provided


def import_weights(
    specs: Sequence[str],
    out_dir: Path | None = None,
    recipe: str = "paper_default",
    overrides: Sequence[str] = (),
) -> Imported:
    """Read, check and map the files, then write RUN_DIR/recipe.toml and checkpoints/latest.pt."""
    sources = read_sources(specs)
    # The whole section: a recipe's other generator's options would not fit.
    sections = {SECTION[s.network]: s.settings for s in sources}
    resolved = resolve_recipe(recipe, sections, overrides)
    if "g_ab" not in resolved.model.info("directions", {}).get("a2b", ()):
        raise CgfwError(
            f"--recipe {recipe}: its model '{resolved.model.name}' is not the CycleGAN; the "
            "authors' files fit a CycleGAN recipe (paper_default)"
        )

    def fill(model: Model) -> None:  # networks no file provides stay as a fresh run's
        for s in sources:
            name = resolved.components[SECTION[s.network]].name
            what = f"{SECTION[s.network]} '{name}' ({describe(s.settings)})"
            model.networks[s.network].load_state_dict(fit(s, model.networks[s.network], what))

    imported = [
        {
            "file": str(s.path.resolve()),
            "sha256": _sha256(s.path),
            "authors_name": s.role,
            "network": s.network,
            "dropped_keys": s.dropped,
        }
        for s in sources
    ]
    run_dir = create_run(resolved, fill, out_dir, {"imported": imported})
    provided = {s.network for s in sources}
    return Imported(run_dir, sources, [n for n in OURS if n not in provided])
