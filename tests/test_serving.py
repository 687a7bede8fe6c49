"""Export to a TF Serving SavedModel, the local server (gRPC, REST) and the gRPC client."""

import contextlib
import faulthandler
import json
import os
import re
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
from keras_dcgan.serving import GeneratorClient, LocalModelServer
from keras_dcgan.serving.export import WARMUP_FILE, export_generator, versions
from tests.helpers import REPO, batches, dcgan_env, random_images, tiny_gan


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
    subprocess.run([sys.executable, "-c", code], check=True, env=dcgan_env(), timeout=120)
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
@contextlib.contextmanager
def _threads_dumped_on_timeout():
    """A request that times out prints every thread's stack (the server's handler threads are in
    this process), so a stall seen once in CI can be told from a deadlock."""
    try:
        yield
    except TimeoutError:
        faulthandler.dump_traceback(all_threads=True)
        raise


def _rest(server, path, body=None):
    url = f"http://127.0.0.1:{server.rest_port}/v1/models/dcgan{path}"
    data = None if body is None else json.dumps(body).encode()
    try:
        with _threads_dumped_on_timeout():
            with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=90) as r:
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
    run = subprocess.run(
        [sys.executable, os.path.join(REPO, "serving", "client.py"),
         f"--server=127.0.0.1:{server.grpc_port}", "--walk=5,9", "--steps=4", f"--output={out}"],
        capture_output=True, text=True, env=dcgan_env(), timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    assert "Wrote 4 images from dcgan version 1" in run.stdout
    grid = np.asarray(Image.open(out))
    assert grid.shape == image_utils.make_grid(np.zeros((4, 32, 32, 3), np.uint8), 4).shape


# ------------------------------------------------------------------ faults and hostile input
def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_port_in_use_is_an_error_for_grpc_and_rest(server, export_base):
    """gRPC's default SO_REUSEPORT let a second server share the port (clients then reached
    either at random); now the second server refuses to start, and leaves nothing listening."""
    second = LocalModelServer(export_base, grpc_port=server.grpc_port, rest_port=None)
    with pytest.raises(OSError, match="gRPC on 127.0.0.1:.*address already in use"):
        second.start()
    grpc_port = _free_port()
    second = LocalModelServer(export_base, grpc_port=grpc_port, rest_port=server.rest_port)
    with pytest.raises(OSError, match="REST on 127.0.0.1:.*address already in use"):
        second.start()
    assert second._grpc is None  # the gRPC half it had started is stopped again
    again = LocalModelServer(export_base, grpc_port=grpc_port, rest_port=None).start()
    again.stop()  # the port is free again
    out = subprocess.run(
        [sys.executable, "-m", "keras_dcgan.cli.main", "serve", f"--model_base_path={export_base}",
         f"--port={server.grpc_port}", "--rest_api_port=-1", "--file_system_poll_wait_seconds=0"],
        capture_output=True, text=True, timeout=120,
        env=dcgan_env(),
    )  # fmt: skip
    assert out.returncode == 1, out.stdout + out.stderr[-2000:]
    errors = [line for line in out.stderr.splitlines() if "address already in use" in line]
    assert errors and errors[0].startswith("dcgan serve: error: Cannot serve gRPC"), out.stderr
    assert "Traceback" not in out.stderr and "Serving" not in out.stdout


def _proto(dtype, dims, values=(), content=b""):
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2

    proto = tensor_pb2.TensorProto(dtype=dtype.as_datatype_enum)
    proto.tensor_shape.CopyFrom(
        tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in dims]
        )
    )
    if content:
        proto.tensor_content = content
    elif dtype == tf.float32:
        proto.float_val.extend(values)
    elif dtype == tf.float64:
        proto.double_val.extend(values)
    else:
        proto.int64_val.extend(values)
    return proto


@pytest.mark.parametrize(
    "signature,key,proto,message",
    [
        # 54 bytes on the wire declaring a 2 GiB tensor: refused from the proto, nothing built.
        ("serving_default", "z", _proto(tf.float32, [1 << 25, 16], [1.0]), "above the maximum"),
        ("from_seeds", "seeds", _proto(tf.int64, [1 << 40], [1]), "above the maximum of 16"),
        ("serving_default", "z", _proto(tf.float32, [2, 1 << 30], [1.0]), "got [2, 1073741824]"),
        ("serving_default", "z", _proto(tf.float32, [4, 16], [1.0, 2.0]),
         "(64 values) but carries 2"),
        ("serving_default", "z", _proto(tf.float32, [4, 16], content=b"\0" * 12),
         "carries 12 bytes"),
        ("serving_default", "z", _proto(tf.float32, [-1, 16], [1.0]), "must have shape [N, 16]"),
        ("serving_default", "z", _proto(tf.float64, [1 << 25, 16], [1.0]), "must be float32"),
    ],
)  # fmt: skip
def test_grpc_tensors_are_checked_from_the_proto_before_any_array_is_built(
    client, gan, monkeypatch, signature, key, proto, message
):
    from tensorflow_serving.apis import predict_pb2

    built = []
    real = tf.make_ndarray
    monkeypatch.setattr(tf, "make_ndarray", lambda p: built.append(p) or real(p))
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "dcgan"
    request.model_spec.signature_name = signature
    request.inputs[key].CopyFrom(proto)
    assert request.ByteSize() < 100
    with pytest.raises(grpc.RpcError) as info:
        client.predictions.Predict(request, timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in info.value.details()
    assert built == []  # refused before tf.make_ndarray
    monkeypatch.undo()
    np.testing.assert_array_equal(client.sample(seeds=[1]), _expected(gan, [1]))


def _http(port, data: bytes, timeout=30.0):
    """Sends raw bytes to the REST port; returns (status, JSON body) of the answer, or None when
    the server closed the connection without one."""
    import socket

    with (
        _threads_dumped_on_timeout(),
        socket.create_connection(("127.0.0.1", port), timeout=timeout) as s,
    ):
        s.sendall(data)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = s.recv(65536)
            if not chunk:
                return None
            received += chunk
        head, _, body = received.partition(b"\r\n\r\n")
        length = int(re.search(rb"Content-Length: (\d+)", head).group(1))
        while len(body) < length:
            chunk = s.recv(65536)
            if not chunk:
                break
            body += chunk
        assert b"Content-Type: application/json" in head, head
        return int(head.split()[1]), json.loads(body)


def _post(path, body: bytes, headers=""):
    head = f"POST /v1/models/dcgan{path} HTTP/1.1\r\nHost: x\r\n{headers}"
    if "Content-Length" not in headers and "Transfer-Encoding" not in headers:
        head += f"Content-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


_Z = json.dumps([0.0] * 16)
MALFORMED_REST = [
    ("deeply nested JSON", _post(":predict", b'{"instances": ' + b"[" * 100_000 + b"]" * 100_000
                                 + b"}"), 400, "nested too deeply"),
    ("5,000-digit integer", _post(":predict", b'{"signature_name": "from_seeds", "instances": ['
                                  + b"7" * 5000 + b"]}"), 400, "not valid JSON"),
    ("4,000-digit integer as int64", _post(":predict", b'{"signature_name": "from_seeds", '
                                           b'"instances": [' + b"7" * 4000 + b"]}"), 400,
     "as int64"),
    ("5,000-digit float", _post(":predict", b'{"instances": [[' + b"9" * 5000 + b".5"
                                + b", 0" * 15 + b"]]}"), 400, "non-finite"),
    ("5,000-digit version", _post("/versions/" + "9" * 5000 + ":predict", b"{}"), 400,
     "version must be a positive integer"),
    ("non-numeric Content-Length", _post(":predict", b"{}", "Content-Length: ten\r\n"), 400,
     "Content-Length must be"),
    ("negative Content-Length", _post(":predict", b"{}", "Content-Length: -5\r\n"), 400,
     "Content-Length must be"),
    ("two Content-Lengths", _post(":predict", b"{}", "Content-Length: 2\r\nContent-Length: 3\r\n"),
     400, "Content-Length must be"),
    ("no Content-Length", b"POST /v1/models/dcgan:predict HTTP/1.1\r\nHost: x\r\n\r\n", 411,
     "needs a Content-Length"),
    ("huge Content-Length", _post(":predict", b"", "Content-Length: 99999999999\r\n"), 413,
     "above the limit"),
    ("a list where a string belongs", _post(":predict", b'{"signature_name": ["from_seeds"], '
                                            b'"instances": [1]}'), 400, "must be a string"),
    ("a row missing an input", _post(":predict", json.dumps(
        {"signature_name": "interpolate", "instances": [
            {"z_start": [0.0] * 16, "z_end": [0.0] * 16, "t": 0.5},
            {"z_start": [0.0] * 16, "t": 0.5}]}).encode()), 400,
     "Instance 1 lacks input(s) ['z_end']"),
    ("a row with an extra input", _post(":predict", json.dumps(
        {"signature_name": "from_seeds", "instances": [{"seeds": 1}, {"seeds": 2, "z": 3}]}
    ).encode()), 400, "Instance 1 has unknown input(s) ['z']"),
    ("rows mixing objects and values", _post(":predict", json.dumps(
        {"signature_name": "from_seeds", "instances": [{"seeds": 1}, 2]}).encode()), 400,
     "each instance must be an object"),
    ("ragged rows", _post(":predict", json.dumps({"instances": [[0.0] * 16, [0.0]]}).encode()),
     400, "Cannot read the JSON values"),
    ("an object where numbers belong", _post(":predict", b'{"instances": [{"z": {"a": 1}}]}'),
     400, "Cannot read the JSON values"),
    ("columns naming an unknown input", _post(":predict", b'{"inputs": {"w": [1]}}'), 400,
     "has unknown ['w']"),
    ("bad UTF-8", _post(":predict", b'{"instances": "\xff\xfe"}'), 400, "not valid JSON"),
    ("not an object", _post(":predict", b"[1, 2]"), 400, "must be a JSON object"),
    ("malformed chunked body", _post(":predict", b"zz\r\n{}\r\n0\r\n\r\n",
                                     "Transfer-Encoding: chunked\r\n"), 400, "chunk size"),
    ("gzip transfer encoding", _post(":predict", b"{}", "Transfer-Encoding: gzip\r\n"), 501,
     "not supported"),
    ("an unsupported method", b"PUT /v1/models/dcgan HTTP/1.1\r\nHost: x\r\n\r\n", 501,
     "Unsupported method"),
    ("a garbage request line", b"\x16\x03\x01 hello\r\n\r\n", 400, "Bad"),
    ("predict with GET", b"GET /v1/models/dcgan:predict HTTP/1.1\r\nHost: x\r\n\r\n", 405,
     "needs POST"),
]  # fmt: skip


@pytest.mark.parametrize("data,status,message", [c[1:] for c in MALFORMED_REST],
                         ids=[c[0] for c in MALFORMED_REST])  # fmt: skip
def test_every_malformed_rest_request_gets_a_status_and_a_json_error(
    server, gan, data, status, message
):
    answer = _http(server.rest_port, data)
    assert answer is not None, "no HTTP response"
    assert answer[0] == status and message in answer[1]["error"], answer
    ok = _rest(server, ":predict", {"signature_name": "from_seeds", "instances": [1]})
    assert ok[0] == 200  # and the server goes on


def test_a_chunked_rest_body_is_read(server, gan):
    body = json.dumps({"signature_name": "from_seeds", "instances": [3, 4]}).encode()
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (body[:10], body[10:])) + b"0\r\n\r\n"
    status, answer = _http(server.rest_port, _post(":predict", chunked,
                                                   "Transfer-Encoding: chunked\r\n"))  # fmt: skip
    assert status == 200
    images = np.array([p["images"] for p in answer["predictions"]], np.uint8)
    np.testing.assert_array_equal(images, _expected(gan, [3, 4]))


def test_idle_and_slow_rest_clients_time_out_and_connections_are_bounded(export_base):
    import socket

    with LocalModelServer(export_base, grpc_port=0, rest_port=0, poll_seconds=0,
                          request_timeout=1.0, max_connections=2) as server:  # fmt: skip
        port = server.rest_port
        start = time.monotonic()
        half = socket.create_connection(("127.0.0.1", port), timeout=10)
        half.sendall(b"POST /v1/models/dcgan:predict HTTP/1.1\r\nContent-Length: 100\r\n\r\n{")
        slow = socket.create_connection(("127.0.0.1", port), timeout=10)
        # Both slots are taken: a third client is answered 503 at once, not left waiting.
        assert _http(port, b"GET /v1/models/dcgan HTTP/1.1\r\n\r\n", timeout=5)[0] == 503
        for byte in b"GET /v1/models/dcgan HTTP/1.1\r\n":  # a byte every 0.2 s: never done
            try:
                slow.sendall(bytes([byte]))
            except OSError:
                break
            time.sleep(0.2)
            if time.monotonic() - start > 3:
                break
        answer = half.recv(65536)  # the stalled body: 408 and closed
        assert b" 408 " in answer.split(b"\r\n")[0] and b"not received in 1 s" in answer
        slow.settimeout(5)
        assert slow.recv(65536) == b""  # closed: it had not even sent a request line
        assert time.monotonic() - start < 5
        half.close()
        slow.close()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # the slots are released
            answer = _http(port, b"GET /v1/models/dcgan HTTP/1.1\r\n\r\n", timeout=5)
            if answer[0] == 200:
                break
            time.sleep(0.1)
        assert answer[0] == 200


def test_a_corrupt_newest_version_serves_the_newest_loadable_one(gan, tmp_path, caplog):
    base = str(tmp_path / "m")
    export_generator(gan, base, warmup=False)
    shutil.copytree(os.path.join(base, "1"), os.path.join(base, "2"))
    with open(os.path.join(base, "2", "saved_model.pb"), "r+b") as f:
        f.truncate(100)  # version 2 damaged
    caplog.set_level("ERROR", logger="keras_dcgan.serving.server")
    with LocalModelServer(base, grpc_port=0, rest_port=0, poll_seconds=0.1) as server:
        with GeneratorClient(f"127.0.0.1:{server.grpc_port}") as c:
            assert c.wait_until_available(10) == 1  # not "no loadable version"
            np.testing.assert_array_equal(c.sample(seeds=[5]), _expected(gan, [5]))
            time.sleep(1.0)  # ten polls
            failures = [r for r in caplog.records if "Could not load version 2" in r.message]
            assert len(failures) == 1  # logged once, not once per poll
            assert "still serving 1" in failures[0].message or "older" in failures[0].message
            shutil.rmtree(os.path.join(base, "2"))  # repaired: tried again, and served
            shutil.copytree(os.path.join(base, "1"), os.path.join(base, ".new"))
            os.rename(os.path.join(base, ".new"), os.path.join(base, "2"))
            deadline = time.monotonic() + 20
            while c.status().get(2) != "AVAILABLE" and time.monotonic() < deadline:
                time.sleep(0.1)
            assert c.status() == {1: "END", 2: "AVAILABLE"}
