"""The old home of cgfw.training.tracking: plugins written before the library was
layered import unchanged (with a warning). New code imports from `cgfw`."""

import warnings

from cgfw.training.tracking import *  # noqa: F403

warnings.warn(
    "cgfw.tracking moved to cgfw.training.tracking; import what a plugin needs from cgfw",
    DeprecationWarning,
    stacklevel=2,
)
