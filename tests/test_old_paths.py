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


@pytest.mark.parametrize("old", sorted(OLD))
def test_an_old_path_gives_the_same_object_and_says_where_it_moved(old: str) -> None:
    name, new = OLD[old]
    code = f"import warnings; warnings.simplefilter('error'); import {old}"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert f"moved to {new}" in done.stderr  # a fresh process: the warning comes once
    with pytest.warns(DeprecationWarning):
        module = importlib.reload(importlib.import_module(old))
    assert getattr(module, name) is getattr(importlib.import_module(new), name)
