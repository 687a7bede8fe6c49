"""Serving latency and throughput: gRPC against `dcgan serve` vs the same SavedModel in-process.

Exports a randomly initialised generator of `--preset` (the cost of a forward pass does not
depend on training), starts `dcgan serve` on it in a subprocess, and measures with
`keras_dcgan.serving.GeneratorClient` (signature `serving_default`, output `images`):

- latency p50/p99 of requests of 1 and of 64 images, over gRPC and calling the loaded SavedModel
  signature in this process; the gRPC overhead is p50(gRPC) / p50(in-process) - 1;
- images/second with `--clients` concurrent clients sending requests of 64 images (threads
  calling the signature for the in-process figure);
- a load run: `--clients` clients x `--load_requests` requests of 4 seeds, every 5th one
  malformed (float seeds); it counts failed valid requests (must be 0), refused malformed ones,
  and checks that the server still answers afterwards.

    python bench/serving.py --preset=paper64 --requests=30 --load_requests=200
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import threading
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import grpc  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from keras_dcgan.config import get_config  # noqa: E402
from keras_dcgan.models import Generator  # noqa: E402
from keras_dcgan.serving import GeneratorClient  # noqa: E402
from keras_dcgan.serving.export import export_generator  # noqa: E402

_PRESET = flags.DEFINE_string("preset", "paper64", "Generator architecture.")
_REQUESTS = flags.DEFINE_integer("requests", 30, "Timed requests per latency figure.")
_CLIENTS = flags.DEFINE_integer("clients", 8, "Concurrent clients.")
_THROUGHPUT_REQUESTS = flags.DEFINE_integer("throughput_requests", 6, "64-image requests each.")
_LOAD_REQUESTS = flags.DEFINE_integer("load_requests", 200, "Requests per client in the load run.")


def _percentiles(seconds):
    ms = np.array(seconds) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def _time(fn, n, warmup=3):
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def _concurrent(fn, clients, per_client):
    def worker():
        for _ in range(per_client):
            fn()

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - start


def _start_server(base):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    process = subprocess.Popen(
        [sys.executable, "-m", "keras_dcgan.cli.main", "serve", f"--model_base_path={base}",
         "--port=0", "--rest_api_port=-1"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
    )  # fmt: skip
    line = process.stdout.readline()
    match = re.search(r"gRPC 127.0.0.1:(\d+)", line)
    if not match:
        process.kill()
        raise RuntimeError(f"dcgan serve did not start: {line!r}")
    return process, f"127.0.0.1:{match.group(1)}"


def main(argv):
    del argv
    mc = get_config(_PRESET.value).model
    generator = Generator.from_model_config(mc)
    generator.build()
    base = os.path.join(tempfile.mkdtemp(prefix="dcgan_serving_bench_"), "dcgan")
    path = export_generator(generator, base, z_prior=mc.z_prior)
    signature = tf.saved_model.load(path).signatures["serving_default"]
    rng = np.random.default_rng(0)
    z = {n: rng.uniform(-1, 1, (n, mc.z_dim)).astype(np.float32) for n in (1, 64)}
    process, target = _start_server(base)
    print(
        f"# TF {tf.__version__}, {os.cpu_count()} CPUs; {_PRESET.value} generator "
        f"({mc.image_size}x{mc.image_size}x{mc.channels}); dcgan serve in a subprocess; "
        f"{_REQUESTS.value} timed requests per latency figure"
    )
    try:
        client = GeneratorClient(target, max_batch_per_request=1024)
        client.wait_until_available(120)
        for n in (1, 64):
            local = _time(lambda n=n: signature(z=tf.constant(z[n]))["images"].numpy(),
                          _REQUESTS.value)  # fmt: skip
            remote = _time(lambda n=n: client.generate(z[n]), _REQUESTS.value)
            (l50, l99), (r50, r99) = _percentiles(local), _percentiles(remote)
            print(
                f"{n:>2} image(s): in-process p50 {l50:7.1f} ms p99 {l99:7.1f} ms | gRPC p50 "
                f"{r50:7.1f} ms p99 {r99:7.1f} ms | gRPC overhead {r50 / l50 - 1:+.1%}"
            )
        clients, per = _CLIENTS.value, _THROUGHPUT_REQUESTS.value
        images = clients * per * 64
        local_s = _concurrent(lambda: signature(z=tf.constant(z[64]))["images"].numpy(),
                              clients, per)  # fmt: skip
        remote_s = _concurrent(lambda: client.generate(z[64]), clients, per)
        print(
            f"{clients} concurrent clients x {per} requests of 64: in-process "
            f"{images / local_s:7.1f} img/s | gRPC {images / remote_s:7.1f} img/s | ratio "
            f"{local_s / remote_s:.2f}"
        )
        _load_run(client, clients, _LOAD_REQUESTS.value)
    finally:
        process.terminate()
        process.wait(10)


def _load_run(client, clients, per_client):
    from tensorflow_serving.apis import predict_pb2

    seeds = np.arange(4, dtype=np.int64)
    expected = client.sample(seeds=seeds)
    counts = {"valid_ok": 0, "valid_failed": 0, "malformed_refused": 0, "malformed_accepted": 0}
    lock = threading.Lock()
    malformed = predict_pb2.PredictRequest()
    malformed.model_spec.name = client.model_name
    malformed.model_spec.signature_name = "from_seeds"
    malformed.inputs["seeds"].CopyFrom(tf.make_tensor_proto(seeds.astype(np.float32)))

    def worker(k):
        for i in range(per_client):
            if (i + k) % 5 == 0:
                try:
                    client.predictions.Predict(malformed, timeout=60)
                    key = "malformed_accepted"
                except grpc.RpcError as e:
                    key = (
                        "malformed_refused"
                        if e.code() == grpc.StatusCode.INVALID_ARGUMENT
                        else "malformed_accepted"
                    )
            else:
                try:
                    ok = np.array_equal(client.sample(seeds=seeds), expected)
                    key = "valid_ok" if ok else "valid_failed"
                except grpc.RpcError:
                    key = "valid_failed"
            with lock:
                counts[key] += 1

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    alive = np.array_equal(client.sample(seeds=seeds), expected)
    print(
        f"load run: {clients} clients x {per_client} requests in {elapsed:.1f} s: "
        + ", ".join(f"{k} {v}" for k, v in counts.items())
        + f"; server answering afterwards: {alive}"
    )


if __name__ == "__main__":
    app.run(main)
