"""The reference Inception graph (keras_dcgan.evaluation.tf_inception): loading, batching, feature
extraction, the file checks, and FID/KID/IS through it. Offline: a small graph with the reference
graph's tensor names and shapes is built here (keras_dcgan.testing.inception_graph); the real file
is used only where it is in the Keras cache (a slow test, skipped otherwise)."""

import io
import os
import tarfile

import numpy as np
import pytest
import tensorflow as tf

from keras_dcgan.evaluation import metrics, stats
from keras_dcgan.evaluation import tf_inception as ti
from keras_dcgan.testing.inception_graph import write_inception_graph
from tests.helpers import tiny_gan


@pytest.fixture(scope="module")
def graph_file(tmp_path_factory):
    return write_inception_graph(str(tmp_path_factory.mktemp("inception") / ti.GRAPH_FILE))


@pytest.fixture(scope="module")
def network(graph_file):
    return ti.ReferenceInception(graph_file, batch_size=4)


def _images(n, size=24, channels=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (n, size, size, channels)).astype(np.float32)


def _session_features(graph_file, images):
    """The graph run as TF1 code runs it (TTUR): one image at a time fed to ExpandDims:0 as float
    0..255; pool_3 and the bias-free logits of softmax/logits/MatMul, softmax in NumPy."""
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(open(graph_file, "rb").read())
    pools, probabilities = [], []
    with tf.Graph().as_default() as graph:
        tf.compat.v1.import_graph_def(graph_def, name="")
        with tf.compat.v1.Session(graph=graph) as session:
            for image in images:
                pixels = np.round((np.clip(image, -1, 1) + 1) * 127.5).astype(np.float32)
                pool, logits = session.run(
                    ["pool_3:0", "softmax/logits/MatMul:0"], {"ExpandDims:0": pixels[None]}
                )
                pools.append(pool.reshape(-1))
                e = np.exp(logits[0] - logits[0].max())
                probabilities.append(e / e.sum())
    return np.array(pools), np.array(probabilities)


def test_features_are_the_graphs_own_batched_or_one_by_one(graph_file, network):
    images = _images(7)
    pool, probabilities = network(images)
    assert pool.shape == (7, ti.POOL_DIM) and pool.dtype == np.float32
    assert probabilities.shape == (7, ti.NUM_CLASSES)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    one_by_one = [network(images[i : i + 1]) for i in range(7)]
    np.testing.assert_allclose(np.concatenate([p for p, _ in one_by_one]), pool, rtol=1e-5,
                               atol=1e-6)  # fmt: skip
    reference_pool, reference_probabilities = _session_features(graph_file, images)
    np.testing.assert_allclose(pool, reference_pool, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(probabilities, reference_probabilities, rtol=1e-4, atol=1e-7)


def test_images_are_fed_as_uint8_pixels_and_grayscale_as_rgb(network):
    images = _images(3, channels=1)
    rgb = np.repeat(images, 3, axis=-1)
    np.testing.assert_array_equal(network(images)[0], network(rgb)[0])
    # Images are quantised to 0..255 first: less than half a step changes nothing, a step does.
    pixels = np.random.default_rng(3).integers(0, 255, (3, 24, 24, 3))
    exact = (pixels / 127.5 - 1).astype(np.float32)
    nudged = exact + np.float32(0.3 / 127.5)
    np.testing.assert_array_equal(network(nudged)[0], network(exact)[0])
    stepped = ((pixels + 1) / 127.5 - 1).astype(np.float32)
    assert not np.array_equal(network(stepped)[0], network(exact)[0])


def test_a_set_against_itself_has_fid_zero_and_another_set_does_not(network):
    a, _ = network(_images(40, seed=1))
    b, _ = network(_images(40, seed=2) * 0.3)
    fa, fb = stats.FeatureStats(), stats.FeatureStats()
    fa.update(a)
    fb.update(b)
    assert stats.fid_from_stats(fa, fa) == pytest.approx(0.0, abs=1e-6)
    assert stats.fid_from_stats(fa, fb) > 1e-3


def test_fid_kid_and_is_of_a_run_through_the_reference_network(graph_file, tmp_path):
    from keras_dcgan.data import open_source

    network = metrics.feature_network("tf_inception_2015", graph_file)
    assert network.id.startswith("tf_inception_2015-")
    results = metrics.evaluate(tiny_gan(), ["fid40", "kid40", "is40"], open_source("digits"),
                               network, cache_dir=str(tmp_path))  # fmt: skip
    assert results["fid40"] > 0 and np.isfinite(results["kid40"])
    assert 1.0 <= results["is40"] <= ti.NUM_CLASSES


def test_a_tgz_is_opened_and_its_graph_taken_out_once_into_the_cache(
    tmp_path, graph_file, monkeypatch
):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    archive = str(tmp_path / ti.ARCHIVE)
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(graph_file, arcname=f"inception/{ti.GRAPH_FILE}")
        info = tarfile.TarInfo("inception/LICENSE")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"MIT"))
    path = ti.resolve(archive)
    assert path == ti.cached_path()
    assert open(path, "rb").read() == open(graph_file, "rb").read()
    assert os.path.isfile(f"{path}.sha256")
    modified = os.stat(path).st_mtime_ns
    assert ti.resolve(archive) == path and os.stat(path).st_mtime_ns == modified  # not again


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda p: open(p, "wb").write(b"not a graph"), "is not a TensorFlow GraphDef"),
        (lambda p: open(p, "wb").write(tf.Graph().as_graph_def().SerializeToString()),
         "is not the reference Inception graph"),
    ],
)  # fmt: skip
def test_a_file_that_is_not_the_reference_graph_is_refused(tmp_path, make, message):
    path = str(tmp_path / "other.pb")
    make(path)
    with pytest.raises(ValueError, match=message):
        ti.ReferenceInception(path)
    assert not os.path.exists(f"{path}.sha256")


def test_a_truncated_download_or_an_archive_without_the_graph_is_refused(
    tmp_path, graph_file, monkeypatch
):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    archive = str(tmp_path / ti.ARCHIVE)
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(graph_file, arcname=ti.GRAPH_FILE)
    data = open(archive, "rb").read()
    with open(archive, "wb") as f:
        f.write(data[: len(data) // 2])
    with pytest.raises(ValueError, match="is damaged or incomplete"):
        ti.resolve(archive)
    folder = os.path.dirname(ti.cached_path())
    assert not os.path.exists(folder) or os.listdir(folder) == []  # nothing half-written left
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("README")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    with pytest.raises(ValueError, match="holds no classify_image_graph_def.pb"):
        ti.resolve(archive)


def test_a_file_that_changes_after_its_first_check_is_refused(tmp_path, graph_file):
    path = str(tmp_path / ti.GRAPH_FILE)
    data = open(graph_file, "rb").read()
    open(path, "wb").write(data)
    ti.resolve(path)  # checked and recorded
    open(path, "wb").write(data[:-1] + bytes([data[-1] ^ 1]))  # one bit flipped
    with pytest.raises(ValueError, match="has SHA-256 .* not the .* of the reference"):
        ti.resolve(path)


def test_without_the_file_and_offline_the_error_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    assert os.environ["KERAS_DCGAN_OFFLINE"] == "1"  # tests/conftest.py: nothing downloads
    with pytest.raises(ValueError, match="not in the Keras cache .*dcgan fetch_inception"):
        metrics.feature_network("tf_inception_2015")
    with pytest.raises(ValueError, match="exists only for fid_network='keras_inception_v3'"):
        metrics.feature_network("tf_inception_2015", "random")
    with pytest.raises(ValueError, match="fid_network must be one of"):
        metrics.feature_network("inception_v4")


@pytest.mark.slow
def test_the_real_reference_graph_where_it_is_cached():
    if not os.path.isfile(ti.cached_path()):
        pytest.skip(
            f"The reference Inception graph is not in the Keras cache ({ti.cached_path()}); this "
            "machine cannot download it (`dcgan fetch_inception` on one that can)."
        )
    network = ti.ReferenceInception(batch_size=8)
    images = _images(10, size=64)
    pool, probabilities = network(images)
    assert pool.shape == (10, 2048) and probabilities.shape == (10, 1008)
    one_by_one = np.concatenate([network(images[i : i + 1])[0] for i in range(10)])
    np.testing.assert_allclose(one_by_one, pool, rtol=1e-4, atol=1e-4)
    fa = stats.FeatureStats()
    fa.update(pool)
    assert stats.fid_from_stats(fa, fa) == pytest.approx(0.0, abs=1e-6)


def test_fetch_inception_checks_a_copy_brought_by_hand(tmp_path, graph_file):
    from tests.helpers import dcgan

    path = str(tmp_path / ti.GRAPH_FILE)
    open(path, "wb").write(open(graph_file, "rb").read())
    out = dcgan("fetch_inception", f"--path={path}")
    assert out.returncode == 0, out.stderr[-2000:]
    digest = open(f"{path}.sha256").read().split()[0]
    assert f"Reference Inception graph: {path}\nSHA-256: {digest}" in out.stdout


def test_download_takes_the_graph_out_of_the_fetched_archive(tmp_path, monkeypatch, graph_file):
    import keras

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    archive = str(tmp_path / ti.ARCHIVE)
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(graph_file, arcname=ti.GRAPH_FILE)
    fetched = []

    def get_file(fname, origin, cache_subdir):
        fetched.append((fname, origin, cache_subdir))
        return archive

    monkeypatch.setattr(keras.utils, "get_file", get_file)
    assert ti.download() == ti.cached_path()
    assert fetched == [(ti.ARCHIVE, ti.ARCHIVE_URL, ti.CACHE_SUBDIR)]
    assert ti.ReferenceInception(allow_download=False).path == ti.cached_path()
    assert ti.download() == ti.cached_path() and len(fetched) == 1  # cached: no second fetch


def test_a_failed_download_is_one_line_saying_what_to_do(tmp_path, monkeypatch):
    import keras

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))

    def get_file(*args, **kwargs):
        raise Exception("URL fetch failure on http://...: None -- [Errno -2] Name or service")

    monkeypatch.setattr(keras.utils, "get_file", get_file)
    with pytest.raises(ValueError, match="Could not download .*Name or service.*fetch_inception"):
        ti.ReferenceInception(allow_download=True)


def test_a_copy_whose_checksum_cannot_be_recorded_is_used_and_checked_each_time(
    tmp_path, graph_file, caplog
):
    path = str(tmp_path / ti.GRAPH_FILE)
    open(path, "wb").write(open(graph_file, "rb").read())
    os.mkdir(f"{path}.sha256")  # unwritable as a file, even for root (a read-only folder's case)
    network = ti.ReferenceInception(path)
    assert network.id == f"tf_inception_2015-{ti._sha256(path)[:12]}"
    assert "Cannot record the SHA-256" in caplog.text
