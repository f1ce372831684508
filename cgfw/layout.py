"""The old home of cgfw.store.layout: plugins written before the library was
layered import unchanged (with a warning). New code imports from `cgfw`."""

import warnings

from cgfw.store.layout import *  # noqa: F403

warnings.warn(
    "cgfw.layout moved to cgfw.store.layout; import what a plugin needs from cgfw",
    DeprecationWarning,
    stacklevel=2,
)
