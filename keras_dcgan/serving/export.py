"""The generator as a TF Serving SavedModel: `export_generator(gan, export_base)`.

`<export_base>/<version>/` holds a SavedModel with these signatures (every input and output has
a batch dimension N, as TF Serving's server-side batching and REST row format need):

    serving_default  z float32 [N, z_dim]                         -> images uint8 [N, H, W, C],
                                                                     png_bytes string [N]
    from_seeds       seeds int64 [N]                              -> images, png_bytes,
                                                                     z float32 [N, z_dim]
    interpolate      z_start, z_end float32 [N, z_dim], t float32 [N]
                                                                  -> images, png_bytes, z
                                                                  z = z_start + t (z_end - z_start)

G runs in inference mode (BatchNorm moving statistics), in float32 whatever precision it was
trained in (`float32_twin`). `from_seeds` uses the same stateless RNG as `DCGAN.sample(seeds=...)`:
a seed gives the same image on any server, in any batch. A walk of S steps between two latents is
one `interpolate` request of S rows with t = 0, 1/(S-1), ..., 1. Inputs are checked in the graph,
so real TF Serving rejects the same requests as the local server (INVALID_ARGUMENT): an empty
batch, a batch above `max_batch`, non-finite values, mismatched batch sizes. `png_bytes` ends in
`_bytes`, so TF Serving's REST API returns it base64-encoded.

The version is written to a temporary folder next to it and renamed into place, so a server
watching `export_base` never loads half a model; `assets.extra/tf_serving_warmup_requests` holds
one request per signature, which TF Serving replays before it marks the version AVAILABLE.
"""

from __future__ import annotations

import os
import shutil
import uuid

import keras
import numpy as np
import tensorflow as tf

from keras_dcgan import latent, validation
from keras_dcgan.errors import UserError
from keras_dcgan.images import to_uint8
from keras_dcgan.networks import generator_z_dim
from keras_dcgan.options import check_z_prior
from keras_dcgan.paths import check_writable_folder, ensure_folder, write_failure

DEFAULT_MODEL_NAME = "dcgan"
DEFAULT_MAX_BATCH = 1024
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
SIGNATURES = ("serving_default", "from_seeds", "interpolate")


def versions(export_base: str) -> list[int]:
    """The integer version folders under `export_base` that hold a SavedModel, sorted."""
    if not os.path.isdir(export_base):
        return []
    found = []
    for name in os.listdir(export_base):
        if name.isdigit() and os.path.isfile(os.path.join(export_base, name, "saved_model.pb")):
            found.append(int(name))
    return sorted(found)


def _all_layers(model) -> list:
    """The layers of `model` and, recursively, of the models among them (public `.layers`:
    a `Generator`'s are all its named layers, in call order)."""
    layers = []
    for layer in getattr(model, "layers", ()):
        layers += [layer, *_all_layers(layer)]
    return layers


def float32_twin(generator):
    """`generator` itself if all its layers compute in float32, else a copy that does, with the
    same weights (which are float32 under any Keras mixed policy).

    Exports compute in float32 whatever precision G was trained in: CPU servers have no fast
    float16 kernels, and the served images do not depend on the hardware's half precision.
    """
    if all(layer.compute_dtype == "float32" for layer in [generator, *_all_layers(generator)]):
        return generator
    twin = type(generator).from_config({**generator.get_config(), "dtype": "float32"})
    twin.build()
    for mine, theirs in zip(twin.variables, generator.variables, strict=True):
        mine.assign(theirs)
    return twin


class _Endpoints:
    """The signature functions over one generator (graph code, traced at export)."""

    def __init__(self, generator, z_dim: int, z_prior: str, max_batch: int):
        self.generator = generator
        self.z_dim = z_dim
        self.z_prior = z_prior
        self.max_batch = max_batch

    def _check_batch(self, n, what):
        return [
            tf.debugging.assert_positive(n, message=f"empty batch: {what} has no rows"),
            tf.debugging.assert_less_equal(
                n,
                tf.constant(self.max_batch, n.dtype),
                message=f"batch too large: {what} has more rows than the maximum of "
                f"{self.max_batch} per request; split the request",
            ),
        ]

    def _render(self, z):
        images = to_uint8(self.generator(z, training=False))
        png = tf.map_fn(tf.io.encode_png, images, fn_output_signature=tf.string)
        return {"images": images, "png_bytes": png}

    def serving_default(self, z):
        checks = self._check_batch(tf.shape(z)[0], "z")
        checks.append(tf.debugging.assert_all_finite(z, "z has non-finite values"))
        with tf.control_dependencies(checks):
            return self._render(tf.identity(z))

    def from_seeds(self, seeds):
        with tf.control_dependencies(self._check_batch(tf.shape(seeds)[0], "seeds")):
            z = latent.latents_from_seeds(seeds, self.z_dim, self.z_prior)
        return {**self._render(z), "z": z}

    def interpolate(self, z_start, z_end, t):
        n = tf.shape(z_start)[0]
        checks = self._check_batch(n, "z_start")
        message = "z_start, z_end and t must have the same number of rows"
        checks += [
            tf.debugging.assert_equal(tf.shape(z_end)[0], n, message=message),
            tf.debugging.assert_equal(tf.shape(t)[0], n, message=message),
            tf.debugging.assert_all_finite(z_start, "z_start has non-finite values"),
            tf.debugging.assert_all_finite(z_end, "z_end has non-finite values"),
            tf.debugging.assert_all_finite(t, "t has non-finite values"),
        ]
        with tf.control_dependencies(checks):
            z = z_start + t[:, None] * (z_end - z_start)
        return {**self._render(z), "z": z}

    def input_signatures(self):
        z = tf.TensorSpec([None, self.z_dim], tf.float32)
        return {
            "serving_default": [tf.TensorSpec([None, self.z_dim], tf.float32, name="z")],
            "from_seeds": [tf.TensorSpec([None], tf.int64, name="seeds")],
            "interpolate": [z, z, tf.TensorSpec([None], tf.float32, name="t")],
        }


def export_generator(
    generator,
    export_base: str,
    *,
    z_prior: str = "uniform",
    version: int | None = None,
    max_batch: int = DEFAULT_MAX_BATCH,
    model_name: str = DEFAULT_MODEL_NAME,
    warmup: bool = True,
) -> str:
    """Writes `generator` (a `Generator`, or a `DCGAN`) as `<export_base>/<version>/`.

    Args:
        generator: the trained generator (or the DCGAN holding it; its z prior is then used).
        export_base: TF Serving's model base path.
        z_prior: the prior `from_seeds` draws from (the one G was trained with).
        version: the version number; default: one above the highest existing version (1 first).
            An existing version is never overwritten.
        max_batch: the largest batch a request may carry (larger ones are rejected).
        model_name: the model name in the warm-up requests (TF Serving's --model_name).
        warmup: write `assets.extra/tf_serving_warmup_requests`.

    Returns:
        The path of the new version folder.
    """
    export_base = os.fspath(export_base)
    check_writable_folder(export_base, "The export base (--export_base)")
    existing = versions(export_base)
    if version is None:
        version = existing[-1] + 1 if existing else 1
    version = validation.positive_int(version, "version")
    return write_saved_model(
        generator, os.path.join(export_base, str(version)), z_prior=z_prior,
        max_batch=max_batch, model_name=model_name, warmup=warmup,
    )  # fmt: skip


def write_saved_model(
    generator,
    path: str,
    *,
    z_prior: str = "uniform",
    max_batch: int = DEFAULT_MAX_BATCH,
    model_name: str = DEFAULT_MODEL_NAME,
    warmup: bool = True,
) -> str:
    """Writes the serving SavedModel of `generator` (or a DCGAN) at `path`, which must not exist:
    the folder of one version, e.g. `exports/dcgan/3` (see `export_generator`)."""
    if hasattr(generator, "generator"):  # a DCGAN
        z_prior, z_dim = generator.z_prior, generator.z_dim
        generator = generator.generator
    else:
        z_dim = generator_z_dim(generator)
    check_z_prior(z_prior)
    max_batch = validation.positive_int(max_batch, "max_batch")
    path = os.fspath(path)
    if os.path.exists(path):
        raise UserError(f"{path} already exists; export a new version instead.")
    parent = ensure_folder(os.path.dirname(os.path.abspath(path)), "The export folder")

    endpoints = _Endpoints(float32_twin(generator), z_dim, z_prior, max_batch)
    archive = keras.export.ExportArchive()
    archive.track(generator)
    signatures = endpoints.input_signatures()
    for name in SIGNATURES:
        archive.add_endpoint(name, getattr(endpoints, name), input_signature=signatures[name])
    # A dot-folder next to the final one: TF Serving ignores non-numeric names, and the rename
    # below is atomic on one file system.
    tmp = os.path.join(parent, f".tmp-{os.path.basename(path)}-{uuid.uuid4().hex[:8]}")
    try:
        archive.write_out(tmp, verbose=False)
        if warmup:
            _write_warmup(os.path.join(tmp, WARMUP_FILE), z_dim, model_name)
        os.rename(tmp, path)
    except (OSError, tf.errors.OpError) as e:  # a full disk, a folder gone read-only
        shutil.rmtree(tmp, ignore_errors=True)
        raise write_failure(path, e, f"the SavedModel to {path}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def warmup_requests(z_dim: int, model_name: str = DEFAULT_MODEL_NAME) -> list:
    """One small `PredictRequest` per signature (what the warm-up file replays)."""
    from tensorflow_serving.apis import predict_pb2

    rng = np.random.default_rng(0)
    z = rng.uniform(-1, 1, (2, z_dim)).astype(np.float32)
    inputs = {
        "serving_default": {"z": z},
        "from_seeds": {"seeds": np.array([0, 1], np.int64)},
        "interpolate": {"z_start": z, "z_end": z[::-1], "t": np.array([0.0, 1.0], np.float32)},
    }
    requests = []
    for name in SIGNATURES:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = model_name
        request.model_spec.signature_name = name
        for key, value in inputs[name].items():
            request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
        requests.append(request)
    return requests


def _write_warmup(path: str, z_dim: int, model_name: str) -> None:
    from tensorflow_serving.apis import prediction_log_pb2

    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        for request in warmup_requests(z_dim, model_name):
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)
            )
            writer.write(log.SerializeToString())
