"""Where the library speaks: messages and progress bars on stderr, results on stdout. The
command line prints through the same two consoles, so a tool's warning and the command's own
lines never interleave out of order."""

from __future__ import annotations

import sys

from rich.console import Console

console = Console(stderr=True, soft_wrap=True)  # messages; long paths stay on one line, copyable
# Results (tables, recipes) on stdout; piped into a file or a CI log, tables keep their columns.
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)
QUIET = Console(stderr=True, quiet=True)  # for torchrun processes other than the main one
