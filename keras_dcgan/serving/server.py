"""A local model server that speaks TF Serving's gRPC and REST APIs over exported SavedModels.

For development and tests where the `tensorflow_model_server` binary is not available (it is not
on PyPI). It implements what the clients here use:

- gRPC (tensorflow-serving-api): PredictionService.Predict and GetModelMetadata,
  ModelService.GetModelStatus; the other methods answer UNIMPLEMENTED.
- REST: `POST /v1/models/<name>[/versions/<v>]:predict` (row "instances" and columnar "inputs"
  formats, `_bytes` outputs base64-encoded as {"b64": ...}), `GET /v1/models/<name>` (status) and
  `GET /v1/models/<name>/metadata`.

Like TF Serving with its default version policy, it serves the latest version under the base
path and polls the folder for new versions (`poll_seconds`), loading a new one before it retires
the old. Requests are validated against the signature before they reach TensorFlow; a bad one
gets INVALID_ARGUMENT (HTTP 400) with a message naming the problem, and the server goes on.

    dcgan serve --model_base_path=exports/dcgan --model_name=dcgan   (or python -m this module)
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import threading
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

from keras_dcgan.export import versions

log = logging.getLogger(__name__)

DEFAULT_MAX_BATCH = 1024
MAX_MESSAGE_BYTES = 256 << 20


class RequestError(Exception):
    """A request the server refuses; `code` is the gRPC status (INVALID_ARGUMENT by default)."""

    def __init__(self, message: str, code: grpc.StatusCode = grpc.StatusCode.INVALID_ARGUMENT):
        super().__init__(message)
        self.code = code


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


class ModelStore:
    """The versions of one model under a base path, latest served, reloaded as versions appear.

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
        self._current: _Version | None = None
        self._retired: list[int] = []
        self._stop = threading.Event()
        self._thread = None
        self.refresh()

    @property
    def current(self) -> _Version | None:
        with self._lock:
            return self._current

    def refresh(self) -> bool:
        """Loads the latest version if it is newer than the served one; True if it changed."""
        found = versions(self.base_path)
        current = self.current
        if not found or (current is not None and found[-1] <= current.number):
            return False
        number = found[-1]
        try:
            loaded = _Version(os.path.join(self.base_path, str(number)), number)
        except Exception as e:  # a broken export must not take the served version down
            log.error("Could not load version %d of %s: %s", number, self.name, e)
            return False
        with self._lock:
            if self._current is not None:
                self._retired.append(self._current.number)
            self._current = loaded
        log.info("Serving %s version %d from %s", self.name, number, loaded.path)
        return True

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
                f"Servable not found for request: unknown model {name!r} (this server serves "
                f"{self.name!r})."
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
    def predict(self, name, version, signature_name, inputs: dict, output_filter=()):
        """Validates `inputs` (name -> numpy array) and runs the signature: name -> array."""
        served = self.get(name, version)
        signature_name = signature_name or "serving_default"
        if signature_name not in served.signatures:
            raise RequestError(
                f"Serving signature key {signature_name!r} not found (signatures: "
                f"{', '.join(sorted(served.signatures))})."
            )
        function = served.signatures[signature_name]
        arguments = _validate(function, signature_name, inputs, self.max_batch)
        outputs = function.structured_outputs
        unknown = set(output_filter) - set(outputs)
        if unknown:
            raise RequestError(
                f"output_filter names unknown output(s) {sorted(unknown)} of {signature_name!r} "
                f"(outputs: {', '.join(sorted(outputs))})."
            )
        try:
            result = function(**arguments)
        except tf.errors.InvalidArgumentError as e:
            raise RequestError(_clean_tf_message(e.message)) from None
        keep = set(output_filter) or set(result)
        return served, signature_name, {k: v.numpy() for k, v in result.items() if k in keep}


def _validate(function, signature_name: str, inputs: dict, max_batch: int) -> dict:
    """Checks names, dtypes, shapes, batch size and finiteness against a signature."""
    specs = function.structured_input_signature[1]
    missing, extra = set(specs) - set(inputs), set(inputs) - set(specs)
    if missing or extra:
        raise RequestError(
            f"Signature {signature_name!r} takes inputs {sorted(specs)}; the request "
            + (f"lacks {sorted(missing)}" if missing else "")
            + (" and " if missing and extra else "")
            + (f"has unknown {sorted(extra)}" if extra else "")
            + "."
        )
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
        if n == 0:
            raise RequestError(f"Input {key!r} of {signature_name!r} is an empty batch.")
        if n > max_batch:
            raise RequestError(
                f"Input {key!r} of {signature_name!r} has a batch of {n}, above the maximum of "
                f"{max_batch} per request; split the request."
            )
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
            inputs = {}
            for key, proto in request.inputs.items():
                try:
                    inputs[key] = tf.make_ndarray(proto)
                except Exception as e:
                    raise RequestError(f"Input {key!r} is not a valid TensorProto: {e}") from None
            version = request.model_spec.version.value if request.model_spec.HasField(
                "version") else None  # fmt: skip
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


def _from_json(value, spec: tf.TensorSpec) -> np.ndarray:
    try:
        if spec.dtype == tf.string:

            def one(v):
                return base64.b64decode(v["b64"]) if isinstance(v, dict) else str(v).encode()

            return np.vectorize(one, otypes=[object])(np.array(value, dtype=object))
        return np.array(value, dtype=spec.dtype.as_numpy_dtype)
    except (TypeError, ValueError, OverflowError) as e:
        raise RequestError(f"Cannot read the JSON values as {spec.dtype.name}: {e}") from None


class _RestHandler(BaseHTTPRequestHandler):
    store: ModelStore  # set on the subclass made by `serve`
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet: access logs at DEBUG
        log.debug("REST %s", fmt % args)

    def _reply(self, status: int, body: dict):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _route(self):
        match = re.fullmatch(
            r"/v1/models/([^/:]+)(?:/versions/(\d+))?(?::(predict)|/(metadata))?", self.path
        )
        if not match:
            raise RequestError(f"Unknown path {self.path!r}.", grpc.StatusCode.NOT_FOUND)
        name, version, verb, metadata = match.groups()
        return name, int(version) if version else None, verb or metadata

    def do_GET(self):  # noqa: N802
        try:
            name, version, what = self._route()
            if what == "predict":
                raise RequestError("predict needs POST.")
            served = self.store.get(name, version)
            if what == "metadata":
                from google.protobuf import json_format

                defs = {k: json_format.MessageToDict(v) for k, v in served.signature_defs.items()}
                body = {
                    "model_spec": {"name": name, "version": str(served.number)},
                    "metadata": {"signature_def": {"signature_def": defs}},
                }
            else:
                body = {
                    "model_version_status": [
                        {"version": str(v), "state": s, "status": {"error_code": "OK"}}
                        for v, s in self.store.status()
                    ]
                }
            self._reply(HTTPStatus.OK, body)
        except RequestError as e:
            self._error(e)

    def do_POST(self):  # noqa: N802
        try:
            name, version, what = self._route()
            if what != "predict":
                raise RequestError(f"POST {self.path}: only :predict is supported.")
            length = int(self.headers.get("Content-Length", 0))
            try:
                body = json.loads(self.rfile.read(length) or b"null")
            except json.JSONDecodeError as e:
                raise RequestError(f"The body is not JSON: {e}") from None
            if not isinstance(body, dict):
                raise RequestError("The body must be a JSON object with 'instances' or 'inputs'.")
            self._reply(HTTPStatus.OK, self._predict(name, version, body))
        except RequestError as e:
            self._error(e)

    def _predict(self, name, version, body):
        served = self.store.get(name, version)
        signature = body.get("signature_name") or "serving_default"
        if signature not in served.signatures:
            raise RequestError(f"Serving signature key {signature!r} not found.")
        specs = served.signatures[signature].structured_input_signature[1]
        if ("instances" in body) == ("inputs" in body):
            raise RequestError("The body must have exactly one of 'instances' or 'inputs'.")
        if "instances" in body:
            rows = body["instances"]
            if not isinstance(rows, list) or not rows:
                raise RequestError("'instances' must be a non-empty list.")
            if len(specs) == 1 and not isinstance(rows[0], dict):
                columns = {next(iter(specs)): rows}
            elif all(isinstance(r, dict) for r in rows):
                columns = {k: [r.get(k) for r in rows] for k in specs if k in rows[0]}
                columns.update({k: [r[k] for r in rows] for k in rows[0] if k not in specs})
            else:
                raise RequestError("With several inputs, each instance must be an object.")
        else:
            columns = body["inputs"]
            if not isinstance(columns, dict):
                columns = {next(iter(specs)): columns} if len(specs) == 1 else None
            if columns is None:
                raise RequestError("'inputs' must be an object naming each input.")
        inputs = {k: _from_json(v, specs[k]) if k in specs else np.array(v)
                  for k, v in columns.items()}  # fmt: skip
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
        status = {
            grpc.StatusCode.NOT_FOUND: HTTPStatus.NOT_FOUND,
            grpc.StatusCode.UNAVAILABLE: HTTPStatus.SERVICE_UNAVAILABLE,
        }.get(e.code, HTTPStatus.BAD_REQUEST)
        self._reply(status, {"error": str(e)})


# ------------------------------------------------------------------------------------ server
class LocalModelServer:
    """gRPC (and optionally REST) front ends over a `ModelStore`; `start()`, `stop()`.

    Ports 0 pick free ports (see `grpc_port` / `rest_port` after `start()`).
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
    ):
        self.store = ModelStore(model_base_path, model_name, max_batch, poll_seconds)
        self.host = host
        self._grpc_port, self._rest_port = grpc_port, rest_port
        self.workers = workers
        self._grpc = None
        self._http = None
        self.grpc_port = self.rest_port = None

    def start(self) -> LocalModelServer:
        options = [
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ]
        self._grpc = grpc.server(futures.ThreadPoolExecutor(self.workers), options=options)
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
            _PredictionService(self.store), self._grpc
        )
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(
            _ModelService(self.store), self._grpc
        )
        self.grpc_port = self._grpc.add_insecure_port(f"{self.host}:{self._grpc_port}")
        if self.grpc_port == 0:
            raise OSError(f"Cannot bind gRPC to {self.host}:{self._grpc_port}.")
        self._grpc.start()
        if self._rest_port is not None:
            handler = type("RestHandler", (_RestHandler,), {"store": self.store})
            self._http = ThreadingHTTPServer((self.host, self._rest_port), handler)
            self._http.daemon_threads = True
            self.rest_port = self._http.server_address[1]
            threading.Thread(target=self._http.serve_forever, daemon=True).start()
        self.store.start_polling()
        return self

    def stop(self) -> None:
        self.store.stop()
        if self._grpc is not None:
            self._grpc.stop(grace=1).wait()
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


if __name__ == "__main__":  # the same as `dcgan serve`
    import sys

    from keras_dcgan.cli.main import run

    run(["dcgan", "serve", *sys.argv[1:]])
