"""`dcgan explore`: the explorer page in front of a TF Serving REST API (real or `dcgan serve`).

    dcgan explore --rest=http://model-host:8501 --model_name=dcgan --port=8080
    # then open http://127.0.0.1:8080/

Serves the page locally and forwards its API calls (`/v1/...`) to `--rest`, so the model server
needs no CORS support. `dcgan serve` serves the same page at its own REST port's root.
"""

from __future__ import annotations

import time

from absl import flags

_REST = flags.DEFINE_string("rest", "http://127.0.0.1:8501", "The model server's REST address.")
_NAME = flags.DEFINE_string("model_name", "dcgan", "Model name on that server (the page's).")
_HOST = flags.DEFINE_string("host", "127.0.0.1", "Address to bind (0.0.0.0: every interface).")
_PORT = flags.DEFINE_integer("port", 8080, "Port of the page (0: any free port).")
_TIMEOUT = flags.DEFINE_float("timeout", 120.0, "Seconds the model server has to answer.")


def main(argv: list[str]) -> int | None:
    from keras_dcgan.serving.proxy import ExplorerProxy

    proxy = ExplorerProxy(_REST.value, _NAME.value, _HOST.value, _PORT.value, _TIMEOUT.value)
    proxy.start()
    print(
        f"Explorer for {_NAME.value} at {proxy.rest_url}: http://{_HOST.value}:{proxy.port}/",
        flush=True,
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        proxy.stop()
