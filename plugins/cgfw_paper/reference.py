"""The authors' CycleGAN loop (benchmarks/reference_loop.py), the yardstick the CycleGAN model
is compared with: `cgfw bench --compare` times it, tests/test_parity.py checks the step equals it,
benchmarks/study_ground_truth.py trains with it."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import cgfw
from cgfw.errors import CgfwError


def load_reference() -> Any:
    """benchmarks/reference_loop.py of cgfw's own source checkout (never the current folder's:
    running a file found there would run whatever code a downloaded folder carries)."""
    name = "cgfw_reference_loop"
    if name in sys.modules:
        return sys.modules[name]
    path = Path(cgfw.__file__).resolve().parents[1] / "benchmarks" / "reference_loop.py"
    if path.is_file():
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
        return module
    raise CgfwError(
        "--compare needs benchmarks/reference_loop.py, which comes with a cgfw source checkout "
        "installed with pip install -e"
    )
