"""The old home of cgfw.training.model: plugins written before the library was
layered import unchanged (with a warning). New code imports from `cgfw`."""

import warnings

from cgfw.training.model import *  # noqa: F403

warnings.warn(
    "cgfw.model moved to cgfw.training.model; import what a plugin needs from cgfw",
    DeprecationWarning,
    stacklevel=2,
)
