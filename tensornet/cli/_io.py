"""Output of the command line: the one place where tensornet writes to the terminal."""

from __future__ import annotations

import sys


def echo(*parts, file=None, sep: str = " ", end: str = "\n", flush: bool = False) -> None:
    """Write ``parts`` to standard output (or ``file``), like the built-in print."""
    stream = sys.stdout if file is None else file
    stream.write(sep.join(str(p) for p in parts) + end)
    if flush:
        stream.flush()
