"""Image sources and the training input pipeline: `open_source(...)`, `load_images(...)`.

A source is named by one string (the `--dataset` flag):

    digits                          scikit-learn's 8x8 digits (offline default)
    mnist, cifar10, celeb_a, ...    a TensorFlow Datasets name (also "tfds:NAME"), with data_dir
    /data/bedroom_train_lmdb        LSUN's LMDB export: a folder holding data.mdb (or "lmdb:PATH")
    /data/illustrations             any folder tree of image files (or "folder:PATH")

Every source gives the same pipeline (`ImageSource.dataset`): images centre-cropped to a square,
area-resized to `image_size`, converted to `channels`, scaled to float32 [-1, 1], shuffled with a
seed, optionally cached, batched with the GLOBAL batch size (remainder dropped) and prefetched.
Files that cannot be used (undecodable, truncated, empty, not images) are skipped and recorded in
`source.skip_log`; a source with no usable image is an error before training starts.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import threading
import uuid
from collections.abc import Iterable, Sequence

import numpy as np
import tensorflow as tf

from keras_dcgan.data.decode import (
    DEFAULT_MAX_PIXELS,
    TOO_SMALL,
    UNREADABLE,
    SkipLog,
    SkippedImage,
    decode_file,
    decode_image,
)
from keras_dcgan.errors import UserError
from keras_dcgan.images import to_uint8
from keras_dcgan.options import SMALL_IMAGE_POLICIES

log = logging.getLogger(__name__)

SPLITS = ("train", "test", "all")
DECODE_GROUP = 16  # inputs decoded per Python call
CACHE_DIR_ENV = "KERAS_DCGAN_CACHE_DIR"
LSUN_HELP = (
    "TFDS cannot prepare LSUN on TF 2.21 (its builder needs tensorflow-io). Download LSUN's "
    "LMDB export instead (README, 'Getting LSUN': http://dl.yf.io/lsun/scenes/"
    "bedroom_train_lmdb.zip, 42.77 GiB), unzip it and pass --dataset=/data/bedroom_train_lmdb."
)


def default_cache_dir() -> str:
    """Where derived files (LMDB key lists) are cached: $KERAS_DCGAN_CACHE_DIR, else
    $XDG_CACHE_HOME/keras_dcgan, else ~/.cache/keras_dcgan."""
    if os.environ.get(CACHE_DIR_ENV):
        return os.environ[CACHE_DIR_ENV]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "keras_dcgan")


def _stable_fraction(item_id: str) -> float:
    """A number in [0, 1) fixed by the id alone (same on every machine and run)."""
    digest = hashlib.sha1(item_id.encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def _check_options(split, holdout_fraction, small_images, batch_size, cache):
    if not 0.0 <= holdout_fraction < 1.0:
        raise UserError(f"holdout_fraction must be in [0, 1); got {holdout_fraction!r}.")
    if small_images not in SMALL_IMAGE_POLICIES:
        raise UserError(
            f"small_images must be one of {SMALL_IMAGE_POLICIES}; got {small_images!r}."
        )
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise UserError(f"batch_size must be a positive integer; got {batch_size!r}.")
    if cache is not None and not isinstance(cache, str):
        raise UserError(f"cache must be None, 'memory' or a folder path; got {cache!r}.")


def _keep_set(keep_list) -> set[str] | None:
    if keep_list is None:
        return None
    if isinstance(keep_list, (str, os.PathLike)):
        from keras_dcgan.data.dedup import read_keep_list

        keep_list = read_keep_list(keep_list)
    return set(keep_list)


class ImageSource:
    """A named collection of images; `dataset()` is the training pipeline over it.

    Subclasses give `examples()`: an unbatched dataset of (id, image) with image uint8 (or float32
    in [-1, 1]) [size, size, channels].
    """

    kind = "source"
    shuffles_fully = True  # examples(shuffle=True) already yields a full permutation
    skips_by_id = True  # examples(skip_examples=...) skips without decoding

    def __init__(self, name: str):
        self.name = name
        self.skip_log = SkipLog()
        self.max_pixels = DEFAULT_MAX_PIXELS  # decoding budget of sources decoded with Pillow

    def __repr__(self):
        return f"{type(self).__name__}({self.name!r})"

    def all_ids(self) -> list[str]:
        """Every input's id, in listing order (sources listed in Python)."""
        raise NotImplementedError(f"{type(self).__name__} does not list its inputs.")

    def ids(self, split="train", holdout_fraction=0.0, keep_list=None) -> list[str]:
        """The ids of a split, in listing order, after the keep-list."""
        if split not in SPLITS:
            raise UserError(f"split must be one of {SPLITS}; got {split!r}.")
        ids = self.all_ids()
        keep = _keep_set(keep_list)
        if keep is not None:
            ids = [i for i in ids if i in keep]
        if holdout_fraction and split != "all":
            test = split == "test"
            ids = [i for i in ids if (_stable_fraction(i) < holdout_fraction) == test]
        return ids

    def num_examples(self, split="train", holdout_fraction=0.0, keep_list=None) -> int | None:
        """Inputs in the split before any is skipped (None when unknown)."""
        return len(self.ids(split, holdout_fraction, keep_list))

    def examples(self, image_size, channels, *, split="train", holdout_fraction=0.0,
                 keep_list=None, small_images="upscale", shuffle=False, seed=0,
                 input_context=None, epoch=None, skip_examples=0) -> tf.data.Dataset:  # fmt: skip
        """(id, image) pairs. `epoch` (with `shuffle`) fixes the order to one that depends on
        (seed, epoch) alone; `skip_examples` (sources with `skips_by_id`) starts after that many
        usable inputs of it, without decoding them."""
        raise NotImplementedError

    def dataset(
        self,
        image_size: int,
        channels: int = 3,
        batch_size: int | None = None,
        *,
        split: str = "train",
        holdout_fraction: float = 0.0,
        keep_list: str | Sequence[str] | None = None,
        small_images: str = "upscale",
        shuffle: bool = True,
        seed: int | None = 0,
        shuffle_buffer: int = 10_000,
        cache: str | None = None,
        input_context: tf.distribute.InputContext | None = None,
        drop_remainder: bool = True,
        epoch: int | None = None,
        skip_batches: int = 0,
        max_image_pixels: int | None = DEFAULT_MAX_PIXELS,
    ) -> tf.data.Dataset:
        """The input pipeline: float32 batches [batch, size, size, channels] in [-1, 1].

        Args:
            image_size, channels: the model's images (1 = grayscale, 3 = RGB).
            batch_size: the GLOBAL batch (with `input_context`, each pipeline yields its replicas'
                share); None yields single images.
            split: "train", "test" or "all" of a `holdout_fraction` split made by a stable hash of
                each file path or key; for TFDS any TFDS split ("train", "test", "train[:90%]").
            holdout_fraction: share of the inputs in the "test" split (0: all are "train").
            keep_list: ids to keep (a path to a `dcgan dedup` keep-list, or a list of ids).
            small_images: images whose short side is below `image_size`: "upscale" (bicubic) or
                "skip" (counted in `skip_log`).
            shuffle, seed: seeded shuffling, different on every epoch.
            shuffle_buffer: buffer of the element shuffle after a cache (and for TFDS).
            cache: None, "memory", or a folder for a file cache of the decoded images (named by a
                hash of the source and these options, so a changed setting never reads stale data).
            input_context: from `strategy.distribute_datasets_from_function`: this pipeline reads
                only its shard of the inputs (disjoint across workers) and TF's auto-sharding is
                turned off; without it, tf.distribute's AUTO policy shards the batches.
            drop_remainder: every batch full (what the train step expects).
            epoch: None: an endless sequence of passes, reshuffled each time it is iterated. An
                int: ONE pass in the order of that epoch, a function of (seed, epoch) alone, so a
                restarted process sees the very same batches (what exact resume needs).
            skip_batches: with `epoch`, start after that many batches of the pass. Folders,
                LMDBs and the digits skip the inputs without decoding them (files already known
                to be unusable, from `skip_log`, are passed over); TFDS and cached pipelines
                skip decoded batches.
            max_image_pixels: folders and LMDBs: images with more pixels (read from the
                header, after the JPEG reduction) are skipped without being decoded, "above the
                pixel budget" in `skip_log` (None: only Pillow's own limit of about 179 MP).
        """
        _check_options(split, holdout_fraction, small_images, batch_size, cache)
        if max_image_pixels is not None and (
            not isinstance(max_image_pixels, int) or max_image_pixels < 1
        ):
            raise UserError(
                f"max_image_pixels must be a positive integer or None; got {max_image_pixels!r}."
            )
        self.max_pixels = max_image_pixels
        if skip_batches and (epoch is None or batch_size is None):
            raise UserError("skip_batches needs an epoch and a batch_size.")
        seed = 0 if seed is None else seed
        shuffle_seed = seed if epoch is None else _epoch_seed(seed, epoch)
        by_id = self.skips_by_id and cache is None
        per_replica = batch_size
        if batch_size is not None and input_context is not None:
            per_replica = input_context.get_per_replica_batch_size(batch_size)
        ds = self.examples(
            image_size,
            channels,
            split=split,
            holdout_fraction=holdout_fraction,
            keep_list=keep_list,
            small_images=small_images,
            shuffle=shuffle and cache is None,
            seed=seed,
            input_context=input_context,
            epoch=epoch,
            skip_examples=skip_batches * (per_replica or 0) if by_id else 0,
        )
        ds = ds.map(lambda _, image: image)
        if cache is not None:
            ds = ds.cache(self._cache_file(cache, image_size, channels, split, holdout_fraction,
                                           max_image_pixels, keep_list, small_images,
                                           input_context))  # fmt: skip
        if shuffle and (cache is not None or not self.shuffles_fully):
            ds = ds.shuffle(
                shuffle_buffer, seed=shuffle_seed, reshuffle_each_iteration=epoch is None
            )
        if batch_size is not None:
            ds = ds.batch(per_replica, drop_remainder=drop_remainder)
            if skip_batches and not by_id:
                ds = ds.skip(skip_batches)
        ds = ds.map(to_model_range, num_parallel_calls=tf.data.AUTOTUNE)
        if input_context is not None:
            options = tf.data.Options()
            options.experimental_distribute.auto_shard_policy = (
                tf.data.experimental.AutoShardPolicy.OFF
            )
            ds = ds.with_options(options)
        return ds.prefetch(tf.data.AUTOTUNE)

    def decode_id(self, raw: bytes) -> str:
        """The id (as in keep-lists and skip logs) of an `examples()` id tensor's bytes."""
        return raw.decode("utf-8", "surrogateescape")

    def arrays(
        self,
        image_size: int,
        channels: int = 3,
        *,
        split: str = "all",
        holdout_fraction: float = 0.0,
        keep_list=None,
        limit: int | None = None,
    ) -> tuple[list[str], np.ndarray]:
        """(ids, uint8 images [N, size, size, channels]) of the whole split in source order (at
        most `limit`), skipped inputs left out; e.g. the 32x32 crops that `dcgan dedup` hashes."""
        ds = self.examples(
            image_size, channels, split=split, holdout_fraction=holdout_fraction,
            keep_list=keep_list,
        )  # fmt: skip
        if limit is not None:
            ds = ds.take(limit)
        ids, images = [], []
        for raw, image in ds.batch(1024).as_numpy_iterator():
            ids += [self.decode_id(bytes(r)) for r in raw]
            images.append(image)
        if not images:
            raise UserError(f"{self.name} yielded no image.")
        images = np.concatenate(images)
        if images.dtype != np.uint8:  # digits: float in [-1, 1]
            images = to_uint8(images)
        return ids, images

    def _cache_file(self, cache, *settings) -> str:
        if cache == "memory":
            return ""
        *options, keep_list, small, ctx = settings
        key = {
            "source": self.fingerprint(),
            "options": options,
            "keep": sorted(_keep_set(keep_list)) if keep_list is not None else None,
            "small": small,
            "shard": None if ctx is None else [ctx.input_pipeline_id, ctx.num_input_pipelines],
        }
        digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
        os.makedirs(cache, exist_ok=True)
        return os.path.join(cache, f"{self.kind}-{digest}")

    def fingerprint(self) -> str:
        return f"{self.kind}:{self.name}"


def _epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch) % (2**31 - 1)


def _epoch_order(ids: list, seed: int, epoch: int) -> list:
    return [ids[i] for i in np.random.default_rng([seed, epoch]).permutation(len(ids))]


def _skip_usable(ids: list, count: int, unusable: set) -> list:
    """`ids` after the first `count` ids not in `unusable`."""
    start, usable = 0, 0
    while start < len(ids) and usable < count:
        usable += ids[start] not in unusable
        start += 1
    return ids[start:]


def to_model_range(images):
    """The pipeline's scaling: uint8 [0, 255] -> float32 [-1, 1]; float tensors pass through."""
    if images.dtype == tf.uint8:
        return tf.cast(images, tf.float32) / 127.5 - 1.0
    return images


class _IdSource(ImageSource):
    """A source listed in Python: ids (file paths, LMDB keys), each read as encoded bytes and
    decoded with Pillow in tf.data's parallel map."""

    def read(self, item_id: str) -> bytes:
        raise NotImplementedError

    def _encode_id(self, item_id: str) -> bytes:
        return item_id.encode("utf-8", "surrogateescape")

    def _decode(self, item_id: str, image_size: int, channels: int, small_images: str):
        return decode_image(self.read(item_id), image_size, channels, small_images,
                            self.max_pixels)  # fmt: skip

    def load(self, item_id: str, image_size: int, channels: int, small_images="upscale"):
        """One input as uint8 [size, size, channels]; raises SkippedImage (and records it).

        An input already in `skip_log` is not read again (it stays skipped for the whole run,
        which exact resume relies on: the skipped inputs are the ones listed)."""
        known = self.skip_log.reason(item_id)
        if known is not None:
            raise SkippedImage(known, "skipped before")
        try:
            return self._decode(item_id, image_size, channels, small_images)
        except SkippedImage as e:
            self.skip_log.add(item_id, e.reason, e.detail)
            raise
        except OSError as e:
            self.skip_log.add(item_id, UNREADABLE, str(e))
            raise SkippedImage(UNREADABLE, str(e)) from None

    def check_decodable(self, ids, image_size, channels, small_images) -> None:
        """Raises ValueError unless some input decodes (tries them in order, stops at the first
        good one: one decode for a healthy source)."""
        for item_id in ids:
            try:
                self.load(item_id, image_size, channels, small_images)
                return
            except SkippedImage:
                continue
        raise UserError(
            f"{self.name} has nothing usable: all {len(ids)} input(s) were skipped "
            f"({self.skip_log.summary()})."
        )

    def examples(self, image_size, channels, *, split="train", holdout_fraction=0.0,
                 keep_list=None, small_images="upscale", shuffle=False, seed=0,
                 input_context=None, epoch=None, skip_examples=0):  # fmt: skip
        ids = self.ids(split, holdout_fraction, keep_list)
        if not ids:
            what = "" if split == "all" and keep_list is None else f" in split {split!r}"
            raise UserError(f"{self.name} has no input{what}.")
        self.check_decodable(ids, image_size, channels, small_images)
        if input_context is not None:
            ids = ids[input_context.input_pipeline_id :: input_context.num_input_pipelines]
        n = len(ids)
        if shuffle and epoch is not None:
            ids = _epoch_order(ids, seed, epoch)
        if skip_examples:
            ids = _skip_usable(ids, skip_examples, set(self.skip_log.items()))
        ds = self._id_dataset(ids)
        if shuffle and epoch is None:
            ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
        return self._decoded(ds, image_size, channels, small_images)

    def decoded(self, ids: Sequence[str], image_size: int, channels: int,
                small_images: str = "upscale") -> tf.data.Dataset:  # fmt: skip
        """(id, image) of exactly these `ids`, in this order, unusable ones left out (and
        recorded in `skip_log`); images uint8 [size, size, channels]. (`dcgan dedup` streams
        the whole source through it in listing order.)"""
        return self._decoded(self._id_dataset(ids), image_size, channels, small_images)

    def _id_dataset(self, ids: Sequence[str]) -> tf.data.Dataset:
        return tf.data.Dataset.from_tensor_slices(
            tf.constant([self._encode_id(i) for i in ids], tf.string)
        )

    def _decoded(self, ds, image_size, channels, small_images) -> tf.data.Dataset:
        # Decoded in groups: one Python call per group amortises tf.data's per-call cost, and
        # tf.data runs several groups at once (Pillow releases the GIL while it decodes).
        def load_group(raws):
            images = np.zeros((len(raws), image_size, image_size, channels), np.uint8)
            ok = np.zeros(len(raws), bool)
            for k, raw in enumerate(raws):
                try:
                    item_id = self.decode_id(bytes(raw))
                    images[k] = self.load(item_id, image_size, channels, small_images)
                    ok[k] = True
                except SkippedImage:
                    pass
            return images, ok

        def load_tf(raws):
            images, ok = tf.numpy_function(load_group, [raws], (tf.uint8, tf.bool), stateful=False)
            images.set_shape((None, image_size, image_size, channels))
            ok.set_shape((None,))
            return raws, images, ok

        def loaded(raw, image, ok):
            return ok

        def drop_flag(raw, image, ok):
            return raw, image

        ds = ds.batch(DECODE_GROUP).map(load_tf, num_parallel_calls=tf.data.AUTOTUNE)
        return ds.unbatch().filter(loaded).map(drop_flag)


class FolderSource(_IdSource):
    """Every file under a folder (recursively, hidden files and folders excepted), ids are paths
    relative to it. Non-image files are skipped and counted like corrupt ones."""

    kind = "folder"

    def __init__(self, root: str):
        if not os.path.isdir(root):
            raise UserError(f"Image folder {root!r} does not exist or is not a folder.")
        super().__init__(root)
        self.root = os.path.abspath(root)
        self._ids = None

    def all_ids(self) -> list[str]:
        """Every file, walked in sorted order. Symbolic links are followed, but each real
        folder only once (the first path that reaches it, in that order): a link loop, or two
        links to one folder, neither hangs the listing nor lists its files twice."""
        if self._ids is None:
            ids = []
            seen = set()
            root = os.stat(self.root)
            seen.add((root.st_dev, root.st_ino))
            for dirpath, dirnames, filenames in os.walk(self.root, followlinks=True):
                kept = []
                for d in sorted(dirnames):
                    if d.startswith("."):
                        continue
                    try:
                        st = os.stat(os.path.join(dirpath, d))
                    except OSError:  # a broken link, or no permission
                        continue
                    if (st.st_dev, st.st_ino) not in seen:
                        seen.add((st.st_dev, st.st_ino))
                        kept.append(d)
                dirnames[:] = kept
                for name in sorted(filenames):
                    if name.startswith("."):
                        continue
                    path = os.path.join(dirpath, name)
                    if os.path.isfile(path):
                        ids.append(os.path.relpath(path, self.root))
            self._ids = ids
        return self._ids

    def read(self, item_id: str) -> bytes:
        with open(os.path.join(self.root, item_id), "rb") as f:
            return f.read()

    def _decode(self, item_id: str, image_size: int, channels: int, small_images: str):
        # Read as decoded: the header decides first (a 1.5 GB non-image costs a few bytes).
        return decode_file(os.path.join(self.root, item_id), image_size, channels, small_images,
                           self.max_pixels)  # fmt: skip

    def fingerprint(self) -> str:
        return f"folder:{self.root}"


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


class DigitsSource(ImageSource):
    """scikit-learn's handwritten digits (1,797 images of 8x8, shipped with the package), resized
    bilinearly; ids are "digits/NNNN" (row in `load_digits`)."""

    kind = "digits"

    def __init__(self):
        super().__init__("digits")

    def all_ids(self) -> list[str]:
        return [f"digits/{i:04d}" for i in range(1797)]

    def examples(self, image_size, channels, *, split="train", holdout_fraction=0.0,
                 keep_list=None, small_images="upscale", shuffle=False, seed=0,
                 input_context=None, epoch=None, skip_examples=0):  # fmt: skip
        from keras_dcgan.data.digits import load_digits

        ids = self.ids(split, holdout_fraction, keep_list)
        if not ids:
            raise UserError(f"digits has no input in split {split!r}.")
        if input_context is not None:
            ids = ids[input_context.input_pipeline_id :: input_context.num_input_pipelines]
        n = len(ids)
        if shuffle and epoch is not None:
            ids = _epoch_order(ids, seed, epoch)
        ids = ids[skip_examples:]
        images, _ = load_digits(image_size, channels)
        rows = np.array([int(i.split("/")[1]) for i in ids], np.int64)
        ds = tf.data.Dataset.from_tensor_slices(
            (tf.constant(ids, tf.string), images[rows].reshape(-1, *images.shape[1:]))
        )
        if shuffle and epoch is None:
            ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
        return ds


class TfdsSource(ImageSource):
    """A TensorFlow Datasets dataset with an "image" feature (labels are dropped).

    Prepared data under `data_dir` is used as is; otherwise it is downloaded and prepared first
    (`download=True`), except LSUN, which TFDS cannot prepare on TF 2.21 (reading an unprepared
    LSUN raises an error that points to the LMDB route).
    """

    kind = "tfds"
    shuffles_fully = False  # shuffled files, then a buffer
    skips_by_id = False

    def __init__(self, name: str, data_dir: str | None = None, download: bool = True):
        import tensorflow_datasets as tfds

        super().__init__(name)
        try:
            self.builder = tfds.builder(name, data_dir=data_dir)
        except Exception as e:  # tfds raises DatasetNotFoundError and friends
            raise UserError(f"Unknown TFDS dataset {name!r}: {e}") from None
        self.download = download and not name.startswith("lsun")
        features = getattr(self.builder.info, "features", None)
        if features is not None and "image" not in features:
            raise UserError(f"TFDS {name!r} has no 'image' feature (features: {list(features)}).")

    def num_examples(self, split="train", holdout_fraction=0.0, keep_list=None) -> int | None:
        if keep_list is not None:
            return None
        try:
            return int(self.builder.info.splits[split].num_examples)
        except Exception:
            return None

    def examples(self, image_size, channels, *, split="train", holdout_fraction=0.0,
                 keep_list=None, small_images="upscale", shuffle=False, seed=0,
                 input_context=None, epoch=None, skip_examples=0):  # fmt: skip
        import tensorflow_datasets as tfds

        if skip_examples:
            raise UserError("TFDS sources skip whole batches (ImageSource.dataset).")
        if epoch is not None:
            seed = _epoch_seed(seed, epoch)

        if holdout_fraction:
            raise UserError(
                "holdout_fraction is for folders and LMDBs; for TFDS use a split such as "
                "'train[:90%]'."
            )
        if split == "all":
            split = "+".join(self.builder.info.splits.keys())
        if self.download and not self.builder.is_prepared():
            self.builder.download_and_prepare()
        read_config = tfds.ReadConfig(
            shuffle_seed=seed, input_context=input_context, add_tfds_id=True
        )
        try:
            ds = self.builder.as_dataset(
                split=split, shuffle_files=shuffle, read_config=read_config
            )
        except Exception as e:
            if self.name.startswith("lsun"):
                raise UserError(
                    f"TFDS {self.name!r} is not prepared under {self.builder.data_dir!r}. "
                    f"{LSUN_HELP}"
                ) from None
            raise UserError(f"Cannot read TFDS {self.name!r} split {split!r}: {e}") from None
        keep = _keep_set(keep_list)
        if keep is not None:
            table = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(
                    tf.constant(sorted(keep), tf.string), tf.ones(len(keep), tf.int32)
                ),
                default_value=0,
            )
            ds = ds.filter(lambda ex: table.lookup(ex["tfds_id"]) > 0)
        skip_log, size = self.skip_log, image_size

        def record_small(item_id, height, width):
            self_id = bytes(item_id).decode("utf-8", "replace")
            skip_log.add(self_id, TOO_SMALL, f"{width}x{height} < {size}")
            return False

        def usable(ex):
            shape = tf.shape(ex["image"])
            small = tf.minimum(shape[0], shape[1]) < image_size
            return tf.cond(
                small,
                lambda: tf.numpy_function(
                    record_small, [ex["tfds_id"], shape[0], shape[1]], tf.bool, stateful=True
                ),
                lambda: tf.constant(True),
            )

        if small_images == "skip":
            ds = ds.filter(usable)
        return ds.map(
            lambda ex: (ex["tfds_id"], square_resize(ex["image"], image_size, channels)),
            num_parallel_calls=tf.data.AUTOTUNE,
        )

    def fingerprint(self) -> str:
        return f"tfds:{self.builder.info.full_name}:{self.builder.data_dir}"


def square_resize(image: tf.Tensor, image_size: int, channels: int) -> tf.Tensor:
    """A decoded uint8 image [H, W, C] (C 1, 3 or 4) -> uint8 [size, size, channels]: centre crop
    to a square, area resize (bicubic when upscaling), channels converted (alpha dropped)."""
    image = tf.convert_to_tensor(image)
    if image.shape.rank == 2:
        image = image[..., None]
    image = image[..., :3] if image.shape[-1] == 4 else image
    shape = tf.shape(image)
    side = tf.minimum(shape[0], shape[1])
    top, left = (shape[0] - side) // 2, (shape[1] - side) // 2
    image = image[top : top + side, left : left + side]
    area = tf.image.resize(image, (image_size, image_size), method="area")
    bicubic = tf.image.resize(image, (image_size, image_size), method="bicubic")
    image = tf.where(side >= image_size, area, bicubic)
    image = tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)
    if channels == 1 and image.shape[-1] == 3:
        image = tf.image.rgb_to_grayscale(image)
    elif channels == 3 and image.shape[-1] == 1:
        image = tf.image.grayscale_to_rgb(image)
    return tf.ensure_shape(image, (image_size, image_size, channels))


def open_source(source: str, data_dir: str | None = None, download: bool = True) -> ImageSource:
    """The `ImageSource` a `--dataset` string names (see the module docstring).

    An explicit prefix ("tfds:", "lmdb:", "folder:") decides; otherwise "digits", then an
    existing path (an LMDB if it holds data.mdb, else a folder), then a TFDS name.
    """
    if not isinstance(source, str) or not source:
        raise UserError(f"The dataset must be a non-empty string; got {source!r}.")
    prefix, _, rest = source.partition(":")
    if rest and prefix == "tfds":
        return TfdsSource(rest, data_dir=data_dir, download=download)
    if rest and prefix == "lmdb":
        return LmdbSource(rest)
    if rest and prefix == "folder":
        return FolderSource(rest)
    if source == "digits":
        return DigitsSource()
    if source == "lsun_bedroom":  # the presets' name before TFDS naming
        source = "lsun/bedroom"
    if os.path.exists(source):
        if os.path.isfile(os.path.join(source, "data.mdb")) or source.endswith("data.mdb"):
            return LmdbSource(source)
        if os.path.isdir(source):
            return FolderSource(source)
        raise UserError(f"{source!r} is a file; give the folder of images or the LMDB folder.")
    if os.sep in source.rstrip(os.sep) and not _looks_like_tfds(source):
        raise UserError(f"{source!r} does not exist (neither a folder nor an LMDB).")
    if _looks_like_tfds(source):
        return TfdsSource(source, data_dir=data_dir, download=download)
    raise UserError(
        f"Unknown dataset {source!r}: not 'digits', not an existing folder or LMDB, and not a "
        "TensorFlow Datasets name (e.g. mnist, cifar10, celeb_a, lsun/bedroom)."
    )


def _looks_like_tfds(name: str) -> bool:
    import tensorflow_datasets as tfds

    try:  # the local registry only (list_builders() also asks a remote community index)
        tfds.builder_cls(name.split("/")[0].split(":")[0])
    except Exception:
        return False
    return True


def load_images(
    source: str,
    image_size: int,
    channels: int = 3,
    batch_size: int | None = None,
    *,
    data_dir: str | None = None,
    **options,
) -> tf.data.Dataset:
    """float32 images in [-1, 1] from any source: `open_source(source).dataset(...)`.

    Example:
    ```python
    ds = load_images("/data/bedroom_train_lmdb", 64, batch_size=128, cache=None)
    gan.fit(ds, epochs=5)
    ```
    `options` are those of `ImageSource.dataset` (split, holdout_fraction, keep_list,
    small_images, shuffle, seed, shuffle_buffer, cache, input_context, drop_remainder).
    """
    source = open_source(source, data_dir=data_dir)
    return source.dataset(image_size, channels, batch_size, **options)
