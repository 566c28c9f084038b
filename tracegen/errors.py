"""The one exception type users see.

A :class:`TracegenError` is a user error (bad input file, bad argument, a spec that does not
validate). It subclasses ``ValueError`` so library callers can catch it as such; the CLI prints
it as one line on stderr and exits with status 2, never with a traceback.
"""

from __future__ import annotations

import os


class TracegenError(ValueError):
    """A user-facing error. ``str(err)`` is the one line printed by the CLI."""

    def __init__(self, message: str, path: str | os.PathLike | None = None):
        self.path = None if path is None else os.fspath(path)
        super().__init__(f"{self.path}: {message}" if self.path is not None else message)


class TraceFormatError(TracegenError):
    """A trace or distribution file that cannot be read: truncated, corrupt or inconsistent."""
