"""Two worker processes on 127.0.0.1 (MultiWorkerMirroredStrategy, TF_CONFIG) train like one."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from tests.helpers import dcgan_env

WORKER = """
import sys
import numpy as np
from keras_dcgan.config import get_config
from keras_dcgan.training import train

model_dir, strategy, out, precision = sys.argv[1:5]
config = get_config("tiny", steps=4, batch_size=8, synchronized_batch_norm=True,
                    checkpoint_every_steps=2, num_preview=4, precision=precision)
result = train(config, model_dir, strategy=strategy, verbose=0)
gan = result.gan
values = [v.numpy() for v in gan.generator.variables + gan.discriminator.variables]
scales = [getattr(o, "dynamic_scale", None) for o in (gan.g_optimizer, gan.d_optimizer)]
values += [v.numpy() for v in scales if v is not None]
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
    env = dcgan_env()
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


def _two_workers(tmp_path, precision):
    cluster = {"worker": [f"127.0.0.1:{p}" for p in _free_ports(2)]}
    model_dir = str(tmp_path / "multi")
    workers = [
        _run([model_dir, "multi_worker", str(tmp_path / f"w{i}.npz"), precision],
             {"cluster": cluster, "task": {"type": "worker", "index": i}})
        for i in range(2)
    ]  # fmt: skip
    for w in workers:
        out, err = w.communicate(timeout=600)
        assert w.returncode == 0, err[-3000:]
    (s0, w0), (s1, w1) = (_load(tmp_path / f) for f in ("w0.npz", "w1.npz"))
    assert s0 == s1 == 4
    for a, b in zip(w0, w1, strict=True):
        np.testing.assert_array_equal(a, b)
    # Only the chief (worker 0) wrote the run folder; the other's temporary folder is gone.
    files = set(os.listdir(model_dir))
    assert {"config.json", "checkpoints", "samples", "metrics.csv", "model.keras"} <= files
    assert not [f for f in files if f.startswith(".worker_tmp")]
    return model_dir, w0


def test_two_workers_hold_identical_weights_equal_to_one_process(tmp_path):
    _, w0 = _two_workers(tmp_path, "float32")
    single = _run([str(tmp_path / "single"), "auto", str(tmp_path / "single.npz"), "float32"])
    out, err = single.communicate(timeout=600)
    assert single.returncode == 0, err[-3000:]
    s, one = _load(tmp_path / "single.npz")
    assert s == 4
    for a, b in zip(w0, one, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.slow  # ~60 s: two more worker processes; tests/test_distribute.py covers the step
def test_two_workers_train_in_float16_with_one_shared_loss_scale_per_network(tmp_path):
    """Both workers end with identical weights AND loss scales (the last two arrays), all finite:
    the skip-or-apply decision is shared, so replicas never drift apart. (Against one process
    float16 differs by the batch split: see tests/test_distribute.py.)"""
    model_dir, w0 = _two_workers(tmp_path, "mixed_float16")
    g_scale, d_scale = w0[-2:]
    assert 1.0 <= g_scale <= 2.0**15 and 1.0 <= d_scale <= 2.0**15
    assert all(np.isfinite(a).all() for a in w0)
    with open(os.path.join(model_dir, "metrics.csv")) as f:
        assert {"g_loss_scale", "d_loss_scale"} <= set(f.readline().strip().split(","))
