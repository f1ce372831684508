"""The old home of cgfw.store.checkpoint: plugins written before the library was
layered import unchanged (with a warning). New code imports from `cgfw`."""

import warnings

from cgfw.store.checkpoint import *  # noqa: F403

warnings.warn(
    "cgfw.checkpoint moved to cgfw.store.checkpoint; import what a plugin needs from cgfw",
    DeprecationWarning,
    stacklevel=2,
)
