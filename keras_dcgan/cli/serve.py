"""`dcgan serve`: the local TF-Serving-compatible server (gRPC and REST) over exported versions.

The REST port also serves the explorer page at its root (http://127.0.0.1:8501/): samples by
seed, latent walks and vector arithmetic in a browser, through the REST predict API.
"""

from __future__ import annotations

import time

from absl import flags

_BASE = flags.DEFINE_string("model_base_path", "exports/dcgan", "Folder of version folders.")
_NAME = flags.DEFINE_string("model_name", "dcgan", "Model name clients use.")
_HOST = flags.DEFINE_string("host", "127.0.0.1", "Address to bind (0.0.0.0: every interface).")
_PORT = flags.DEFINE_integer("port", 8500, "gRPC port (as tensorflow_model_server's --port).")
_REST = flags.DEFINE_integer("rest_api_port", 8501, "REST port (-1: no REST).")
_MAX_BATCH = flags.DEFINE_integer("max_batch", 1024, "Largest batch a request may carry.")
_POLL = flags.DEFINE_float(
    "file_system_poll_wait_seconds", 1.0, "How often new versions are looked for (0: never)."
)


def main(argv: list[str]) -> int | None:
    import logging

    from keras_dcgan.serving import LocalModelServer

    logging.getLogger("keras_dcgan").setLevel(logging.INFO)
    server = LocalModelServer(
        _BASE.value,
        _NAME.value,
        _HOST.value,
        _PORT.value,
        None if _REST.value < 0 else _REST.value,
        _MAX_BATCH.value,
        _POLL.value,
    ).start()
    current = server.store.current
    print(
        f"Serving {_NAME.value} version {current.number if current else '(none yet)'} from "
        f"{_BASE.value}: gRPC {_HOST.value}:{server.grpc_port}"
        + (
            f", REST http://{_HOST.value}:{server.rest_port} (the explorer page: "
            f"http://{_HOST.value}:{server.rest_port}/)"
            if server.rest_port
            else ""
        ),
        flush=True,
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()
