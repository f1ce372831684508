"""User-facing errors: the CLI prints their message and exits with code 2, never a traceback."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class CgfwError(Exception):
    """A mistake the user can fix (bad recipe, unknown name, missing data); the message says how."""

    exit_code = 2


class MissingSplit(CgfwError):
    """The dataset has no such split (say, no testA/ and testB/ folders). Only what can do
    without the split catches it: the sample grids then show training images."""


class TrainingStopped(CgfwError):
    """Training cannot go on (a non-finite loss); the last good checkpoint is kept."""

    exit_code = 3


def closest(name: str, known: Iterable[str]) -> str | None:
    """The known name most like `name`, for "did you mean" hints."""
    matches = difflib.get_close_matches(name, list(known), n=1, cutoff=0.5)
    return matches[0] if matches else None


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """`; did you mean 'x'?` or the empty string."""
    match = closest(name, known)
    return f"; did you mean '{match}'?" if match else ""
