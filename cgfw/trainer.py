"""The old home of cgfw.training.loop: plugins written before the library was
layered import unchanged (with a warning). New code imports from `cgfw`."""

import warnings

from cgfw.training.loop import *  # noqa: F403

warnings.warn(
    "cgfw.trainer moved to cgfw.training.loop; import what a plugin needs from cgfw",
    DeprecationWarning,
    stacklevel=2,
)
