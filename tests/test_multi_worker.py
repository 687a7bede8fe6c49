"""Two worker processes on 127.0.0.1 (MultiWorkerMirroredStrategy, TF_CONFIG) train like one."""

import json
import os
import socket
import subprocess
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

WORKER = """
import sys
import numpy as np
from keras_dcgan.config import get_config
from keras_dcgan.training import train

model_dir, strategy, out = sys.argv[1:4]
config = get_config("tiny", steps=4, batch_size=8, synchronized_batch_norm=True,
                    checkpoint_every_steps=2, num_preview=4)
result = train(config, model_dir, strategy=strategy, verbose=0)
gan = result.gan
values = [v.numpy() for v in gan.generator.variables + gan.discriminator.variables]
np.savez(out, steps=result.steps, *values)
"""


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _run(args, tf_config=None):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=REPO)
    env.pop("TF_CONFIG", None)
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip


def _load(path):
    data = np.load(path)
    return int(data["steps"]), [data[f"arr_{i}"] for i in range(len(data.files) - 1)]


def test_two_workers_hold_identical_weights_equal_to_one_process(tmp_path):
    cluster = {"worker": [f"127.0.0.1:{p}" for p in _free_ports(2)]}
    model_dir = str(tmp_path / "multi")
    workers = [
        _run([model_dir, "multi_worker", str(tmp_path / f"w{i}.npz")],
             {"cluster": cluster, "task": {"type": "worker", "index": i}})
        for i in range(2)
    ]  # fmt: skip
    for w in workers:
        out, err = w.communicate(timeout=600)
        assert w.returncode == 0, err[-3000:]
    single = _run([str(tmp_path / "single"), "auto", str(tmp_path / "single.npz")])
    out, err = single.communicate(timeout=600)
    assert single.returncode == 0, err[-3000:]

    (s0, w0), (s1, w1), (s, one) = (_load(tmp_path / f) for f in ("w0.npz", "w1.npz", "single.npz"))
    assert s0 == s1 == s == 4
    for a, b in zip(w0, w1, strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(w0, one, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    # Only the chief (worker 0) wrote the run folder; the other's temporary folder is gone.
    files = set(os.listdir(model_dir))
    assert {"config.json", "checkpoints", "samples", "metrics.csv", "model.keras"} <= files
    assert not [f for f in files if f.startswith(".worker_tmp")]
