"""Serving the exported generator: a gRPC client and a local TF-Serving-compatible server.

`keras_dcgan.serving.export` writes the SavedModel; `GeneratorClient` samples it over TF
Serving's gRPC API; `LocalModelServer` serves it for development and tests (TF Serving's gRPC and
REST APIs).
"""

from keras_dcgan.serving.client import GeneratorClient
from keras_dcgan.serving.server import LocalModelServer, ModelStore, RequestError

__all__ = ["GeneratorClient", "LocalModelServer", "ModelStore", "RequestError"]
