"""The base of every source: `ImageSource` (ids, splits, `dataset()`, `arrays()`) and
`_IdSource`, the base of the sources listed in Python (folders, LMDBs), whose inputs are read as
encoded bytes and decoded with Pillow in tf.data's parallel map; where derived files are cached.

`ImageSource.dataset` is the training pipeline; its tf.data stages are built in
`keras_dcgan.data.pipeline`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from keras_dcgan import validation
from keras_dcgan.data.decode import (
    DEFAULT_MAX_PIXELS,
    UNREADABLE,
    SkipLog,
    SkippedImage,
    decode_image,
)
from keras_dcgan.data.pipeline import build_dataset, epoch_order, keep_set, skip_usable
from keras_dcgan.errors import UserError
from keras_dcgan.images import to_uint8

SPLITS = ("train", "test", "all")
DECODE_GROUP = 16  # inputs decoded per Python call
CACHE_DIR_ENV = "KERAS_DCGAN_CACHE_DIR"


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
        validation.one_of(split, SPLITS, "split")
        ids = self.all_ids()
        keep = keep_set(keep_list)
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
        return build_dataset(
            self, image_size, channels, batch_size, split=split,
            holdout_fraction=holdout_fraction, keep_list=keep_list, small_images=small_images,
            shuffle=shuffle, seed=seed, shuffle_buffer=shuffle_buffer, cache=cache,
            input_context=input_context, drop_remainder=drop_remainder, epoch=epoch,
            skip_batches=skip_batches, max_image_pixels=max_image_pixels,
        )  # fmt: skip

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
        for batch_ids, batch in self.id_batches(ds, 1024):
            ids += batch_ids
            images.append(batch)
        if not images:
            raise UserError(f"{self.name} yielded no image.")
        return ids, np.concatenate(images)

    def id_batches(self, ds: tf.data.Dataset, batch_size: int):
        """(ids, uint8 images [B, size, size, channels]) batches of a dataset of (id bytes, image)
        as `examples()` and `decoded()` give, in order; a generator, one batch in memory."""
        for raw, images in ds.batch(batch_size).as_numpy_iterator():
            if images.dtype != np.uint8:  # digits: float in [-1, 1]
                images = to_uint8(images)
            yield [self.decode_id(bytes(r)) for r in raw], images

    def fingerprint(self) -> str:
        return f"{self.kind}:{self.name}"


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
            ids = epoch_order(ids, seed, epoch)
        if skip_examples:
            ids = skip_usable(ids, skip_examples, set(self.skip_log.items()))
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
