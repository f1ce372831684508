"""Plugins written before the library was layered import from cgfw's old module paths; those
still give the same objects, with a DeprecationWarning that says where they went."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

OLD = {
    "cgfw.hookspecs": ("hookimpl", "cgfw.plugin.hookspecs"),
    "cgfw.registry": ("NoOptions", "cgfw.plugin.registry"),
    "cgfw.model": ("Model", "cgfw.training.model"),
    "cgfw.trainer": ("check_output", "cgfw.training.loop"),
    "cgfw.launching": ("Batch", "cgfw.session.launching"),
    "cgfw.data": ("item_generator", "cgfw.training.data"),
    "cgfw.layout": ("RunDir", "cgfw.store.layout"),
}


def test_each_old_path_says_where_it_moved() -> None:
    """In a fresh process (the warning comes once per process), every old module at once."""
    code = "import warnings; warnings.simplefilter('always')\n" + "".join(
        f"import {old}\n" for old in sorted(OLD)
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    for old, (_name, new) in OLD.items():
        assert f"{old} moved to {new}" in done.stderr, old


@pytest.mark.parametrize("old", sorted(OLD))
def test_an_old_path_gives_the_same_object(old: str) -> None:
    name, new = OLD[old]
    with pytest.warns(DeprecationWarning, match=f"moved to {new}"):
        module = importlib.reload(importlib.import_module(old))
    assert getattr(module, name) is getattr(importlib.import_module(new), name)
