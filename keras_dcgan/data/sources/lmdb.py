"""LSUN's LMDB export (`--dataset=/data/bedroom_train_lmdb`, or "lmdb:PATH"): `LmdbSource`,
the process-wide cache of LMDB environments, the check of a damaged or truncated data.mdb
(`check_lmdb`, `DamagedLmdbError`), the periodic release of the memory-mapped pages read, and
`write_lmdb_subset`, which copies some records into a new LMDB."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import threading
import uuid
from collections.abc import Iterable

import numpy as np

from keras_dcgan.data.sources.base import _IdSource, default_cache_dir
from keras_dcgan.errors import UserError

log = logging.getLogger(__name__)

_RECORDS_PER_COMMIT = 10_000  # write_lmdb_subset: bounded write transactions
_LMDB_ENVIRONMENTS: dict[tuple[int, int, int], object] = {}
_LMDB_ENVIRONMENTS_LOCK = threading.Lock()


def _shared_lmdb_environment(path: str):
    """The read-only environment of the LMDB in `path`, one per database file and process.

    py-lmdb refuses a second `lmdb.open` of a database that the process already holds open
    ("environment is already open in this process"; matched by the file, so another path to it
    fails too): every `LmdbSource` of the same database shares one environment, kept open for
    the life of the process.
    """
    stat = os.stat(os.path.join(path, "data.mdb"))
    key = (os.getpid(), stat.st_dev, stat.st_ino)
    with _LMDB_ENVIRONMENTS_LOCK:
        env = _LMDB_ENVIRONMENTS.get(key)
        if env is None:
            env = _open_checked_lmdb(path)
            _LMDB_ENVIRONMENTS[key] = env
        return env


RELEASE_EVERY_BYTES = 64 << 20  # LMDB values read between two drops of the mapped pages
_MAPPED_READ: dict[int, int] = {}  # id(env) -> bytes read since the last drop


def _release_mapped_pages(env, file: str, nbytes: int) -> None:
    """Every `RELEASE_EVERY_BYTES` read, drops the LMDB file's pages from this process's resident
    set (Linux: madvise(MADV_DONTNEED) over its read-only mappings, found in /proc/self/maps).

    LMDB reads through a memory map, so every page a pass touches stays in the process's RSS
    (as file pages) until the environment closes: a pass over LSUN's 43 GiB would show 43 GiB of
    RSS. The pages stay in the OS page cache; a later read faults them back in. Safe while other
    threads read: a read-only shared file mapping only loses its page-table entries."""
    key = id(env)
    total = _MAPPED_READ.get(key, 0) + nbytes
    if total < RELEASE_EVERY_BYTES:
        _MAPPED_READ[key] = total
        return
    _MAPPED_READ[key] = 0
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        real = os.path.realpath(file)
        with open("/proc/self/maps") as f:
            ranges = [line.split()[0] for line in f if line.rstrip().endswith(real)]
        for span in ranges:
            start, end = (int(v, 16) for v in span.split("-"))
            libc.madvise(ctypes.c_void_p(start), ctypes.c_size_t(end - start), 4)  # DONTNEED
    except (OSError, AttributeError, ValueError):  # not Linux: the pages stay mapped
        pass


class DamagedLmdbError(UserError):
    """An LMDB's data.mdb is not an LMDB, or is shorter than its own page table says (a
    truncated download or unzip): reading it would crash the process with a bus error."""


def _open_checked_lmdb(path: str):
    """lmdb.open (read-only) after checking that data.mdb is whole; raises DamagedLmdbError.

    LMDB memory-maps the file to the size its meta page records; a page past the end of a
    truncated file is a SIGBUS ("Fatal Python error: Bus error"), not an exception. The meta
    page names the last page in use, so `(last_pgno + 1) * page size` must fit in the file.
    """
    import lmdb

    file = os.path.join(path, "data.mdb")
    size = os.path.getsize(file)
    redo = "download or extract it again"
    try:
        env = lmdb.open(path, readonly=True, lock=False, readahead=False, meminit=False,
                        max_readers=512)  # fmt: skip
    except lmdb.Error as e:
        raise DamagedLmdbError(
            f"{file} is not a readable LMDB database ({size:,} bytes; {e}); {redo}."
        ) from None
    needed = (env.info()["last_pgno"] + 1) * env.stat()["psize"]
    if size < needed:
        env.close()
        raise DamagedLmdbError(
            f"{file} is truncated: {size:,} bytes, but its last page ends at byte {needed:,} "
            f"({size / needed:.1%} of it is there; an interrupted download or unzip, or a full "
            f"disk); {redo}."
        )
    return env


def check_lmdb(path: str | os.PathLike) -> int:
    """The number of records of the LMDB in folder `path` (or its data.mdb), after checking that
    the file is a whole LMDB database; raises `DamagedLmdbError` (one line: what is wrong and
    what to do) for a file of another kind or a truncated one, `UserError` for a missing one.
    Reads only the meta pages: instant, whatever the size."""
    return int(LmdbSource(os.fspath(path))._environment().stat()["entries"])


class LmdbSource(_IdSource):
    """An LMDB of encoded images (LSUN's export: key = image hash, value = JPEG/WebP bytes).

    The list of keys is read once with a cursor and cached as a .npy file under
    `default_cache_dir()/lmdb_keys/`, named by the database's path, size and modification time,
    so that reopening a 3M-image database takes a second. Ids are the keys as text (latin-1).
    """

    kind = "lmdb"

    def __init__(self, path: str, cache_dir: str | None = None):
        if os.path.basename(path) == "data.mdb":
            path = os.path.dirname(path) or "."
        if not os.path.isfile(os.path.join(path, "data.mdb")):
            raise UserError(f"{path!r} is not an LMDB folder (no data.mdb in it).")
        super().__init__(path)
        self.path = os.path.abspath(path)
        self.cache_dir = cache_dir or os.path.join(default_cache_dir(), "lmdb_keys")
        self._env = None
        self._env_pid = None
        self._lock = threading.Lock()
        self._keys = None
        self._ids = None
        self._environment()  # a damaged file is refused here, in one line (DamagedLmdbError)

    def _environment(self):
        with self._lock:
            if self._env is None or self._env_pid != os.getpid():
                self._env = _shared_lmdb_environment(self.path)
                self._env_pid = os.getpid()
            return self._env

    def _keys_cache_file(self) -> str:
        stat = os.stat(os.path.join(self.path, "data.mdb"))
        key = f"{self.path}|{stat.st_size}|{stat.st_mtime_ns}"
        return os.path.join(self.cache_dir, hashlib.sha1(key.encode()).hexdigest()[:20] + ".npy")

    def keys(self) -> np.ndarray:
        """All keys (bytes), in the database's order; cached on disk."""
        if self._keys is not None:
            return self._keys
        cache_file = self._keys_cache_file()
        if os.path.exists(cache_file):
            try:
                self._keys = np.load(cache_file, allow_pickle=False)
                return self._keys
            except (OSError, ValueError) as e:
                log.warning("Ignoring unreadable key cache %s: %s", cache_file, e)
        env, keys = self._environment(), []
        with env.begin() as txn:
            for key in txn.cursor().iternext(keys=True, values=False):
                keys.append(bytes(key))
                if len(keys) % 20_000 == 0:  # the cursor touches a page of every value
                    _release_mapped_pages(env, os.path.join(self.path, "data.mdb"),
                                          RELEASE_EVERY_BYTES)  # fmt: skip
        self._keys = np.array(keys, dtype=object)
        # numpy's fixed-width bytes drop trailing NULs: cache only keys that survive that.
        if keys and not any(k.endswith(b"\0") for k in keys):
            try:
                os.makedirs(self.cache_dir, exist_ok=True)
                tmp = f"{cache_file}.{os.getpid()}.tmp.npy"
                np.save(tmp, np.array(keys, dtype=bytes), allow_pickle=False)
                os.replace(tmp, cache_file)
            except OSError as e:
                log.warning("Could not cache the LMDB key list in %s: %s", self.cache_dir, e)
        return self._keys

    def all_ids(self) -> list[str]:
        if self._ids is None:
            self._ids = [bytes(k).decode("latin-1") for k in self.keys()]
        return self._ids

    def _encode_id(self, item_id: str) -> bytes:
        return item_id.encode("latin-1")

    def decode_id(self, raw: bytes) -> str:
        return raw.decode("latin-1")

    def read(self, item_id: str) -> bytes:
        env = self._environment()
        with env.begin(buffers=False) as txn:
            value = txn.get(item_id.encode("latin-1"))
        if value is None:
            raise OSError(f"key {item_id!r} not in the database")
        _release_mapped_pages(env, os.path.join(self.path, "data.mdb"), len(value))
        return value

    def fingerprint(self) -> str:
        stat = os.stat(os.path.join(self.path, "data.mdb"))
        return f"lmdb:{self.path}:{stat.st_size}:{stat.st_mtime_ns}"


def write_lmdb_subset(source, destination: str | os.PathLike, ids: Iterable[str]) -> int:
    """Writes the records of `ids` (LmdbSource ids: keys as latin-1 text) of `source` (an
    `LmdbSource`, or an LMDB folder) into a new LMDB folder `destination`; returns their number.

    The new database is written next to `destination` and renamed into place, so an interrupted
    copy never leaves a half-written database under that name; `destination` must not exist.
    Write it to a local disk (LMDB memory-maps its file) and copy the finished folder elsewhere.
    """
    import lmdb

    if not isinstance(source, LmdbSource):
        source = LmdbSource(os.fspath(source))
    destination = os.fspath(destination)
    if os.path.exists(destination):
        raise UserError(f"{destination!r} already exists.")
    ids = sorted(set(ids), key=lambda i: i.encode("latin-1"))  # LMDB's order: puts append
    if not ids:
        raise UserError("No ids to copy.")
    parent = os.path.dirname(os.path.abspath(destination))
    os.makedirs(parent, exist_ok=True)
    tmp = os.path.join(parent, f".{os.path.basename(destination)}.{uuid.uuid4().hex[:8]}.tmp")
    # A subset is never larger than its source; map_size is only an upper bound (sparse file).
    map_size = os.path.getsize(os.path.join(source.path, "data.mdb")) * 2 + (64 << 20)
    try:
        dst = lmdb.open(tmp, map_size=map_size)
        try:
            for start in range(0, len(ids), _RECORDS_PER_COMMIT):
                with dst.begin(write=True) as txn:
                    for item_id in ids[start : start + _RECORDS_PER_COMMIT]:
                        txn.put(item_id.encode("latin-1"), source.read(item_id), append=True)
        finally:
            dst.close()
        os.rename(tmp, destination)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return len(ids)
