"""Export to a TF Serving SavedModel, the local server (gRPC, REST) and the gRPC client."""

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import grpc
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from tensorflow_serving.apis import prediction_log_pb2

from keras_dcgan import images as image_utils
from keras_dcgan.export import WARMUP_FILE, export_generator, versions
from keras_dcgan.serving import GeneratorClient, LocalModelServer
from tests.helpers import batches, random_images, tiny_gan

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def gan():
    model = tiny_gan(seed=3)
    model.fit(batches(random_images(16, seed=2), 8), epochs=1, verbose=0)  # moving stats move
    return model


@pytest.fixture(scope="module")
def export_base(gan, tmp_path_factory):
    base = str(tmp_path_factory.mktemp("exports") / "dcgan")
    export_generator(gan, base, max_batch=32)
    return base


@pytest.fixture(scope="module")
def server(export_base):
    with LocalModelServer(export_base, grpc_port=0, rest_port=0, max_batch=16) as s:
        yield s


@pytest.fixture
def client(server):
    with GeneratorClient(f"127.0.0.1:{server.grpc_port}", timeout=30) as c:
        c.wait_until_available(10)
        yield c


def _expected(gan, seeds):
    return image_utils.to_uint8(gan.sample(seeds=seeds).numpy())


# ------------------------------------------------------------------------------------- export
def test_export_layout_signatures_and_warmup(export_base, gan):
    assert versions(export_base) == [1]
    assert sorted(os.listdir(export_base)) == ["1"]  # no temporary folder left behind
    model = tf.saved_model.load(os.path.join(export_base, "1"))
    sigs = model.signatures
    assert set(sigs) == {"serving_default", "from_seeds", "interpolate"}
    (seeds,) = sigs["from_seeds"].structured_input_signature[1].items()
    assert (seeds[0], seeds[1].dtype, seeds[1].shape.as_list()) == ("seeds", tf.int64, [None])
    outputs = sigs["serving_default"].structured_outputs
    assert outputs["images"].dtype == tf.uint8 and outputs["images"].shape.as_list() == [
        None, 32, 32, 3,
    ]  # fmt: skip
    assert outputs["png_bytes"].dtype == tf.string and outputs["png_bytes"].shape.as_list() == [
        None
    ]
    records = list(tf.data.TFRecordDataset(os.path.join(export_base, "1", WARMUP_FILE)))
    logs = [prediction_log_pb2.PredictionLog.FromString(r.numpy()) for r in records]
    assert [log.predict_log.request.model_spec.signature_name for log in logs] == [
        "serving_default", "from_seeds", "interpolate",
    ]  # fmt: skip


def test_exported_model_in_a_fresh_process_matches_the_generator(export_base, gan, tmp_path):
    out = str(tmp_path / "images.npy")
    code = (
        "import numpy as np, tensorflow as tf; "
        f"m = tf.saved_model.load({os.path.join(export_base, '1')!r}); "
        "r = m.signatures['from_seeds'](seeds=tf.constant([5, 0, 123456789], tf.int64)); "
        f"np.save({out!r}, r['images'].numpy())"
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)
    np.testing.assert_array_equal(np.load(out), _expected(gan, [5, 0, 123456789]))


def test_seeds_are_deterministic_across_batches(export_base):
    fn = tf.saved_model.load(os.path.join(export_base, "1")).signatures["from_seeds"]
    alone = fn(seeds=tf.constant([7], tf.int64))["images"].numpy()
    among = fn(seeds=tf.constant([1, 7, 9, 7], tf.int64))["images"].numpy()
    np.testing.assert_array_equal(alone[0], among[1])
    np.testing.assert_array_equal(among[1], among[3])
    assert not np.array_equal(among[0], among[1])


def test_the_graph_itself_rejects_bad_batches(export_base):
    sigs = tf.saved_model.load(os.path.join(export_base, "1")).signatures
    with pytest.raises(tf.errors.InvalidArgumentError, match="batch too large"):
        sigs["from_seeds"](seeds=tf.range(33, dtype=tf.int64))  # exported with max_batch=32
    with pytest.raises(tf.errors.InvalidArgumentError, match="empty batch"):
        sigs["from_seeds"](seeds=tf.zeros([0], tf.int64))
    with pytest.raises(tf.errors.InvalidArgumentError, match="non-finite"):
        sigs["serving_default"](z=tf.fill([1, 16], np.nan))


def test_export_versions_never_overwrite(gan, tmp_path):
    base = str(tmp_path / "m")
    assert export_generator(gan, base, warmup=False).endswith(os.sep + "1")
    assert export_generator(gan, base, warmup=False).endswith(os.sep + "2")
    with pytest.raises(ValueError, match="already exists"):
        export_generator(gan, base, version=2)
    with pytest.raises(ValueError, match="max_batch must be a positive integer"):
        export_generator(gan, base, max_batch=0)


# --------------------------------------------------------------------------------------- gRPC
def test_client_samples_what_the_model_samples(client, gan):
    assert client.status() == {1: "AVAILABLE"} and client.z_dim == 16
    np.testing.assert_array_equal(client.sample(seeds=[4, 8, 15]), _expected(gan, [4, 8, 15]))
    z = np.random.default_rng(0).uniform(-1, 1, (3, 16)).astype(np.float32)
    expected = image_utils.to_uint8(gan.generator(z, training=False).numpy())
    np.testing.assert_array_equal(client.generate(z), expected)
    walk = client.interpolate(z[0], z[1], steps=5)
    assert walk.shape == (5, 32, 32, 3)
    np.testing.assert_array_equal(walk[[0, -1]], expected[:2])


def test_client_splits_large_requests(server, gan):
    with GeneratorClient(f"127.0.0.1:{server.grpc_port}", max_batch_per_request=4) as c:
        np.testing.assert_array_equal(c.sample(num=10), _expected(gan, range(10)))


def _raw_predict(client, signature, **inputs):
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = inputs.pop("model", "dcgan")
    request.model_spec.signature_name = signature
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    return client.predictions.Predict(request, timeout=30)


BAD_REQUESTS = [
    ("serving_default", {"z": np.zeros((2, 16), np.float64)}, "must be float32; got float64"),
    ("serving_default", {"z": np.zeros((2, 15), np.float32)}, "shape [N, 16]; got [2, 15]"),
    ("serving_default", {"z": np.zeros(16, np.float32)}, "must have shape [N, 16]; got [16]"),
    ("serving_default", {"z": np.full((1, 16), np.inf, np.float32)}, "non-finite values"),
    ("serving_default", {"z": np.zeros((0, 16), np.float32)}, "empty batch"),
    ("serving_default", {"seeds": np.array([1])}, "takes inputs ['z']"),
    ("from_seeds", {"seeds": np.arange(17)}, "above the maximum of 16"),
    ("nope", {"seeds": np.array([1])}, "Serving signature key 'nope' not found"),
    ("from_seeds", {"seeds": np.array([1]), "model": "other"}, "unknown model 'other'"),
    ("interpolate", {"z_start": np.zeros((2, 16), np.float32),
                     "z_end": np.zeros((3, 16), np.float32),
                     "t": np.zeros(2, np.float32)}, "same batch size"),
]  # fmt: skip


@pytest.mark.parametrize("signature,inputs,message", BAD_REQUESTS)
def test_bad_requests_get_invalid_argument_and_the_server_goes_on(
    client, gan, signature, inputs, message
):
    with pytest.raises(grpc.RpcError) as info:
        _raw_predict(client, signature, **dict(inputs))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in info.value.details()
    np.testing.assert_array_equal(client.sample(seeds=[1]), _expected(gan, [1]))


def test_concurrent_clients_with_malformed_requests(client, gan):
    expected = _expected(gan, range(4))
    failures, refusals = [], []

    def worker(k):
        for i in range(15):
            try:
                if (i + k) % 5 == 0:
                    try:
                        _raw_predict(client, "from_seeds", seeds=np.zeros(3, np.float32))
                        failures.append("malformed accepted")
                    except grpc.RpcError as e:
                        refusals.append(e.code())
                else:
                    got = client.sample(seeds=range(4))
                    if not np.array_equal(got, expected):
                        failures.append("wrong images")
            except Exception as e:  # a valid request that failed
                failures.append(repr(e))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert set(refusals) == {grpc.StatusCode.INVALID_ARGUMENT} and len(refusals) == 8 * 3


def test_a_new_version_is_picked_up(gan, tmp_path):
    base = str(tmp_path / "m")
    export_generator(gan, base, warmup=False)
    with LocalModelServer(base, grpc_port=0, rest_port=None, poll_seconds=0.2) as server:
        with GeneratorClient(f"127.0.0.1:{server.grpc_port}") as c:
            assert c.wait_until_available(10) == 1
            shutil.copytree(os.path.join(base, "1"), os.path.join(base, ".partial"))
            os.rename(os.path.join(base, ".partial"), os.path.join(base, "2"))
            deadline = time.monotonic() + 20
            while c.status().get(2) != "AVAILABLE" and time.monotonic() < deadline:
                time.sleep(0.1)
            assert c.status() == {1: "END", 2: "AVAILABLE"}
            response = _raw_predict(c, "from_seeds", seeds=np.array([1]))
            assert response.model_spec.version.value == 2


def test_waiting_for_a_model_that_never_comes_times_out(tmp_path):
    with LocalModelServer(str(tmp_path / "empty"), grpc_port=0, rest_port=None) as server:
        with GeneratorClient(f"127.0.0.1:{server.grpc_port}") as c:
            with pytest.raises(TimeoutError, match="not AVAILABLE after 0.5s"):
                c.wait_until_available(0.5, poll=0.1)


# --------------------------------------------------------------------------------------- REST
def _rest(server, path, body=None):
    url = f"http://127.0.0.1:{server.rest_port}/v1/models/dcgan{path}"
    data = None if body is None else json.dumps(body).encode()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_rest_predict_in_row_and_columnar_formats(server, gan):
    import base64
    import io

    status, body = _rest(server, ":predict", {"signature_name": "from_seeds", "instances": [2, 3]})
    assert status == 200 and len(body["predictions"]) == 2
    first = body["predictions"][0]
    png = base64.b64decode(first["png_bytes"]["b64"])
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(png))), _expected(gan, [2])[0])
    np.testing.assert_array_equal(np.array(first["images"], np.uint8), _expected(gan, [2])[0])
    z = np.zeros((1, 16)).tolist()
    status, body = _rest(server, ":predict", {"inputs": {"z": z}})
    assert status == 200 and np.array(body["outputs"]["images"]).shape == (1, 32, 32, 3)
    status, body = _rest(server, "/versions/1:predict", {"instances": z})
    assert status == 200 and set(body["predictions"][0]) == {"images", "png_bytes"}
    status, body = _rest(server, "")
    assert status == 200 and body["model_version_status"][0]["state"] == "AVAILABLE"
    status, body = _rest(server, "/metadata")
    assert "from_seeds" in body["metadata"]["signature_def"]["signature_def"]


def test_rest_errors_are_400_with_a_message(server):
    status, body = _rest(server, ":predict", {"instances": [[0.0] * 15]})
    assert status == 400 and "must have shape [N, 16]" in body["error"]
    status, body = _rest(server, ":predict", {"nothing": 1})
    assert status == 400 and "exactly one of 'instances' or 'inputs'" in body["error"]
    status, body = _rest(server, "/versions/9:predict", {"instances": [[0.0] * 16]})
    assert status == 400 and "version 9" in body["error"]


# -------------------------------------------------------------------------- real TF Serving
@pytest.mark.skipif(
    shutil.which("tensorflow_model_server") is None,
    reason="tensorflow_model_server is not on PATH (Docker image or Google's apt repo only)",
)
def test_against_real_tensorflow_model_server(export_base, gan, tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = subprocess.Popen(
        ["tensorflow_model_server", f"--port={port}", "--model_name=dcgan",
         f"--model_base_path={os.path.abspath(export_base)}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        with GeneratorClient(f"127.0.0.1:{port}") as c:
            c.wait_until_available(60)
            np.testing.assert_array_equal(c.sample(seeds=[4, 8]), _expected(gan, [4, 8]))
    finally:
        process.terminate()
        process.wait(10)


# ------------------------------------------------------------------------- deployment assets
def test_serving_assets_parse_and_the_client_script_runs(server, gan, tmp_path):
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    config = text_format.Parse(
        open(os.path.join(REPO, "serving", "models.config")).read(),
        model_server_config_pb2.ModelServerConfig(),
    )
    (model,) = config.model_config_list.config
    assert (model.name, model.base_path, model.model_version_policy.latest.num_versions) == (
        "dcgan", "/models/dcgan", 1,
    )  # fmt: skip
    params = open(os.path.join(REPO, "serving", "batching_parameters.txt")).read()
    assert "max_batch_size { value: 256 }" in params
    for script in ("launch.sh", "rest_example.sh"):
        subprocess.run(["bash", "-n", os.path.join(REPO, "serving", script)], check=True)
    out = str(tmp_path / "walk.png")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=REPO)
    run = subprocess.run(
        [sys.executable, os.path.join(REPO, "serving", "client.py"),
         f"--server=127.0.0.1:{server.grpc_port}", "--walk=5,9", "--steps=4", f"--output={out}"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    assert "Wrote 4 images from dcgan version 1" in run.stdout
    grid = np.asarray(Image.open(out))
    assert grid.shape == image_utils.make_grid(np.zeros((4, 32, 32, 3), np.uint8), 4).shape
