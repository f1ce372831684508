"""The old home of cgfw.training.tensorboard: plugins written before the library was
layered import unchanged (with a warning). New code imports from `cgfw`."""

import warnings

from cgfw.training.tensorboard import *  # noqa: F403

warnings.warn(
    "cgfw.tensorboard moved to cgfw.training.tensorboard; import what a plugin needs from cgfw",
    DeprecationWarning,
    stacklevel=2,
)
