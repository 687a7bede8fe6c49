"""A gRPC client for the exported generator, on tensorflow-serving-api.

Works against real TF Serving and against `keras_dcgan.serving.server` alike:

```python
client = GeneratorClient("localhost:8500", model_name="dcgan")
client.wait_until_available(timeout=60)           # ModelService.GetModelStatus
images = client.sample(seeds=range(64))           # uint8 [64, H, W, C], via `from_seeds`
images = client.generate(z)                       # `serving_default`
walk = client.interpolate(z_a, z_b, steps=10)     # `interpolate`
```

The signature (z size, image shape) is read from GetModelMetadata. Requests larger than
`max_batch_per_request` are split, and the receive limit is raised from gRPC's 4 MiB default.
"""

from __future__ import annotations

import time

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from keras_dcgan.errors import UserError

MAX_MESSAGE_BYTES = 256 << 20


class GeneratorClient:
    """Samples a served DCGAN generator over gRPC.

    Args:
        target: "host:port" of the gRPC API (TF Serving's --port, 8500 by default).
        model_name: TF Serving's --model_name.
        version: a fixed version number (default: whatever the server serves, the latest).
        timeout: seconds per RPC.
        max_batch_per_request: larger calls are split into requests of at most this many rows.
        max_message_bytes: the client's receive/send limit (gRPC's default is 4 MiB).
    """

    def __init__(
        self,
        target: str = "localhost:8500",
        model_name: str = "dcgan",
        version: int | None = None,
        timeout: float = 60.0,
        max_batch_per_request: int = 256,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
    ):
        if max_batch_per_request < 1:
            raise UserError(f"max_batch_per_request must be >= 1; got {max_batch_per_request}.")
        self.target = target
        self.model_name = model_name
        self.version = version
        self.timeout = timeout
        self.max_batch_per_request = max_batch_per_request
        options = [
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
        ]
        self.channel = grpc.insecure_channel(target, options=options)
        self.predictions = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.models = model_service_pb2_grpc.ModelServiceStub(self.channel)
        self._signatures = None

    def close(self):
        self.channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _spec(self, message):
        message.model_spec.name = self.model_name
        if self.version is not None:
            message.model_spec.version.value = self.version
        return message

    # --------------------------------------------------------------------------- status
    def status(self) -> dict[int, str]:
        """{version: state name} from ModelService.GetModelStatus."""
        request = self._spec(get_model_status_pb2.GetModelStatusRequest())
        response = self.models.GetModelStatus(request, timeout=self.timeout)
        names = get_model_status_pb2.ModelVersionStatus.State.Name
        return {s.version: names(s.state) for s in response.model_version_status}

    def wait_until_available(self, timeout: float = 60.0, poll: float = 0.5) -> int:
        """Blocks until a version is AVAILABLE (the server may still be starting or loading);
        returns that version. Raises TimeoutError with the last state or error seen."""
        deadline, last = time.monotonic() + timeout, "no answer"
        while True:
            try:
                available = [v for v, s in self.status().items() if s == "AVAILABLE"]
                if available:
                    return max(available)
                last = f"states {self.status()}"
            except grpc.RpcError as e:
                last = f"{e.code().name}: {e.details()}"
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"Model {self.model_name!r} at {self.target} not AVAILABLE after {timeout}s "
                    f"({last})."
                )
            time.sleep(poll)

    def signatures(self) -> dict:
        """{signature: {"inputs": {name: (dtype, shape)}, "outputs": {...}}} (GetModelMetadata)."""
        if self._signatures is None:
            request = self._spec(get_model_metadata_pb2.GetModelMetadataRequest())
            request.metadata_field.append("signature_def")
            response = self.predictions.GetModelMetadata(request, timeout=self.timeout)
            defs = get_model_metadata_pb2.SignatureDefMap()
            response.metadata["signature_def"].Unpack(defs)

            def describe(infos):
                return {
                    k: (tf.as_dtype(v.dtype).name, [d.size for d in v.tensor_shape.dim])
                    for k, v in infos.items()
                }

            self._signatures = {
                name: {"inputs": describe(d.inputs), "outputs": describe(d.outputs)}
                for name, d in defs.signature_def.items()
            }
        return self._signatures

    @property
    def z_dim(self) -> int:
        return self.signatures()["serving_default"]["inputs"]["z"][1][1]

    # --------------------------------------------------------------------------- predict
    def predict(self, signature: str, inputs: dict, output_filter=("images",)) -> dict:
        """One Predict call per chunk of `max_batch_per_request` rows; outputs concatenated."""
        arrays = {k: np.asarray(v) for k, v in inputs.items()}
        n = len(next(iter(arrays.values())))
        if n == 0:
            raise UserError("Nothing to request: the batch is empty.")
        chunks = []
        for start in range(0, n, self.max_batch_per_request):
            request = self._spec(predict_pb2.PredictRequest())
            request.model_spec.signature_name = signature
            for key, value in arrays.items():
                chunk = value[start : start + self.max_batch_per_request]
                request.inputs[key].CopyFrom(tf.make_tensor_proto(chunk))
            request.output_filter.extend(output_filter)
            response = self.predictions.Predict(request, timeout=self.timeout)
            chunks.append({k: tf.make_ndarray(v) for k, v in response.outputs.items()})
        return {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}

    def sample(self, num: int | None = None, seeds=None) -> np.ndarray:
        """uint8 images [N, H, W, C] from integer seeds (default 0..num-1), as `DCGAN.sample`."""
        if seeds is None:
            if num is None:
                raise UserError("Give the number of samples or their seeds.")
            seeds = range(num)
        seeds = np.asarray(list(seeds), np.int64)
        return self.predict("from_seeds", {"seeds": seeds})["images"]

    def generate(self, z) -> np.ndarray:
        """uint8 images [N, H, W, C] of latents z [N, z_dim]."""
        return self.predict("serving_default", {"z": np.asarray(z, np.float32)})["images"]

    def interpolate(self, z_start, z_end, steps: int) -> np.ndarray:
        """uint8 images [steps, H, W, C] along the straight line from z_start to z_end."""
        if steps < 2:
            raise UserError(f"steps must be >= 2; got {steps}.")
        z_start = np.broadcast_to(np.asarray(z_start, np.float32), (steps, self.z_dim))
        z_end = np.broadcast_to(np.asarray(z_end, np.float32), (steps, self.z_dim))
        t = np.linspace(0.0, 1.0, steps, dtype=np.float32)
        return self.predict("interpolate", {"z_start": z_start, "z_end": z_end, "t": t})["images"]
