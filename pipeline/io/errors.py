"""The one exception the library raises for input it cannot use: the command line exits 2 on it.

An :class:`InputError` says that a file, a folder or a value the caller pointed at is missing or
unusable, and its message names it (a path, or the dotted params key it came from). Anything else
that goes wrong is a failure of the run itself. It is a :class:`ValueError`, so code that caught
``ValueError`` before still does.
"""

from __future__ import annotations


class InputError(ValueError):
    """Unusable input; ``str()`` names the file or key, ``lines`` (optional) give the details."""

    def __init__(self, message: str, lines: list[str] | None = None):
        super().__init__(message)
        self.message = message
        self.lines = list(lines or [])
