"""`dcgan sample`: render a PNG grid from a trained run folder, or from a model server."""

from __future__ import annotations

from absl import flags

from keras_dcgan.cli import _flags
from keras_dcgan.errors import UserError

_MODEL_DIR = flags.DEFINE_string("model_dir", "runs/dcgan", "Run folder written by dcgan train.")
_NUM = flags.DEFINE_integer("num", 64, "Number of samples (seeds 0..num-1) if --seeds is unset.")
_SEEDS = flags.DEFINE_list("seeds", None, "Integer seeds of the latents, e.g. 3,17,42.")
_OUTPUT = flags.DEFINE_string("output", "samples.png", "Output PNG grid.")
_COLUMNS = flags.DEFINE_integer("columns", None, "Grid columns (default: square).")
_SERVER = flags.DEFINE_string(
    "server", None, "host:port of TF Serving's gRPC API: sample the served model instead."
)
_MODEL_NAME = flags.DEFINE_string("model_name", "dcgan", "Served model name (with --server).")
_WAIT = flags.DEFINE_float("wait", 60.0, "Seconds to wait for the served model (with --server).")


def main(argv: list[str]) -> int | None:
    seeds = _flags.seeds(_SEEDS.value, _NUM.value)  # checked before TensorFlow loads
    from keras_dcgan import images
    from keras_dcgan.training import load_trained

    if _SERVER.value:
        samples = _sample_server(seeds)
    else:
        _, gan = load_trained(_MODEL_DIR.value)
        samples = gan.sample(seeds=seeds).numpy()
    path = images.save_grid(samples, _OUTPUT.value, _COLUMNS.value)
    print(f"Wrote {len(seeds)} samples to {path}")


def _sample_server(seeds):
    import grpc

    from keras_dcgan.serving import GeneratorClient

    with GeneratorClient(_SERVER.value, _MODEL_NAME.value) as client:
        client.wait_until_available(_WAIT.value)
        try:
            return client.sample(seeds=seeds)
        except grpc.RpcError as e:
            raise UserError(f"the server refused the request: {e.details()}") from None
