"""Output paths the user names (`--model_dir`, `--output`, `--export_base`): checked before
anything is written, and write failures turned into one line that names the path and the cause.

`PathError` is a `keras_dcgan.errors.UserError` (a ValueError) and an `OSError`: it is a user's
mistake or the state of the machine (a file where a folder belongs, a read-only place, a full
disk), never a bug, so the command line prints it as one line, and callers that catch either
class keep working.
"""

from __future__ import annotations

import errno
import os

from keras_dcgan.errors import UserError


class PathError(UserError, OSError):
    """A path that cannot be used for what it was given for; the message names it and why."""

    def __init__(self, message: str):
        super().__init__(message)

    def __str__(self) -> str:
        return str(self.args[0])


_CAUSES = (
    "No space left on device",
    "Read-only file system",
    "Permission denied",
    "Disk quota exceeded",
    "File too large",
    "Not a directory",
    "Is a directory",
)


def reason(error: BaseException) -> str:
    """The cause of an OSError (or a TF file error) in a few words: "No space left on device"."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    text = str(error).strip().splitlines()
    text = text[0] if text else type(error).__name__
    for words in _CAUSES:
        if words.lower() in text.lower():
            return words
    return text[:200]


def _first_existing(path: str) -> str:
    """`path` or the nearest of its ancestors that exists (as a file or folder)."""
    path = os.path.abspath(path)
    while not os.path.lexists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def ensure_folder(path: str | os.PathLike, what: str) -> str:
    """Creates the folder `path` (and its parents) if needed; raises `PathError` when `path` is a
    file, lies inside a file, or cannot be created (read-only, permission denied).

    `what` names the path in messages, e.g. "--model_dir".
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        return path
    existing = _first_existing(path)
    if os.path.abspath(existing) == os.path.abspath(path):
        raise PathError(f"{what} {path} is a file, not a folder.")
    if not os.path.isdir(existing):
        raise PathError(f"{what} {path} cannot be created: {existing} is a file, not a folder.")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise PathError(f"{what} {path} cannot be created: {reason(e)}.") from None
    return path


def check_writable_folder(path: str | os.PathLike, what: str) -> str:
    """`ensure_folder`, then proves that a file can be created in it (a probe file, removed);
    raises `PathError` for a read-only folder or file system. (Permission bits do not stop root,
    so the probe is a real write.)"""
    path = ensure_folder(path, what)
    probe = os.path.join(path, f".write_probe_{os.getpid()}")
    try:
        with open(probe, "wb"):
            pass
        os.remove(probe)
    except OSError as e:
        raise PathError(f"{what} {path} is not writable: {reason(e)}.") from None
    return path


def write_failure(path: str, error: BaseException, what: str = "") -> PathError:
    """A `PathError` for a write to `path` that failed with `error` (OSError or TF error)."""
    cause = reason(error)
    hint = ""
    if cause in ("No space left on device", "Disk quota exceeded") or (
        isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT)
    ):
        hint = " Free some space and run the same command again."
    return PathError(f"Could not write {what or path}: {cause}.{hint}")


def write_json(data, path: str | os.PathLike, what: str = "") -> str:
    """Writes `data` as indented JSON to `path` atomically (a temporary file in the same folder,
    then renamed): a reader never sees half a file, and two writers never share a temporary
    file. Failures are one `PathError` naming the path."""
    import json
    import tempfile

    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=folder)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(data, f, indent=1)
                f.write("\n")
            os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the result from other users
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise
    except OSError as e:
        raise write_failure(path, e, what) from None
    return path
