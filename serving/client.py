"""Sample the served generator over gRPC and write a PNG grid (TF Serving or `dcgan serve`).

    python serving/client.py --server=localhost:8500 --num=64 --output=grid.png
    python serving/client.py --server=localhost:8500 --seeds=3,17,42 --output=three.png
    python serving/client.py --server=localhost:8500 --walk=5,9 --steps=10 --output=walk.png

A thin layer over `keras_dcgan.serving.GeneratorClient` (waits for the model to be AVAILABLE,
reads its signature, splits large requests, raises gRPC's 4 MiB receive limit).
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from keras_dcgan.images import save_grid  # noqa: E402
from keras_dcgan.latent import latents_from_seeds  # noqa: E402
from keras_dcgan.serving import GeneratorClient  # noqa: E402

_SERVER = flags.DEFINE_string("server", "localhost:8500", "host:port of the gRPC API.")
_MODEL = flags.DEFINE_string("model_name", "dcgan", "Served model name.")
_NUM = flags.DEFINE_integer("num", 64, "Samples from seeds 0..num-1 (unless --seeds/--walk).")
_SEEDS = flags.DEFINE_list("seeds", None, "Integer seeds to sample.")
_WALK = flags.DEFINE_list("walk", None, "Two seeds: a latent walk from the first to the second.")
_STEPS = flags.DEFINE_integer("steps", 8, "Images along the walk.")
_PRIOR = flags.DEFINE_enum("z_prior", "uniform", ["uniform", "normal"], "The model's z prior.")
_OUTPUT = flags.DEFINE_string("output", "served_samples.png", "PNG grid to write.")
_WAIT = flags.DEFINE_float("wait", 60.0, "Seconds to wait for the model to be AVAILABLE.")


def main(argv):
    del argv
    with GeneratorClient(_SERVER.value, _MODEL.value) as client:
        version = client.wait_until_available(_WAIT.value)
        if _WALK.value:
            a, b = (int(s) for s in _WALK.value)
            z = latents_from_seeds([a, b], client.z_dim, _PRIOR.value).numpy()
            images = client.interpolate(z[0], z[1], _STEPS.value)
            columns = _STEPS.value
        else:
            seeds = [int(s) for s in _SEEDS.value] if _SEEDS.value else range(_NUM.value)
            images, columns = client.sample(seeds=seeds), None
    path = save_grid(np.asarray(images), _OUTPUT.value, columns)
    print(f"Wrote {len(images)} images from {_MODEL.value} version {version} to {path}")


if __name__ == "__main__":
    app.run(main)
