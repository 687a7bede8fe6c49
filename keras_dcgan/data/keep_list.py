"""Keep-lists: the ids of a source to train on, one per line (what `dcgan dedup` writes and
`--keep_list` / `ImageSource.dataset(keep_list=...)` read). Also importable from
`keras_dcgan.data.dedup`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence

from keras_dcgan.errors import UserError


def write_keep_list(path: str | os.PathLike, ids: Sequence[str]) -> str:
    """Writes `ids` one per line (UTF-8) atomically: a temp file in the same folder, then rename."""
    if isinstance(ids, str):
        raise UserError("ids must be a sequence of strings, not one string.")
    ids = list(ids)
    for i in ids:
        if not isinstance(i, str) or not i.strip():
            raise UserError(f"Keep-list ids must be non-blank strings; got {i!r}.")
        if "\n" in i or "\r" in i:
            raise UserError(f"Keep-list ids must not contain newlines; got {i!r}.")
        if i.startswith("#"):
            raise UserError(f"Keep-list ids must not start with '#' (a comment); got {i!r}.")
    if not ids:
        raise UserError("No ids to write: a keep list needs at least one id.")
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "x", encoding="utf-8", newline="\n") as f:
            f.writelines(f"{i}\n" for i in ids)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def read_keep_list(path: str | os.PathLike) -> list[str]:
    """The ids of a keep list: one per line, blank lines and lines starting with '#' skipped."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise UserError(f"Keep list {path!r} does not exist.")
    with open(path, encoding="utf-8") as f:
        ids = [line.rstrip("\r\n") for line in f]
    ids = [i for i in ids if i.strip() and not i.startswith("#")]
    if not ids:
        raise UserError(f"Keep list {path!r} has no ids.")
    return ids
