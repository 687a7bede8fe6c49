"""Table 1 on an ordinary machine: D's features streamed to disk, an L2-SVM fitted from there
(analysis.streaming_svm), and the solver choice and memory check of analysis.features."""

import os

import numpy as np
import pytest
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from keras_dcgan.analysis import features as F
from keras_dcgan.analysis import streaming_svm as S
from keras_dcgan.config import get_config
from keras_dcgan.errors import UserError
from keras_dcgan.models import random_discriminator
from tests.helpers import random_images


def store_of(x, path, dtype="float32"):
    store = S.FeatureStore.create(str(path), len(x), x.shape[1], dtype)
    for start in range(0, len(x), 7):  # several writes
        store.write(start, x[start : start + 7])
    return store


def planted(n, dim=60, classes=4, seed=0, spread=0.5):
    """Separable clusters (the same for every seed; `seed` draws the examples), features with
    non-zero means and unequal scales."""
    fixed = np.random.default_rng(123)
    centers = fixed.normal(size=(classes, dim)) * 3
    scale, shift = fixed.uniform(0.5, 4, dim), fixed.uniform(-2, 5, dim)
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    x = centers[y] + spread * rng.normal(size=(n, dim))
    return (x * scale + shift).astype(np.float32), y


def test_streamed_features_equal_the_in_memory_ones(tmp_path):
    d = random_discriminator(get_config("tiny").model, seed=0)
    images = random_images(11, 32, 3, seed=2)
    extractor = F.FeatureExtractor(d, batch_size=4)
    expected = extractor(images)
    indices = np.array([3, 0, 10, 5, 7, 1, 2])
    store = S.extract_to_store(lambda i: extractor(images[i]), indices, str(tmp_path / "f.npy"),
                               batch=3)  # fmt: skip
    on_disk = np.load(store.path)  # an ordinary .npy
    assert on_disk.dtype == np.float32 and on_disk.shape == (7, F.feature_dim(d))
    np.testing.assert_array_equal(on_disk, expected[indices])
    np.testing.assert_array_equal(store.read(2, 5), expected[indices[2:5]])
    half = S.extract_to_store(lambda i: extractor(images[i]), indices, str(tmp_path / "h.npy"),
                              "float16")  # fmt: skip
    assert np.load(half.path).dtype == np.float16 and half.nbytes == store.nbytes // 2
    np.testing.assert_allclose(half.read(0, 7), expected[indices], rtol=1e-3, atol=1e-3)


def test_streaming_standardisation_equals_standard_scaler(tmp_path):
    x, _ = planted(103)
    x[:, 5] = 7.0  # a constant feature: scale 1, as StandardScaler
    store = store_of(x, tmp_path / "x.npy")
    mean, scale = S.streaming_stats([store], chunk_rows=10)  # 11 chunks, the last one of 3
    scaler = StandardScaler().fit(x)
    np.testing.assert_allclose(mean, scaler.mean_, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(scale, scaler.scale_, rtol=1e-5)
    other = store_of(x[:40] * 2, tmp_path / "y.npy")  # two stores pooled
    mean2, scale2 = S.streaming_stats([store, other], chunk_rows=16)
    both = StandardScaler().fit(np.concatenate([x, x[:40] * 2]))
    np.testing.assert_allclose(mean2, both.mean_, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(scale2, both.scale_, rtol=1e-5)


@pytest.mark.parametrize("classes", [2, 4])
def test_streaming_svm_agrees_with_linear_svc(tmp_path, classes):
    x, y = planted(300, classes=classes)
    xv, yv = planted(100, classes=classes, seed=1)
    train, val = store_of(x, tmp_path / "t.npy"), store_of(xv, tmp_path / "v.npy")
    scaler, svm, C, val_errors, converged = S.fit_streaming_svm(
        train, y, val, yv, [1e-3, 1e-2], chunk_rows=64
    )
    assert converged and set(val_errors) == {1e-3, 1e-2}
    exact = F.fit_l2svm(x, y, xv, yv, [C])
    reference = LinearSVC(C=C, dual="auto", max_iter=10_000).fit(exact.scaler.transform(x), y)
    np.testing.assert_allclose(svm.coef_, reference.coef_, atol=2e-3)
    np.testing.assert_allclose(svm.intercept_, reference.intercept_, atol=2e-3)
    test, ty = planted(400, classes=classes, seed=5)
    np.testing.assert_array_equal(svm.predict(scaler.transform(test)), exact.predict(test))
    assert np.mean(svm.predict(scaler.transform(test)) == ty) > 0.99


def test_streaming_solver_matches_the_exact_one_on_digits():
    """The whole protocol with either solver (same splits, same D): test errors within 1 point."""
    d = random_discriminator(get_config("tiny").model, seed=0)
    data = F.load_protocol_data(F.get_protocol("digits"), 32, 3)
    protocol = F.get_protocol("digits", labels=50, repeats=2)
    errors = {}
    for solver in ("exact", "streaming"):
        report = F.compare_discriminators(d, protocol, data=data, C_grid=(1e-3, 1e-2),
                                          solver=solver)  # fmt: skip
        assert report.solver == solver and f"{solver} solver" in report.summary()
        errors[solver] = np.array(report.trained.test_errors)
    assert np.all(np.abs(errors["exact"] - errors["streaming"]) <= 0.01), errors
    assert errors["streaming"].mean() < 0.35


def test_float16_storage_and_a_kept_feature_dir(tmp_path):
    d = random_discriminator(get_config("tiny").model, seed=0)
    data = F.load_protocol_data(F.get_protocol("digits"), 32, 3)
    folder = tmp_path / "features"
    options = F.StreamingOptions(feature_dir=str(folder), feature_dtype="float16", chunk_rows=16)
    protocol = F.get_protocol("digits", repeats=1)
    report = F.compare_discriminators(d, protocol, data=data, C_grid=(1e-2,), solver="streaming",
                                      streaming=options)  # fmt: skip
    assert report.trained.mean < 0.35
    assert folder.is_dir() and not os.listdir(folder)  # the folder kept, the feature files removed
    with pytest.raises(UserError, match="overflow float16"):
        S.FeatureStore.create(str(tmp_path / "o.npy"), 1, 2, "float16").write(0, [[1e6, 0]])


def test_memory_check_and_solver_choice():
    gib = 2**30
    # CIFAR-10 at paper32: the exact fit needs 42.7 GiB; the streaming one passes on 24 GiB
    with pytest.raises(UserError, match="needs about 42.7 GiB.*--solver=streaming"):
        F._memory_check(50_000, 28_672, 24 * gib)
    need = F._memory_check(50_000, 28_672, 24 * gib, "streaming", feature_dtype="float16")
    assert 3 * gib < need < 4 * gib and need == F.streaming_peak_bytes(28_672, 10, "float16")
    assert F._memory_check(500_000, 28_672, 24 * gib, "streaming") < 4 * gib  # not growing with n
    with pytest.raises(UserError, match="streaming solver: 2 GiB for the process"):
        F._memory_check(50_000, 28_672, 2 * gib, "streaming")
    assert F.choose_solver("auto", 50_000, 28_672, 24 * gib) == "streaming"
    assert F.choose_solver("auto", 1_000, 28_672, 24 * gib) == "exact"  # SVHN 1000 labels
    assert F.choose_solver("exact", 50_000, 28_672, 24 * gib) == "exact"
    assert S.streaming_fit_bytes(28_672, 10, "float16") < gib


def test_bad_streaming_inputs_are_refused(tmp_path):
    d = random_discriminator(get_config("tiny").model, seed=0)
    data = F.load_protocol_data(F.get_protocol("digits"), 32, 3)
    with pytest.raises(UserError, match="solver must be one of auto, exact, streaming; got 'sgd'"):
        F.compare_discriminators(d, "digits", data=data, solver="sgd")
    with pytest.raises(UserError, match="solver must be one of"):
        F.classify(str(tmp_path), solver="liblinear")
    with pytest.raises(UserError, match="feature_dtype must be one of float32, float16; got 'fl"):
        F.StreamingOptions(feature_dtype="float8")
    with pytest.raises(UserError, match="chunk_rows must be a positive integer"):
        F.StreamingOptions(chunk_rows=0)
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(UserError, match="is not a directory"):
        S.feature_folder(str(a_file))
    read_only = tmp_path / "read_only"
    read_only.mkdir()
    read_only.chmod(0o500)
    try:
        if not os.access(read_only, os.W_OK):  # root may write anywhere
            with pytest.raises(UserError, match="is not writable"):
                S.feature_folder(str(read_only))
    finally:
        read_only.chmod(0o700)
    with pytest.raises(UserError, match=r"writes 1,000,000,000 x 28,672 float32 features"):
        F._check_disk(10**9, 28_672, "float32", str(tmp_path))  # 107 TB


# ------------------------------------------------------------- Table 2's supervised baseline
def test_supervised_baseline_beats_chance_on_digits():
    from keras_dcgan.analysis.supervised import supervised_baseline, supervised_classifier

    model = supervised_classifier(get_config("tiny").model, 10, seed=0)
    assert model.output_shape == (None, 10)
    conv = [w.name for w in model.weights if "kernel" in w.path and "conv" in w.path]
    assert len(conv) == 3  # D's three conv blocks, then the 10-way head
    data = F.load_protocol_data(F.get_protocol("digits"), 32, 3)
    protocol = F.get_protocol("digits", labels=50, repeats=2)
    result = supervised_baseline(get_config("tiny").model, protocol, data=data, max_epochs=12,
                                 patience=4)  # fmt: skip
    assert len(result.test_errors) == 2 and all(1 <= e <= 12 for e in result.best_epochs)
    assert result.mean < 0.5, result.to_dict()  # chance: 90%
    assert "test error" in result.text() and result.to_dict()["test_error_std"] >= 0
    with pytest.raises(UserError, match="max_epochs must be a positive integer"):
        supervised_baseline(get_config("tiny").model, protocol, data=data, max_epochs=0)
    with pytest.raises(UserError, match="learning_rate must be a positive number"):
        supervised_baseline(get_config("tiny").model, protocol, data=data, learning_rate=-1.0)
    gray = F.load_protocol_data(F.get_protocol("digits"), 16, 1)
    with pytest.raises(UserError, match="the architecture takes"):
        supervised_baseline(get_config("tiny").model, protocol, data=gray)


def test_supervised_baseline_on_mock_svhn():
    import tensorflow_datasets as tfds

    from keras_dcgan.analysis.supervised import supervised_baseline

    with tfds.testing.mock_data(num_examples=120):
        svhn = F.get_protocol("svhn", labels=20, val_size=30, repeats=1)
        result = supervised_baseline(get_config("tiny").model, svhn, max_epochs=2, patience=1)
    assert len(result.test_errors) == 1 and 0.0 <= result.mean <= 1.0


def test_dcgan_classify_streaming_with_the_supervised_baseline(tmp_path):
    import json

    from keras_dcgan.training import train
    from tests import helpers

    model_dir = str(tmp_path / "run")
    train(get_config("tiny", steps=2), model_dir, verbose=0)
    output = str(tmp_path / "report.json")
    out = helpers.dcgan("classify", f"--model_dir={model_dir}", "--labels=20", "--val_size=100",
                        "--repeats=1", "--C=0.01", "--solver=streaming", "--feature_dtype=float16",
                        f"--feature_dir={tmp_path / 'features'}", "--baseline=supervised",
                        "--max_epochs=3", f"--output={output}")  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert "streaming solver" in out.stdout and "supervised, same arch.:" in out.stdout
    report = json.load(open(output))
    assert report["solver"] == "streaming" and len(report["supervised"]["test_errors"]) == 1
    out = helpers.dcgan("classify", f"--model_dir={model_dir}", "--solver=streaming",
                        "--feature_dir=/proc/x")  # fmt: skip
    assert out.returncode == 1 and "feature_dir '/proc/x' is not writable" in out.stderr
