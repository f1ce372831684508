"""The old home of cgfw.plugin.registry: plugins written before the library was
layered import unchanged (with a warning). New code imports from `cgfw`."""

import warnings

from cgfw.plugin.registry import *  # noqa: F403

warnings.warn(
    "cgfw.registry moved to cgfw.plugin.registry; import what a plugin needs from cgfw",
    DeprecationWarning,
    stacklevel=2,
)
