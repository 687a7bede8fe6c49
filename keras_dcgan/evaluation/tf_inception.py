"""The reference network of FID, KID and IS: the 2015 Inception graph that published numbers use.

TTUR's reference FID code (Heusel et al. 2017), pytorch-fid, clean-fid (`legacy_tensorflow`),
torch-fidelity, StyleGAN2-ADA and StudioGAN all compute their features with the same frozen graph:
`classify_image_graph_def.pb` of Google's `inception-2015-12-05.tgz`. Its 2048-d `pool_3` features
give FID and KID; its 1008-way `softmax/logits` give the Inception Score (as OpenAI's original IS
code and StyleGAN2-ADA: `pool_3` times the logits' weights, without the bias). FIDs computed with
this network are comparable with theirs; those of Keras' InceptionV3 (`keras_inception_v3`, other
weights and resizing) are not.

`ReferenceInception()(images)` takes float images in [-1, 1] (NHWC, 1 or 3 channels, any size),
quantises them to 0..255 as an image file would hold them (`keras_dcgan.images.to_uint8`), repeats
grayscale to RGB, and feeds them, as float 0..255, to the graph's own input (`ExpandDims:0`, after
its JPEG decoder): the graph then resizes bilinearly to 299x299 and scales to [-1, 1] itself, as in
TTUR's code. It returns (pool float32 [N, 2048], probabilities float32 [N, 1008]); batches of any
size run at once (the graph's own reshape to a batch of one is not used).

The file is read with plain TensorFlow (`tf.compat.v1.wrap_function` over the imported GraphDef),
on the CPU or a GPU. Where it comes from:
- `path`: the `.pb`, or the downloaded `.tgz` (its graph is taken out into the Keras cache once;
  offline machines: copy either).
- else the Keras cache (`~/.keras/models/inception-2015-12-05/classify_image_graph_def.pb`,
  `$KERAS_HOME` respected); when it is missing, `download()` fetches the archive (about 85 MB)
  with `keras.utils.get_file`, takes the `.pb` out of it and checks it. Nothing is downloaded
  unless a user asks for this network (`dcgan eval`, `dcgan fetch_inception`, or a training run
  with FID/KID/IS metrics); the tests build a small graph with the same tensor names instead
  (`keras_dcgan.testing.inception_graph`).

Checks: the graph must parse and hold `ExpandDims:0`, a `pool_3:0` of 2048 features and
`softmax/logits/MatMul` weights of [2048, 1008] (a damaged or other file fails in one line). The
SHA-256 of Google's file could not be measured on the project's machines (they cannot reach the
download), so it is not pinned in the code: the first file that passes the checks has its SHA-256
written beside it (`<file>.sha256`) and every later load verifies it, so a cache file that changes
afterwards (a torn copy, another file put in its place) is refused. `REFERENCE_SHA256` pins it once
somebody measures it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tarfile
import zlib

import numpy as np
import tensorflow as tf

from keras_dcgan import validation
from keras_dcgan.errors import UserError
from keras_dcgan.evaluation.inception import batched
from keras_dcgan.images import to_uint8
from keras_dcgan.logs import notice

log = logging.getLogger(__name__)

NAME = "tf_inception_2015"
ARCHIVE = "inception-2015-12-05.tgz"
ARCHIVE_URL = f"http://download.tensorflow.org/models/image/imagenet/{ARCHIVE}"
GRAPH_FILE = "classify_image_graph_def.pb"
CACHE_SUBDIR = os.path.join("models", "inception-2015-12-05")
INPUT_TENSOR = "ExpandDims:0"  # float [1, H, W, 3] in 0..255, after the graph's JPEG decoder
POOL_TENSOR = "pool_3:0"  # [N, 1, 1, 2048]
LOGITS_MATMUL = "softmax/logits/MatMul"  # its second input: the logits' weights [2048, 1008]
POOL_DIM = 2048
NUM_CLASSES = 1008
REFERENCE_SHA256: str | None = None  # Google's file; not measured here (see the module doc)
MAX_GRAPH_BYTES = 1 << 30
OFFLINE_ENV = "KERAS_DCGAN_OFFLINE"  # "1": never download (the test suite sets it)


def cache_dir() -> str:
    base = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return os.path.join(base, CACHE_SUBDIR)


def cached_path() -> str:
    """Where the graph lives in the Keras cache (it may not be there yet)."""
    return os.path.join(cache_dir(), GRAPH_FILE)


def download() -> str:
    """Fetches Google's archive into the Keras cache (once), takes the graph out of it, checks it
    (see the module doc) and returns the graph's path."""
    import keras

    target = cached_path()
    if os.path.isfile(target):
        _check_file(target)
        return target
    notice(log, "Downloading the reference Inception graph (%s, about 85 MB) into %s.",
           ARCHIVE_URL, cache_dir())  # fmt: skip
    try:  # get_file deletes what a failed or interrupted download left
        archive = keras.utils.get_file(ARCHIVE, ARCHIVE_URL, cache_subdir=CACHE_SUBDIR)
    except Exception as e:  # noqa: BLE001 (Keras raises a bare Exception for a failed fetch)
        raise UserError(
            f"Could not download the reference Inception graph ({' '.join(str(e).split())}). On a "
            f"machine with internet run `dcgan fetch_inception` (or download {ARCHIVE_URL}), and "
            f"copy the .pb or the .tgz to {cache_dir()} or pass its path "
            "(--inception_weights=PATH)."
        ) from e
    return _unpack_graph(archive, target)


def resolve(path: str | None = None, allow_download: bool | None = None) -> str:
    """The checked graph file: `path` (a `.pb`; or the `.tgz` it comes in, whose graph goes to
    the Keras cache once), else the cached one, else (with `allow_download`; None: unless
    `$KERAS_DCGAN_OFFLINE` is "1", as in the tests) a fresh download."""
    if allow_download is None:
        allow_download = os.environ.get(OFFLINE_ENV, "") != "1"
    if path is not None:
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise UserError(f"The Inception graph file {path!r} does not exist or is not a file.")
        if not tarfile.is_tarfile(path):
            _check_file(path)
            return path
        if not os.path.isfile(cached_path()):  # the archive's graph goes to the Keras cache
            return _unpack_graph(path, cached_path())
    elif not os.path.isfile(cached_path()):
        if allow_download:
            return download()
        raise UserError(
            f"The reference Inception graph is not in the Keras cache ({cached_path()}). On a "
            f"machine with internet run `dcgan fetch_inception` (or download {ARCHIVE_URL}) "
            "and copy the .pb or the .tgz there or pass its path (--inception_weights=PATH)."
        )
    _check_file(cached_path())
    return cached_path()


def _unpack_graph(archive: str, target: str) -> str:
    """Writes the archive's graph member to `target` (atomically) and checks it."""
    tmp = f"{target}.{os.getpid()}.tmp"
    try:
        with tarfile.open(archive) as tar:
            members = [m for m in tar.getmembers() if os.path.basename(m.name) == GRAPH_FILE]
            if not members or not members[0].isfile() or members[0].size > MAX_GRAPH_BYTES:
                raise UserError(f"{archive} holds no {GRAPH_FILE}; is it {ARCHIVE}?")
            source = tar.extractfile(members[0])
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(tmp, "wb") as out:
                while chunk := source.read(1 << 20):
                    out.write(chunk)
    except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise UserError(f"{archive} is damaged or incomplete ({e}); download it again.") from e
    try:
        _check_file(tmp)
    except UserError:
        os.remove(tmp)
        raise
    os.replace(tmp, target)
    if os.path.exists(f"{tmp}.sha256"):
        os.replace(f"{tmp}.sha256", f"{target}.sha256")
    return target


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _check_file(path: str) -> str:
    """Checks the file (its SHA-256 against the pinned or recorded one; a file seen for the first
    time must load as the reference graph) and records its SHA-256 beside it; returns it."""
    digest = _sha256(path)
    recorded = f"{path}.sha256"
    expected = REFERENCE_SHA256
    if expected is None and os.path.isfile(recorded):
        with open(recorded) as f:
            expected = (f.read().split() or [None])[0]
    if expected is None:
        _load_graph(path)  # raises for anything but the reference graph's structure
    elif digest != expected:
        raise UserError(
            f"{path} has SHA-256 {digest}, not the {expected} of the reference Inception graph "
            "(a damaged or different file); delete it and download it again."
        )
    try:
        with open(recorded, "w") as f:
            f.write(f"{digest}  {GRAPH_FILE}\n")
    except OSError as e:  # a read-only copy: checked in full again at its next use
        log.warning("Cannot record the SHA-256 of %s beside it (%s).", path, e)
    return digest


def sha256_of(path: str) -> str:
    """The SHA-256 of a graph file that `resolve` returned (recorded beside it, else computed)."""
    try:
        with open(f"{path}.sha256") as f:
            return f.read().split()[0]
    except (OSError, IndexError):
        return _sha256(path)


def _read_graph_def(path: str):
    if os.path.getsize(path) > MAX_GRAPH_BYTES:
        raise UserError(f"{path} is too large for the Inception graph.")
    graph_def = tf.compat.v1.GraphDef()
    try:
        with open(path, "rb") as f:
            graph_def.ParseFromString(f.read())
    except Exception as e:  # noqa: BLE001 (protobuf's DecodeError and friends)
        raise UserError(f"{path} is not a TensorFlow GraphDef (damaged or truncated?).") from e
    return graph_def


def _load_graph(path: str):
    """A concrete function: float [N, H, W, 3] in 0..255 -> (pool [N, 2048], probs [N, 1008])."""
    graph_def = _read_graph_def(path)

    def imported(images):
        try:
            pool, matmul = tf.compat.v1.import_graph_def(
                graph_def, input_map={INPUT_TENSOR: images},
                return_elements=[POOL_TENSOR, LOGITS_MATMUL], name="",
            )  # fmt: skip
        except (ValueError, KeyError) as e:
            raise UserError(f"{path} is not the reference Inception graph: {e}") from e
        pool = tf.reshape(pool, [-1, pool.shape[-1]])
        logits = tf.matmul(pool, matmul.inputs[1])  # no bias, as the reference IS code
        return pool, tf.nn.softmax(logits)

    spec = tf.TensorSpec([None, None, None, 3], tf.float32)
    wrapped = tf.compat.v1.wrap_function(imported, [spec])
    pool, probabilities = wrapped.outputs
    if pool.shape[-1] != POOL_DIM or probabilities.shape[-1] != NUM_CLASSES:
        raise UserError(
            f"{path} is not the reference Inception graph: pool_3 has {pool.shape[-1]} features "
            f"and the logits {probabilities.shape[-1]} classes, not {POOL_DIM} and {NUM_CLASSES}."
        )
    return wrapped.prune(wrapped.inputs[0], [pool, probabilities])


class ReferenceInception:
    """The reference Inception graph as a feature network (see the module doc).

    Args:
        path: the graph (`.pb` or `.tgz`); None: the Keras cache, downloaded at first use when
            `allow_download`.
        batch_size: images per forward pass (any batch gives the same features).
    """

    def __init__(self, path: str | None = None, batch_size: int = 64,
                 allow_download: bool | None = None):  # fmt: skip
        self.path = resolve(path, allow_download)
        self.batch_size = validation.positive_int(batch_size, "batch_size")
        self._forward = _load_graph(self.path)
        self.weights = self.path
        self.id = f"{NAME}-{sha256_of(self.path)[:12]}"

    def __call__(self, images) -> tuple[np.ndarray, np.ndarray]:
        """float [-1, 1] NHWC -> (pool float32 [N, 2048], probabilities float32 [N, 1008])."""
        return batched(images, self.batch_size, self._pixels_forward)

    def _pixels_forward(self, images):
        pixels = to_uint8(images).astype(np.float32)  # what an image file holds, 0..255
        if pixels.shape[-1] == 1:
            pixels = np.repeat(pixels, 3, axis=-1)
        return self._forward(tf.constant(pixels))
