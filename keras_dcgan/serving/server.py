"""A local model server that speaks TF Serving's gRPC and REST APIs over exported SavedModels.

For development and tests where the `tensorflow_model_server` binary is not available (it is not
on PyPI). It implements what the clients here use:

- gRPC (tensorflow-serving-api): PredictionService.Predict and GetModelMetadata,
  ModelService.GetModelStatus; the other methods answer UNIMPLEMENTED.
- REST: `POST /v1/models/<name>[/versions/<v>]:predict` (row "instances" and columnar "inputs"
  formats, `_bytes` outputs base64-encoded as {"b64": ...}), `GET /v1/models/<name>` (status) and
  `GET /v1/models/<name>/metadata`.
- The explorer page (`keras_dcgan.serving.explorer`): `GET /` and `/explorer/<file>`.

Like TF Serving with its default version policy, it serves the newest version under the base
path and polls the folder for new versions (`poll_seconds`), loading a new one before it retires
the old. A version that cannot be loaded (damaged, half copied) is logged once, and the newest
loadable one below it is served instead; it is tried again when its files change.

Hostile input is refused before it costs anything: a port in use is an error (no second server
shares it); request sizes are bounded (`max_request_bytes`); gRPC tensors are checked against
the signature from the proto's declared shape, dtype and value count before any array is built;
every REST request gets a status and a JSON body {"error": ...} (malformed JSON, numbers or
versions of thousands of digits, a bad Content-Length, a chunked body is read, wrong types, rows
with missing or extra inputs); a client gets `request_timeout` seconds to send each request
(idle keep-alive connections and stalled senders are closed), and at most `max_connections`
REST connections are served at once (503 beyond). Requests are validated against the signature
before they reach TensorFlow; a bad one gets INVALID_ARGUMENT (HTTP 400) with a message naming
the problem, and the server goes on.

    dcgan serve --model_base_path=exports/dcgan --model_name=dcgan   (or python -m this module)
"""

from __future__ import annotations

import base64
import errno
import io
import json
import logging
import math
import os
import re
import socket
import threading
import time
from concurrent import futures
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    status_pb2,
)

from keras_dcgan.serving import explorer
from keras_dcgan.serving.export import versions
from keras_dcgan.serving.ports import cannot_serve, os_error

log = logging.getLogger(__name__)

DEFAULT_MAX_BATCH = 1024
MAX_MESSAGE_BYTES = 256 << 20  # responses (image batches)
DEFAULT_MAX_REQUEST_BYTES = 32 << 20  # a request: 1,024 rows of z at 100-d are under 1 MB
DEFAULT_REQUEST_TIMEOUT = 30.0  # seconds a REST client has to send one request
DEFAULT_MAX_CONNECTIONS = 64  # REST connections served at once (each holds a thread)
MAX_VERSION_DIGITS = 18  # versions are int64


def _short(text, limit: int = 80) -> str:
    text = str(text)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


class RequestError(Exception):
    """A request the server refuses; `code` is the gRPC status (INVALID_ARGUMENT by default),
    `http_status` the REST status when it is not the one of `code`."""

    def __init__(self, message: str, code: grpc.StatusCode = grpc.StatusCode.INVALID_ARGUMENT,
                 http_status: int | None = None):  # fmt: skip
        super().__init__(message)
        self.code = code
        self.http_status = http_status


class _Version:
    """One loaded SavedModel version."""

    def __init__(self, path: str, number: int):
        self.path = path
        self.number = number
        self.model = tf.saved_model.load(path)
        self.signatures = dict(self.model.signatures)
        self.signature_defs = _signature_defs(path)


def _signature_defs(path: str) -> dict:
    """The SignatureDef protos of a SavedModel (what GetModelMetadata returns)."""
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())
    defs = proto.meta_graphs[0].signature_def
    return {k: v for k, v in defs.items() if not k.startswith("__")}


def _folder_stamp(path: str) -> tuple:
    """What a version folder holds (names, sizes, times): a failed version is tried again, and
    logged again, only when this changes."""
    stamp = []
    for dirpath, _, filenames in os.walk(path):
        for name in filenames:
            full = os.path.join(dirpath, name)
            try:
                st = os.stat(full)
            except OSError:
                continue
            stamp.append((os.path.relpath(full, path), st.st_size, st.st_mtime_ns))
    return tuple(sorted(stamp))


class ModelStore:
    """The versions of one model under a base path, the newest loadable one served, reloaded as
    versions appear.

    Args:
        model_base_path: folder of integer version folders (what `export_generator` writes).
        model_name: the name requests must use.
        max_batch: the largest batch (first input dimension) a request may carry.
        poll_seconds: how often the folder is checked for new versions (0: never).
    """

    def __init__(self, model_base_path, model_name="dcgan", max_batch=DEFAULT_MAX_BATCH,
                 poll_seconds: float = 1.0):  # fmt: skip
        self.base_path = model_base_path
        self.name = model_name
        self.max_batch = max_batch
        self.poll_seconds = poll_seconds
        self._lock = threading.Lock()
        self._refresh_lock = threading.Lock()
        self._current: _Version | None = None
        self._retired: list[int] = []
        self._failed: dict[int, tuple] = {}  # version -> folder stamp when it failed to load
        self._stop = threading.Event()
        self._thread = None
        self.refresh()

    @property
    def current(self) -> _Version | None:
        with self._lock:
            return self._current

    def refresh(self) -> bool:
        """Serves the newest loadable version above the served one; True if it changed.

        Versions are tried newest first; one that fails to load is logged once and skipped
        until its folder changes (a damaged newest version does not hide a good older one)."""
        with self._refresh_lock:
            found = versions(self.base_path)
            current = self.current
            floor = current.number if current is not None else -1
            for number in reversed(found):
                if number <= floor:
                    break
                path = os.path.join(self.base_path, str(number))
                stamp = _folder_stamp(path)
                if self._failed.get(number) == stamp:
                    continue
                try:
                    loaded = _Version(path, number)
                except Exception as e:  # a broken export must not take the served version down
                    self._failed[number] = stamp
                    detail = str(e).strip().splitlines()[0] if str(e).strip() else repr(e)
                    log.error(
                        "Could not load version %d of %s from %s (%s); %s. It is tried again when "
                        "its files change.", number, self.name, path, _short(detail, 300),
                        "trying older versions" if floor < 0 else f"still serving {floor}",
                    )  # fmt: skip
                    continue
                self._failed.pop(number, None)
                with self._lock:
                    if self._current is not None:
                        self._retired.append(self._current.number)
                    self._current = loaded
                log.info("Serving %s version %d from %s", self.name, number, loaded.path)
                return True
            return False

    def start_polling(self) -> None:
        if self.poll_seconds <= 0 or self._thread is not None:
            return

        def poll():
            while not self._stop.wait(self.poll_seconds):
                self.refresh()

        self._thread = threading.Thread(target=poll, name="version-poller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def get(self, name: str, version: int | None = None) -> _Version:
        if name != self.name:
            raise RequestError(
                f"Servable not found for request: unknown model {_short(repr(name))} (this server "
                f"serves {self.name!r})."
            )
        current = self.current
        if current is None:
            raise RequestError(
                f"Model {name!r} has no loadable version under {self.base_path}.",
                grpc.StatusCode.UNAVAILABLE,
            )
        if version not in (None, current.number):
            raise RequestError(
                f"Servable not found for request: {name!r} version {version} (serving version "
                f"{current.number})."
            )
        return current

    def status(self):
        """[(version, state)] as TF Serving reports them."""
        with self._lock:
            out = [(v, "END") for v in self._retired]
            if self._current is not None:
                out.append((self._current.number, "AVAILABLE"))
        return out

    # ------------------------------------------------------------------------------ predict
    def signature(self, name, version, signature_name):
        """(served version, signature name, its function); RequestError when unknown."""
        served = self.get(name, version)
        signature_name = signature_name or "serving_default"
        if not isinstance(signature_name, str):
            raise RequestError(
                f"The signature name must be a string; got {type(signature_name).__name__}."
            )
        if signature_name not in served.signatures:
            raise RequestError(
                f"Serving signature key {_short(repr(signature_name))} not found (signatures: "
                f"{', '.join(sorted(served.signatures))})."
            )
        return served, signature_name, served.signatures[signature_name]

    def predict(self, name, version, signature_name, inputs: dict, output_filter=()):
        """Validates `inputs` (name -> numpy array) and runs the signature: name -> array."""
        served, signature_name, function = self.signature(name, version, signature_name)
        arguments = _validate(function, signature_name, inputs, self.max_batch)
        outputs = function.structured_outputs
        unknown = set(output_filter) - set(outputs)
        if unknown:
            raise RequestError(
                f"output_filter names unknown output(s) {_short(sorted(unknown))} of "
                f"{signature_name!r} "
                f"(outputs: {', '.join(sorted(outputs))})."
            )
        try:
            result = function(**arguments)
        except tf.errors.InvalidArgumentError as e:
            raise RequestError(_clean_tf_message(e.message)) from None
        keep = set(output_filter) or set(result)
        return served, signature_name, {k: v.numpy() for k, v in result.items() if k in keep}


def _check_names(specs, signature_name: str, names) -> None:
    missing, extra = set(specs) - set(names), set(names) - set(specs)
    if missing or extra:
        raise RequestError(
            f"Signature {signature_name!r} takes inputs {sorted(specs)}; the request "
            + (f"lacks {sorted(missing)}" if missing else "")
            + (" and " if missing and extra else "")
            + (f"has unknown {_short(sorted(extra))}" if extra else "")
            + "."
        )


def _check_batch(key, signature_name, n, max_batch) -> None:
    if n == 0:
        raise RequestError(f"Input {key!r} of {signature_name!r} is an empty batch.")
    if n > max_batch:
        raise RequestError(
            f"Input {key!r} of {signature_name!r} has a batch of {n}, above the maximum of "
            f"{max_batch} per request; split the request."
        )


def _validate(function, signature_name: str, inputs: dict, max_batch: int) -> dict:
    """Checks names, dtypes, shapes, batch size and finiteness against a signature."""
    specs = function.structured_input_signature[1]
    _check_names(specs, signature_name, inputs)
    arguments, batch = {}, None
    for key, spec in specs.items():
        value = inputs[key]
        if value.dtype != spec.dtype.as_numpy_dtype:
            raise RequestError(
                f"Input {key!r} of {signature_name!r} must be {spec.dtype.name}; got "
                f"{tf.as_dtype(value.dtype).name}."
            )
        if not spec.shape.is_compatible_with(value.shape):
            raise RequestError(
                f"Input {key!r} of {signature_name!r} must have shape "
                f"{_shape_text(spec.shape)}; got {list(value.shape)}."
            )
        n = value.shape[0]
        _check_batch(key, signature_name, n, max_batch)
        if batch is not None and n != batch:
            raise RequestError(
                f"The inputs of {signature_name!r} must have the same batch size; got "
                f"{batch} and {n} ({key!r})."
            )
        batch = n
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            raise RequestError(f"Input {key!r} of {signature_name!r} has non-finite values.")
        arguments[key] = tf.constant(value)
    return arguments


_VALUE_FIELDS = {
    tf.float16: "half_val", tf.bfloat16: "half_val", tf.float32: "float_val",
    tf.float64: "double_val", tf.int8: "int_val", tf.int16: "int_val", tf.int32: "int_val",
    tf.uint8: "int_val", tf.uint16: "int_val", tf.int64: "int64_val", tf.uint32: "uint32_val",
    tf.uint64: "uint64_val", tf.bool: "bool_val", tf.string: "string_val",
    tf.complex64: "scomplex_val", tf.complex128: "dcomplex_val",
}  # fmt: skip


def _check_proto(key: str, proto, spec: tf.TensorSpec, signature_name: str, max_batch: int):
    """Checks a request's TensorProto against the signature from what it declares (dtype, shape,
    value count), before `make_ndarray` builds anything: a 54-byte proto declaring a huge shape
    with one value would otherwise make TF allocate the whole shape."""
    try:
        dtype = tf.dtypes.as_dtype(proto.dtype)
    except TypeError:
        raise RequestError(f"Input {key!r} has an unknown dtype ({proto.dtype}).") from None
    if dtype != spec.dtype:
        raise RequestError(
            f"Input {key!r} of {signature_name!r} must be {spec.dtype.name}; got {dtype.name}."
        )
    if proto.tensor_shape.unknown_rank:
        raise RequestError(f"Input {key!r} of {signature_name!r} has no shape.")
    dims = [d.size for d in proto.tensor_shape.dim]
    expected = spec.shape.as_list()
    if (
        any(d < 0 for d in dims)
        or len(dims) != len(expected)
        or any(e is not None and e != d for e, d in zip(expected, dims, strict=True))
    ):
        raise RequestError(
            f"Input {key!r} of {signature_name!r} must have shape {_shape_text(spec.shape)}; got "
            f"{_short(dims)}."
        )
    if dims:
        _check_batch(key, signature_name, dims[0], max_batch)
    elements = math.prod(dims)
    if proto.tensor_content:
        needed = elements * dtype.size
        if len(proto.tensor_content) != needed:
            raise RequestError(
                f"Input {key!r} of {signature_name!r} declares shape {dims} ({needed} bytes of "
                f"{dtype.name}) but carries {len(proto.tensor_content)} bytes."
            )
        return
    field = _VALUE_FIELDS.get(dtype)
    count = len(getattr(proto, field)) if field else 0
    if dtype.is_complex:
        count //= 2
    if count != elements and not (count == 1 and elements >= 1):
        raise RequestError(
            f"Input {key!r} of {signature_name!r} declares shape {dims} ({elements} values) but "
            f"carries {count}."
        )


def _shape_text(shape: tf.TensorShape) -> str:
    return "[" + ", ".join("N" if d is None else str(d) for d in shape.as_list()) + "]"


def _clean_tf_message(message: str) -> str:
    """The assertion text of a TF op error, without graph locations."""
    match = re.search(r"<stack traces unavailable>\n(.*?)\n\t \[\[", message, re.S)
    text = match.group(1) if match else message.splitlines()[-1]
    asserted = re.match(r"assertion failed: \[(.*?)\]", text)
    return (asserted.group(1) if asserted else text).strip()


# --------------------------------------------------------------------------------------- gRPC
class _PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, store: ModelStore):
        self.store = store

    def Predict(self, request, context):  # noqa: N802 (gRPC method name)
        try:
            version = request.model_spec.version.value if request.model_spec.HasField(
                "version") else None  # fmt: skip
            _, signature, function = self.store.signature(
                request.model_spec.name, version, request.model_spec.signature_name
            )
            specs = function.structured_input_signature[1]
            _check_names(specs, signature, request.inputs)
            for key, proto in request.inputs.items():  # before any array is built
                _check_proto(key, proto, specs[key], signature, self.store.max_batch)
            inputs = {}
            for key, proto in request.inputs.items():
                try:
                    inputs[key] = tf.make_ndarray(proto)
                except Exception as e:
                    raise RequestError(
                        f"Input {key!r} is not a valid TensorProto: {_short(e, 200)}"
                    ) from None
            served, signature, outputs = self.store.predict(
                request.model_spec.name,
                version,
                request.model_spec.signature_name,
                inputs,
                list(request.output_filter),
            )
        except RequestError as e:
            context.abort(e.code, str(e))
        response = predict_pb2.PredictResponse()
        response.model_spec.name = self.store.name
        response.model_spec.version.value = served.number
        response.model_spec.signature_name = signature
        for key, value in outputs.items():
            response.outputs[key].CopyFrom(tf.make_tensor_proto(value))
        return response

    def GetModelMetadata(self, request, context):  # noqa: N802
        from tensorflow_serving.apis import get_model_metadata_pb2 as md

        try:
            if list(request.metadata_field) not in ([], ["signature_def"]):
                raise RequestError(
                    f"Metadata field(s) {list(request.metadata_field)} not supported; ask for "
                    "'signature_def'."
                )
            version = request.model_spec.version.value if request.model_spec.HasField(
                "version") else None  # fmt: skip
            served = self.store.get(request.model_spec.name, version)
        except RequestError as e:
            context.abort(e.code, str(e))
        signature_map = md.SignatureDefMap()
        for key, value in served.signature_defs.items():
            signature_map.signature_def[key].CopyFrom(value)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = self.store.name
        response.model_spec.version.value = served.number
        response.metadata["signature_def"].Pack(signature_map)
        return response


class _ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, store: ModelStore):
        self.store = store

    def GetModelStatus(self, request, context):  # noqa: N802
        if request.model_spec.name != self.store.name:
            context.abort(
                grpc.StatusCode.NOT_FOUND,
                f"Could not find any versions of model {request.model_spec.name!r}",
            )
        states = get_model_status_pb2.ModelVersionStatus.State
        response = get_model_status_pb2.GetModelStatusResponse()
        wanted = (
            request.model_spec.version.value if request.model_spec.HasField("version") else None
        )
        for number, state in self.store.status():
            if wanted is not None and number != wanted:
                continue
            entry = response.model_version_status.add()
            entry.version = number
            entry.state = getattr(states, state)
            entry.status.CopyFrom(status_pb2.StatusProto())
        return response


# --------------------------------------------------------------------------------------- REST
def _to_json(value: np.ndarray, key: str):
    if key.endswith("_bytes") or value.dtype.kind in ("S", "O"):
        encode = base64.b64encode if key.endswith("_bytes") else None

        def one(b):
            return {"b64": encode(b).decode()} if encode else b.decode("utf-8", "replace")

        return np.vectorize(one, otypes=[object])(value).tolist() if value.ndim else one(value)
    return value.tolist()


def _from_json(key: str, value, spec: tf.TensorSpec) -> np.ndarray:
    try:
        if spec.dtype == tf.string:

            def one(v):
                if isinstance(v, dict):
                    if set(v) != {"b64"} or not isinstance(v["b64"], str):
                        raise ValueError('a binary value must be {"b64": "<base64 text>"}')
                    return base64.b64decode(v["b64"], validate=True)
                if not isinstance(v, (str, int, float, bool)):
                    raise ValueError(f"a string value cannot be a {type(v).__name__}")
                return str(v).encode()

            return np.vectorize(one, otypes=[object])(np.array(value, dtype=object))
        array = np.array(value, dtype=spec.dtype.as_numpy_dtype)
        if array.dtype == object:
            raise ValueError("ragged or non-numeric values")
        return array
    except (TypeError, ValueError, OverflowError, RecursionError, KeyError) as e:
        raise RequestError(
            f"Cannot read the JSON values of input {key!r} as {spec.dtype.name}: {_short(e, 200)}"
        ) from None


def _json_rows(rows, specs, signature: str, max_batch: int) -> dict:
    """Row format ("instances"): a list of rows, each an object naming every input (or, for a
    one-input signature, the bare values) -> columns."""
    if not isinstance(rows, list) or not rows:
        raise RequestError("'instances' must be a non-empty list.")
    if len(rows) > max_batch:
        raise RequestError(
            f"'instances' has {len(rows)} rows, above the maximum of {max_batch} per request; "
            "split the request."
        )
    objects = [isinstance(r, dict) for r in rows]
    if not any(objects) and len(specs) == 1:
        return {next(iter(specs)): rows}
    if not all(objects):
        raise RequestError(
            f"Signature {signature!r} takes inputs {sorted(specs)}: each instance must be an "
            "object naming them" + (" (or every one a bare value)." if len(specs) == 1 else ".")
        )
    for i, row in enumerate(rows):
        missing, extra = set(specs) - set(row), set(row) - set(specs)
        if missing:
            raise RequestError(f"Instance {i} lacks input(s) {sorted(missing)} of {signature!r}.")
        if extra:
            raise RequestError(
                f"Instance {i} has unknown input(s) {_short(sorted(extra))}; {signature!r} "
                f"takes {sorted(specs)}."
            )
    return {k: [row[k] for row in rows] for k in specs}


class _DeadlineReader(io.RawIOBase):
    """The socket as a raw stream whose reads fail with TimeoutError once the handler's deadline
    for the current request has passed: a client that sends a byte every few seconds cannot
    hold a thread longer than a client that sends nothing."""

    def __init__(self, handler):
        self.handler = handler

    def readable(self):
        return True

    def readinto(self, buffer):
        remaining = self.handler.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the request was not received in time")
        self.handler.connection.settimeout(remaining)
        try:
            return self.handler.connection.recv_into(buffer)
        except (ConnectionResetError, BrokenPipeError):
            return 0


class _RestHandler(BaseHTTPRequestHandler):
    # Set on the subclass that LocalModelServer makes:
    store: ModelStore
    max_body: int = DEFAULT_MAX_REQUEST_BYTES
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT
    protocol_version = "HTTP/1.1"
    server_version = "keras-dcgan-local-serving"

    def setup(self):
        super().setup()
        self.deadline = time.monotonic() + self.request_timeout
        self.rfile.close()  # the plain socket file: replaced by one that keeps the deadline
        self.rfile = io.BufferedReader(_DeadlineReader(self), 1 << 16)

    def handle_one_request(self):
        # Each request (and the idle wait before it) gets `request_timeout` seconds.
        self.deadline = time.monotonic() + self.request_timeout
        super().handle_one_request()

    def log_message(self, fmt, *args):  # quiet: access logs at DEBUG
        log.debug("REST %s", fmt % args)

    def _reply(self, status: int, body: dict, close: bool = False):
        data = json.dumps(body).encode()
        self.connection.settimeout(self.request_timeout)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def send_error(self, code, message=None, explain=None):
        """Errors of the HTTP layer (a bad request line, headers too long, an unsupported
        method, a timeout) as JSON, like every other answer, and the connection closed."""
        try:
            short, _ = self.responses[code]
        except KeyError:
            short = "Error"
        text = message or short
        if explain and explain not in text:
            text = f"{text}: {explain}"
        self.log_error("code %d, message %s", code, text)
        if self.request_version == "HTTP/0.9":  # unparsable request: answer with a status line
            self.request_version = "HTTP/1.0"
        try:
            self._reply(code, {"error": text}, close=True)
        except OSError:
            self.close_connection = True

    def _route(self):
        path = self.path.split("?", 1)[0]
        match = re.fullmatch(
            r"/v1/models/([^/:]+)(?:/versions/([^/:]+))?(?::(predict)|/(metadata))?", path
        )
        if not match:
            raise RequestError(
                f"Unknown path {_short(repr(self.path))}.", grpc.StatusCode.NOT_FOUND
            )
        name, version, verb, metadata = match.groups()
        if version is not None:
            if not version.isascii() or not version.isdigit() or len(version) > MAX_VERSION_DIGITS:
                raise RequestError(
                    f"The version must be a positive integer (at most {MAX_VERSION_DIGITS} "
                    f"digits); got {_short(repr(version), 40)}."
                )
            version = int(version)
        return name, version, verb or metadata

    def do_GET(self):  # noqa: N802
        if not self._static():
            self._answer(self._get)

    def do_HEAD(self):  # noqa: N802
        if not self._static():
            self._answer(self._get)

    def _static(self) -> bool:
        """Answers the explorer page's files (`/`, `/explorer/<file>`); False for other paths."""
        found = explorer.static_file(self.path, self.store.name)
        if found is None:
            return False
        data, content_type = found
        has_body = self.headers.get("Content-Length", "0").strip() not in ("", "0") or bool(
            self.headers.get("Transfer-Encoding")
        )
        try:
            self.connection.settimeout(self.request_timeout)
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-cache")
            self.send_header("X-Content-Type-Options", "nosniff")
            if has_body:  # a GET with a body: not read, so the connection cannot be reused
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
        except OSError as e:
            log.debug("REST connection error: %s", e)
            self.close_connection = True
        return True

    def do_POST(self):  # noqa: N802
        self._answer(self._post)

    def _answer(self, handler):
        self._body_read = self.command in ("GET", "HEAD") and not (
            self.headers.get("Content-Length", "0").strip() not in ("", "0")
            or self.headers.get("Transfer-Encoding")
        )
        try:
            status, body = handler()
            self._reply(status, body, close=not self._body_read)
        except RequestError as e:
            self._error(e)
        except TimeoutError:
            self._reply(HTTPStatus.REQUEST_TIMEOUT, {"error": "The request was not received in "
                        f"{self.request_timeout:g} s."}, close=True)  # fmt: skip
        except (ConnectionError, OSError) as e:
            log.debug("REST connection error: %s", e)
            self.close_connection = True
        except Exception as e:  # a bug: still an answer, and the server goes on
            log.exception("REST %s %s failed", self.command, _short(self.path))
            self._reply(HTTPStatus.INTERNAL_SERVER_ERROR,
                        {"error": f"Internal error: {_short(e, 200)}"}, close=True)  # fmt: skip

    def _get(self):
        name, version, what = self._route()
        if what == "predict":
            raise RequestError("predict needs POST.", http_status=HTTPStatus.METHOD_NOT_ALLOWED)
        served = self.store.get(name, version)
        if what == "metadata":
            from google.protobuf import json_format

            defs = {k: json_format.MessageToDict(v) for k, v in served.signature_defs.items()}
            return HTTPStatus.OK, {
                "model_spec": {"name": name, "version": str(served.number)},
                "metadata": {"signature_def": {"signature_def": defs}},
            }
        return HTTPStatus.OK, {
            "model_version_status": [
                {"version": str(v), "state": s, "status": {"error_code": "OK"}}
                for v, s in self.store.status()
            ]
        }

    def _post(self):
        data = self._read_body()  # first: an error answer can then keep the connection
        name, version, what = self._route()
        if what != "predict":
            raise RequestError(
                f"POST {_short(self.path)}: only :predict is supported.",
                http_status=HTTPStatus.METHOD_NOT_ALLOWED,
            )
        try:
            body = json.loads(data or b"null")
        except RecursionError:
            raise RequestError("The body is JSON nested too deeply.") from None
        except ValueError as e:  # JSONDecodeError, bad UTF-8, an integer of > 4300 digits
            raise RequestError(f"The body is not valid JSON: {_short(e, 200)}") from None
        if not isinstance(body, dict):
            raise RequestError("The body must be a JSON object with 'instances' or 'inputs'.")
        return HTTPStatus.OK, self._predict(name, version, body)

    # --------------------------------------------------------------------------- the body
    def _read_body(self) -> bytes:
        lengths = self.headers.get_all("Content-Length") or []
        encoding = self.headers.get_all("Transfer-Encoding") or []
        if encoding:
            if lengths:
                raise RequestError("A request must not have both Content-Length and "
                                   "Transfer-Encoding.")  # fmt: skip
            if [e.strip().lower() for e in encoding] != ["chunked"]:
                raise RequestError(
                    f"Transfer-Encoding {_short(', '.join(encoding), 40)} is not supported; send "
                    "a Content-Length, or a chunked body.",
                    http_status=HTTPStatus.NOT_IMPLEMENTED,
                )
            data = self._read_chunked()
        else:
            if not lengths:
                raise RequestError(
                    "A POST needs a Content-Length header (or a chunked body).",
                    http_status=HTTPStatus.LENGTH_REQUIRED,
                )
            values = {v.strip() for v in lengths}
            value = next(iter(values))
            if len(values) > 1 or not (value.isascii() and value.isdigit()) or len(value) > 15:
                raise RequestError(
                    f"Content-Length must be one non-negative integer; got "
                    f"{_short(', '.join(lengths), 40)}."
                )
            n = int(value)
            self._check_size(n)
            data = self.rfile.read(n)
            if len(data) < n:
                raise RequestError(f"The body ended after {len(data)} of {n} bytes.")
        self._body_read = True
        return data

    def _check_size(self, n: int) -> None:
        if n > self.max_body:
            raise RequestError(
                f"The body has {n} bytes, above the limit of {self.max_body} per request; split "
                "the request.",
                http_status=HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            )

    def _read_chunked(self) -> bytes:
        chunks, total = [], 0
        while True:
            line = self.rfile.readline(1026)
            if not line.endswith(b"\n"):
                raise RequestError("Malformed chunked body (a chunk size line).")
            size_text = line.split(b";", 1)[0].strip()
            if (
                not size_text
                or len(size_text) > 15
                or not re.fullmatch(rb"[0-9a-fA-F]+", size_text)
            ):
                raise RequestError(f"Malformed chunked body: chunk size {_short(size_text, 20)}.")
            size = int(size_text, 16)
            if size == 0:
                for _ in range(64):  # trailers, up to the empty line
                    trailer = self.rfile.readline(8194)
                    if trailer in (b"\r\n", b"\n", b""):
                        break
                else:
                    raise RequestError("Malformed chunked body: too many trailers.")
                return b"".join(chunks)
            total += size
            self._check_size(total)
            chunk = self.rfile.read(size)
            if len(chunk) < size or self.rfile.readline(3) not in (b"\r\n", b"\n"):
                raise RequestError("Malformed chunked body (a chunk shorter than its size).")
            chunks.append(chunk)

    # ---------------------------------------------------------------------------- predict
    def _predict(self, name, version, body):
        _, signature, function = self.store.signature(name, version, body.get("signature_name"))
        specs = function.structured_input_signature[1]
        if ("instances" in body) == ("inputs" in body):
            raise RequestError("The body must have exactly one of 'instances' or 'inputs'.")
        if "instances" in body:
            columns = _json_rows(body["instances"], specs, signature, self.store.max_batch)
        else:
            columns = body["inputs"]
            if not isinstance(columns, dict):
                if len(specs) != 1:
                    raise RequestError(
                        f"'inputs' must be an object naming each input of {signature!r} "
                        f"({sorted(specs)})."
                    )
                columns = {next(iter(specs)): columns}
            _check_names(specs, signature, columns)
        inputs = {k: _from_json(k, v, specs[k]) for k, v in columns.items()}
        _, _, outputs = self.store.predict(name, version, signature, inputs)
        if "instances" in body:
            keys = sorted(outputs)
            if len(keys) == 1:
                return {"predictions": _to_json(outputs[keys[0]], keys[0])}
            n = len(next(iter(outputs.values())))
            as_json = {k: _to_json(outputs[k], k) for k in keys}
            return {"predictions": [{k: as_json[k][i] for k in keys} for i in range(n)]}
        return {"outputs": {k: _to_json(v, k) for k, v in outputs.items()}}

    def _error(self, e: RequestError):
        status = e.http_status or {
            grpc.StatusCode.NOT_FOUND: HTTPStatus.NOT_FOUND,
            grpc.StatusCode.UNAVAILABLE: HTTPStatus.SERVICE_UNAVAILABLE,
            grpc.StatusCode.RESOURCE_EXHAUSTED: HTTPStatus.SERVICE_UNAVAILABLE,
        }.get(e.code, HTTPStatus.BAD_REQUEST)
        self._reply(status, {"error": str(e)}, close=not self._body_read)


class _RestServer(ThreadingHTTPServer):
    """A thread per connection, at most `max_connections` at once: one more is answered 503 (JSON)
    at once and closed, so slow clients cannot pile up threads without bound."""

    daemon_threads = True
    allow_reuse_address = True  # SO_REUSEADDR (a restart may bind while old sockets linger)

    def __init__(self, address, handler, max_connections: int):
        self._slots = threading.BoundedSemaphore(max_connections)
        self.max_connections = max_connections
        super().__init__(address, handler)

    def process_request(self, request, client_address):
        if not self._slots.acquire(blocking=False):
            self._refuse(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def _refuse(self, request):
        body = json.dumps(
            {"error": f"The server is busy ({self.max_connections} connections); retry later."}
        ).encode()
        head = (
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
        )
        try:
            request.settimeout(1.0)
            request.sendall(head.encode() + body)
        except OSError:
            pass
        self.shutdown_request(request)


# ------------------------------------------------------------------------------------ server
def _port_in_use_error(host: str, port: int, what: str, flag: str) -> OSError | None:
    """An OSError saying why (host, port) cannot be listened on, or None if it can now. The
    probe binds like gRPC and http.server do (SO_REUSEADDR, no SO_REUSEPORT)."""
    if not port:
        return None
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        return os_error(errno.EADDRNOTAVAIL, f"Cannot serve {what} on {host}:{port}: {e}.")
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as e:
            return cannot_serve(what, host, port, e, flag)
    return None


class LocalModelServer:
    """gRPC (and optionally REST) front ends over a `ModelStore`; `start()`, `stop()`.

    Ports 0 pick free ports (see `grpc_port` / `rest_port` after `start()`). A port that is in
    use raises OSError ("address already in use") and nothing is left listening: unlike gRPC's
    default (SO_REUSEPORT), two servers never share a port.

    Args:
        model_base_path, model_name, max_batch, poll_seconds: see `ModelStore`.
        host: address to bind.
        grpc_port, rest_port: ports (rest_port None: no REST).
        workers: gRPC handler threads (requests beyond 4x this many at once: RESOURCE_EXHAUSTED).
        max_request_bytes: the largest request body (REST) or message (gRPC).
        request_timeout: seconds a REST client has to send a request (also the idle limit of a
            kept-alive connection).
        max_connections: REST connections served at once; more are answered 503.
    """

    def __init__(
        self,
        model_base_path: str,
        model_name: str = "dcgan",
        host: str = "127.0.0.1",
        grpc_port: int = 8500,
        rest_port: int | None = 8501,
        max_batch: int = DEFAULT_MAX_BATCH,
        poll_seconds: float = 1.0,
        workers: int = 8,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ):
        self.store = ModelStore(model_base_path, model_name, max_batch, poll_seconds)
        self.host = host
        self._grpc_port, self._rest_port = grpc_port, rest_port
        self.workers = workers
        self.max_request_bytes = max_request_bytes
        self.request_timeout = request_timeout
        self.max_connections = max_connections
        self._grpc = None
        self._http = None
        self.grpc_port = self.rest_port = None

    def start(self) -> LocalModelServer:
        try:
            self._start_grpc()
            if self._rest_port is not None:
                self._start_rest()
        except BaseException:
            self.stop()
            raise
        self.store.start_polling()
        return self

    def _start_grpc(self) -> None:
        problem = _port_in_use_error(self.host, self._grpc_port, "gRPC", "--port")
        if problem is not None:
            raise problem
        options = [
            ("grpc.so_reuseport", 0),  # a port in use is an error, not a shared port
            ("grpc.max_receive_message_length", self.max_request_bytes),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_connection_idle_ms", 300_000),
        ]
        self._grpc = grpc.server(
            futures.ThreadPoolExecutor(self.workers),
            options=options,
            maximum_concurrent_rpcs=4 * self.workers,
        )
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
            _PredictionService(self.store), self._grpc
        )
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(
            _ModelService(self.store), self._grpc
        )
        try:
            self.grpc_port = self._grpc.add_insecure_port(f"{self.host}:{self._grpc_port}")
        except RuntimeError:  # lost a race for the port, or another cause
            self.grpc_port = 0
        if self.grpc_port == 0:
            raise _port_in_use_error(self.host, self._grpc_port, "gRPC", "--port") or OSError(
                f"Cannot serve gRPC on {self.host}:{self._grpc_port}."
            )
        self._grpc.start()

    def _start_rest(self) -> None:
        handler = type(
            "RestHandler",
            (_RestHandler,),
            {
                "store": self.store,
                "max_body": self.max_request_bytes,
                "request_timeout": self.request_timeout,
            },
        )
        try:
            self._http = _RestServer((self.host, self._rest_port), handler, self.max_connections)
        except OSError as e:
            raise cannot_serve("REST", self.host, self._rest_port, e, "--rest_api_port") from None
        self.rest_port = self._http.server_address[1]
        threading.Thread(target=self._http.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.store.stop()
        if self._grpc is not None:
            self._grpc.stop(grace=1).wait()
            self._grpc = None
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


if __name__ == "__main__":  # the same as `dcgan serve`
    import sys

    from keras_dcgan.cli.main import run

    run(["dcgan", "serve", *sys.argv[1:]])
