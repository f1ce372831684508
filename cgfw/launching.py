"""The old home of cgfw.session.launching: plugins written before the library was
layered import unchanged (with a warning). New code imports from `cgfw`."""

import warnings

from cgfw.session.launching import *  # noqa: F403

warnings.warn(
    "cgfw.launching moved to cgfw.session.launching; import what a plugin needs from cgfw",
    DeprecationWarning,
    stacklevel=2,
)
