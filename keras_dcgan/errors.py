"""The package's own exceptions. Dependency-free: `keras_dcgan.config` imports it without TF.

`Error` is the base of every failure the package raises on purpose, with a message that names the
problem: `dcgan <command>` prints it on one line and exits with status 1. Any other exception is
a bug (or a library's failure) and keeps its traceback.
"""

from __future__ import annotations


class Error(Exception):
    """A failure the package expects and explains in its message (see the module docstring)."""


class UserError(Error, ValueError):
    """Something asked for is invalid: a flag, an argument, a path, a file's contents.

    A `ValueError`, so callers of the Python API that catch `ValueError` keep working.
    """
