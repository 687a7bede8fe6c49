"""The package's messages: library code logs to `logging.getLogger("keras_dcgan.<module>")`.

Messages a user should see by default (a run continued, inputs skipped, a score) are logged at
`NOTICE` (25, between INFO and WARNING) with `notice(log, ...)`; INFO stays for details. So that
`train()` in a notebook or a script says what it does without any logging setup (as `print`
did), the package logger "keras_dcgan" has one handler of its own (`PackageHandler`, installed on
import): NOTICE and above to standard output, the message alone ("Warning: ..." for warnings and
errors). Like the libraries that do this (TensorFlow's and transformers' loggers), the package
logger does not propagate to the root logger: a root handler (absl's, or the one any call of
`logging.warning()` installs) would print every message twice. To route the records through your
own logging setup instead: `logging.getLogger("keras_dcgan").propagate = True` and
`.removeHandler(keras_dcgan.logs.HANDLER)`; to quiet it, `.setLevel("WARNING")`.
"""

from __future__ import annotations

import logging
import sys

PACKAGE_LOGGER = "keras_dcgan"
NOTICE = 25
logging.addLevelName(NOTICE, "NOTICE")


def notice(logger: logging.Logger, message: str, *args) -> None:
    """Logs a message that the user sees by default (level `NOTICE`)."""
    logger.log(NOTICE, message, *args)


class PackageHandler(logging.StreamHandler):
    """Writes to the current `sys.stdout` (looked up at every message: Jupyter, pytest's
    capture and redirections replace it), flushing after each message."""

    def __init__(self):
        super().__init__(sys.stdout)
        self.setLevel(NOTICE)
        self.setFormatter(_Formatter())

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, value):  # StreamHandler.__init__ assigns it; the property ignores it
        pass


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        return f"Warning: {message}" if record.levelno >= logging.WARNING else message


def install() -> PackageHandler:
    """Installs the package handler once; returns it."""
    logger = logging.getLogger(PACKAGE_LOGGER)
    for handler in logger.handlers:
        if isinstance(handler, PackageHandler):
            return handler
    handler = PackageHandler()
    logger.addHandler(handler)
    logger.propagate = False
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)
    return handler


HANDLER = install()
