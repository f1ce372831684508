"""The old home of cgfw.training.data: plugins written before the library was
layered import unchanged (with a warning). New code imports from `cgfw`."""

import warnings

from cgfw.training.data import *  # noqa: F403

warnings.warn(
    "cgfw.data moved to cgfw.training.data; import what a plugin needs from cgfw",
    DeprecationWarning,
    stacklevel=2,
)
