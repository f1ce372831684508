"""The old home of cgfw.plugin.loader: plugins written before the library was
layered import unchanged (with a warning). New code imports from `cgfw`."""

import warnings

from cgfw.plugin.loader import *  # noqa: F403

warnings.warn(
    "cgfw.plugins moved to cgfw.plugin.loader; import what a plugin needs from cgfw",
    DeprecationWarning,
    stacklevel=2,
)
