"""Serving the exported generator: a gRPC client and a local TF-Serving-compatible server.

`keras_dcgan.serving.export` writes the SavedModel; `GeneratorClient` samples it over TF
Serving's gRPC API; `LocalModelServer` serves it for development and tests (TF Serving's gRPC and
REST APIs, and the explorer page at the REST port's root); `ExplorerProxy` serves the explorer
page in front of any TF Serving REST API (`dcgan explore`).

The names are imported on first use, so `dcgan explore` (which needs neither TensorFlow nor
gRPC) starts without loading them.
"""

import importlib

_EXPORTS = {
    "GeneratorClient": "keras_dcgan.serving.client",
    "LocalModelServer": "keras_dcgan.serving.server",
    "ModelStore": "keras_dcgan.serving.server",
    "RequestError": "keras_dcgan.serving.server",
    "ExplorerProxy": "keras_dcgan.serving.proxy",
}

__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
