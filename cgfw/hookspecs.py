"""The old home of cgfw.plugin.hookspecs: plugins written before the library was
layered import unchanged (with a warning). New code imports from `cgfw`."""

import warnings

from cgfw.plugin.hookspecs import *  # noqa: F403

warnings.warn(
    "cgfw.hookspecs moved to cgfw.plugin.hookspecs; import what a plugin needs from cgfw",
    DeprecationWarning,
    stacklevel=2,
)
