"""De-duplication by semantic hashing (keras_dcgan.data.dedup).

The planted-duplicates thresholds come from 6 seeds of the same fixture size (150 distinct
images, 20 copies of each kind, default training, the standardized code layer): exact collisions
gave precision 0.93-1.00 and recall 0.35-0.57 (seed 0, the fixture here: 0.35); max_hamming=2
gave precision 0.90-1.00 and recall 0.67-0.83. The tests assert precision >= 0.9 / recall >= 0.3
(exact) and precision >= 0.85 / recall >= 0.6 (Hamming 2). Below the recall bound: an untrained
autoencoder (random projections, recall 0.03-0.17 over the 6 seeds), so the bound checks the
training; the code margin (margin_weight=0: recall 0.25-0.37) pays more at scale than here.
(Before the code layer was standardized, exact recall was 0.55-0.67 on this fixture, but on
100,000 LSUN-like images 81% of them shared a hash: see `build_autoencoder`.)
"""

import dataclasses
import os
import shutil

import numpy as np
import pytest

from keras_dcgan.data import dedup
from keras_dcgan.testing import planted as planted_lib

NUM_BASE, COPIES = 150, 20


@pytest.fixture(scope="module")
def planted():
    return planted_lib.planted_duplicates(NUM_BASE, COPIES, seed=0)


@pytest.fixture(scope="module")
def model(planted):
    return dedup.train_autoencoder(planted.images, seed=0)


# --------------------------------------------------------------------------------------------
# The fixture itself


def test_planted_fixture(planted):
    n = NUM_BASE + 3 * COPIES
    assert planted.images.shape == (n, 32, 32, 3) and planted.images.dtype == np.uint8
    assert len(planted.ids) == len(set(planted.ids)) == n
    assert len(planted.pairs) == 3 * COPIES
    kinds = {copy.split("~")[1] for _, copy in planted.pairs}
    assert kinds == set(planted_lib.COPY_KINDS)
    assert {i.split("/")[0] for i in planted.ids} >= {"china", "flower", "field", "shapes"}
    # the copies are near, not exact, duplicates of their originals
    index = {ident: k for k, ident in enumerate(planted.ids)}
    for original, copy in planted.pairs:
        a, b = planted.images[index[original]], planted.images[index[copy]]
        assert not np.array_equal(a, b)
    # same seed, same fixture
    again = planted_lib.planted_duplicates(NUM_BASE, COPIES, seed=0)
    assert again.ids == planted.ids and np.array_equal(again.images, planted.images)


# --------------------------------------------------------------------------------------------
# Model and hashes


def test_autoencoder_architecture():
    ae = dedup.build_autoencoder(seed=0)
    assert ae.input_shape == (None, 3072) and ae.output_shape == (None, 3072)
    assert ae.get_layer("code").output.shape == (None, 128)
    assert ae.get_layer("corrupt").rate == dedup.DEFAULT_DROPOUT
    # unit-norm projections without a bias, standardized (2 x 128 inference statistics)
    assert ae.count_params() == 3072 * 128 + 2 * 128 + 128 * 3072 + 3072
    assert ae.get_layer("code_norm").center is False and ae.get_layer("code_norm").scale is False
    plain = dedup.build_autoencoder(seed=0, standardize_code=False)  # the paper's layer
    assert plain.count_params() == 3072 * 128 + 128 + 128 * 3072 + 3072


def test_hash_shapes_and_dtypes(model, planted):
    hashes = dedup.semantic_hashes(model, planted.images)
    assert hashes.shape == (len(planted.images), 16) and hashes.dtype == np.uint8
    codes = dedup.code_activations(model, planted.images)
    assert codes.shape == (len(planted.images), 128) and codes.dtype == np.float32
    assert (codes >= 0).all()
    np.testing.assert_array_equal(np.unpackbits(hashes, axis=1), (codes > 0).astype(np.uint8))
    # the codes carry information: bits vary across images and most hashes are distinct
    assert 0.1 < (codes > 0).mean() < 0.9
    assert len({h.tobytes() for h in hashes}) > 0.8 * len(hashes)


def test_hash_input_forms_agree(model, planted):
    images = planted.images[:16]
    as_uint8 = dedup.semantic_hashes(model, images)
    as_float = dedup.semantic_hashes(model, images.astype(np.float32) / 127.5 - 1.0)
    np.testing.assert_array_equal(as_uint8, as_float)
    gray = images[..., :1]
    np.testing.assert_array_equal(
        dedup.semantic_hashes(model, gray), dedup.semantic_hashes(model, np.repeat(gray, 3, -1))
    )


def test_hashes_are_deterministic_at_inference(model, planted):
    np.testing.assert_array_equal(
        dedup.semantic_hashes(model, planted.images), dedup.semantic_hashes(model, planted.images)
    )


def test_training_is_deterministic_for_a_seed(planted):
    images = planted.images[:64]
    a = dedup.train_autoencoder(images, epochs=2, batch_size=16, seed=7)
    b = dedup.train_autoencoder(images, epochs=2, batch_size=16, seed=7)
    c = dedup.train_autoencoder(images, epochs=2, batch_size=16, seed=8)
    for va, vb in zip(a.weights, b.weights, strict=True):
        np.testing.assert_array_equal(va.numpy(), vb.numpy())
    np.testing.assert_array_equal(
        dedup.semantic_hashes(a, images), dedup.semantic_hashes(b, images)
    )
    assert not np.array_equal(a.weights[0].numpy(), c.weights[0].numpy())


# --------------------------------------------------------------------------------------------
# Planted near-duplicates


def test_planted_duplicates_found_exact(model, planted):
    result = dedup.find_duplicates(planted.images, planted.ids, model=model)
    scores = planted_lib.pair_scores(result.groups, planted)
    assert scores.reported_pairs > 0
    assert scores.precision >= 0.9, scores
    assert scores.recall >= 0.3, scores


def test_planted_duplicates_found_within_hamming_2(model, planted):
    exact = dedup.find_duplicates(planted.images, planted.ids, model=model)
    near = dedup.find_duplicates(planted.images, planted.ids, model=model, max_hamming=2)
    scores = planted_lib.pair_scores(near.groups, planted)
    assert scores.precision >= 0.85, scores
    assert scores.recall >= 0.6, scores
    assert near.num_duplicates >= exact.num_duplicates


def test_pair_scores():
    planted = planted_lib.PlantedDuplicates(
        images=np.zeros((5, 32, 32, 3), np.uint8),
        ids=["a", "a~jpeg", "b", "b~shift", "c"],
        pairs=[("a", "a~jpeg"), ("b", "b~shift")],
        base={"a": "a", "a~jpeg": "a", "b": "b", "b~shift": "b", "c": "c"},
    )
    scores = planted_lib.pair_scores([["a", "a~jpeg", "c"]], planted)
    assert (scores.reported_pairs, scores.true_pairs) == (3, 1)
    assert scores.precision == pytest.approx(1 / 3) and scores.recall == 0.5
    assert planted_lib.pair_scores([], planted).recall == 0.0


# --------------------------------------------------------------------------------------------
# Grouping


def test_exact_copies_group_in_input_order(model, planted):
    images = np.concatenate([planted.images[:40], planted.images[[5, 30, 5]]])
    ids = [f"img/{i:03d}.png" for i in range(len(images))]
    result = dedup.find_duplicates(images, ids, model=model)
    by_first = {g[0]: g for g in result.groups}
    assert by_first["img/005.png"] == ["img/005.png", "img/040.png", "img/042.png"]
    assert by_first["img/030.png"] == ["img/030.png", "img/041.png"]
    for group in result.groups:
        assert len(group) >= 2 and group == sorted(group, key=ids.index)
    assert result.keep == [i for i in ids if i not in {m for g in result.groups for m in g[1:]}]
    assert result.keep == sorted(result.keep, key=ids.index)
    assert "img/040.png" not in result.keep and "img/005.png" in result.keep
    assert result.num_images == len(ids)
    assert result.num_duplicates == len(ids) - len(result.keep) >= 3


def test_find_duplicates_trains_when_no_model(planted):
    images = np.concatenate([planted.images[:30], planted.images[:2]])
    ids = [str(i) for i in range(len(images))]
    result = dedup.find_duplicates(images, ids, epochs=2, seed=0)
    assert ["0", "30"] in result.groups and ["1", "31"] in result.groups
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.keep = []


def test_group_hashes_exact_and_hamming():
    bits = np.zeros((5, 128), np.uint8)
    bits[1] = bits[0]  # exact copy of 0
    bits[2, :1] = 1  # 1 bit from 0
    bits[3, :2] = 1  # 1 bit from 2, 2 bits from 0: joins transitively
    bits[4, 64:] = 1  # far from all
    hashes = np.packbits(bits, axis=1)
    assert dedup.group_hashes(hashes) == [[0, 1]]
    assert dedup.group_hashes(hashes, max_hamming=1) == [[0, 1, 2, 3]]
    assert dedup.group_hashes(hashes, max_hamming=64) == [[0, 1, 2, 3, 4]]


def test_group_hashes_hamming_in_blocks_matches_brute_force(monkeypatch):
    hashes = np.random.default_rng(0).integers(0, 256, (40, 2), dtype=np.uint8)
    bits = np.unpackbits(hashes, axis=1).astype(int)
    distance = np.abs(bits[:, None] - bits[None]).sum(-1)
    monkeypatch.setattr(dedup, "_HAMMING_BLOCK_BYTES", 3 * 40 * 2)  # 3 rows per block
    groups = dedup.group_hashes(hashes, max_hamming=3)
    label = {i: k for k, g in enumerate(groups) for i in g}
    for i in range(40):
        for j in range(i + 1, 40):
            if distance[i, j] <= 3:
                assert i in label and label[i] == label.get(j)
    assert all(len(g) >= 2 and g == sorted(g) for g in groups)


# --------------------------------------------------------------------------------------------
# Keep lists


def test_keep_list_round_trip(tmp_path):
    ids = ["a/1.png", "b/ünïcode 2.jpg", "lmdb-key-0003", "x#not-a-comment"]
    path = dedup.write_keep_list(tmp_path / "keep.txt", ids)
    assert dedup.read_keep_list(path) == ids
    assert (tmp_path / "keep.txt").read_bytes().decode("utf-8").splitlines() == ids
    assert os.listdir(tmp_path) == ["keep.txt"]  # no temp file left behind
    dedup.write_keep_list(path, ids[:1])  # overwrites
    assert dedup.read_keep_list(path) == ids[:1]
    assert os.listdir(tmp_path) == ["keep.txt"]


def test_keep_list_failed_write_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "keep.txt"
    dedup.write_keep_list(path, ["old"])

    def fail(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(dedup.os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        dedup.write_keep_list(path, ["new"])
    assert dedup.read_keep_list(path) == ["old"]
    assert os.listdir(tmp_path) == ["keep.txt"]


def test_read_keep_list_skips_comments_and_blanks(tmp_path):
    path = tmp_path / "keep.txt"
    path.write_text("# kept by dedup\n\na.png\n   \n# b.png\nc.png\r\n", encoding="utf-8")
    assert dedup.read_keep_list(path) == ["a.png", "c.png"]


def test_read_keep_list_errors(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        dedup.read_keep_list(tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_text("# nothing\n\n", encoding="utf-8")
    with pytest.raises(ValueError, match="has no ids"):
        dedup.read_keep_list(tmp_path / "empty.txt")


@pytest.mark.parametrize(
    "ids, message",
    [
        (["a\nb"], "must not contain newlines"),
        (["#a"], "must not start with '#'"),
        ([""], "non-blank strings"),
        ("abc", "not one string"),
        ([], "at least one id"),
    ],
)
def test_write_keep_list_rejects_bad_ids(tmp_path, ids, message):
    with pytest.raises(ValueError, match=message):
        dedup.write_keep_list(tmp_path / "keep.txt", ids)
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------------------------
# Bad inputs


def _imgs(n=3, size=32, channels=3, dtype=np.uint8):
    return np.zeros((n, size, size, channels), dtype)


@pytest.mark.parametrize(
    "images, ids, message",
    [
        (
            np.zeros((32, 32, 3), np.uint8),
            ["a"],
            r"shape \(N, 32, 32, C\); got shape \(32, 32, 3\)",
        ),
        (_imgs(size=28), ["a", "b", "c"], "Expected 32x32 images"),
        (_imgs(channels=2), ["a", "b", "c"], "Expected 1 or 3 channels"),
        (_imgs(n=0), [], "at least one image"),
        (_imgs(dtype=np.int32), ["a", "b", "c"], "uint8 or float"),
        (_imgs(dtype=np.float32) + 2.0, ["a", "b", "c"], r"float images in \[-1, 1\]"),
        (_imgs(), ["a", "b"], "len\\(ids\\) is 2 but there are 3 images"),
        (_imgs(), ["a", "b", "a"], "Duplicate id 'a'"),
        (_imgs(), ["a", "b\nc", "d"], "must not contain newlines"),
        (_imgs(), ["a", 2, "d"], "non-empty strings"),
    ],
)
def test_find_duplicates_rejects_bad_inputs(images, ids, message):
    with pytest.raises(ValueError, match=message) as info:
        dedup.find_duplicates(images, ids, epochs=1)
    assert "\n" not in str(info.value)  # one-line messages


def test_other_bad_arguments(model, planted):
    with pytest.raises(ValueError, match="max_hamming must be >= 0"):
        dedup.find_duplicates(planted.images[:2], ["a", "b"], model=model, max_hamming=-1)
    with pytest.raises(ValueError, match="dropout must be in"):
        dedup.build_autoencoder(dropout=1.0)
    with pytest.raises(ValueError, match="epochs and batch_size must be >= 1"):
        dedup.train_autoencoder(planted.images[:2], epochs=0)
    with pytest.raises(ValueError, match="Unknown copy kind"):
        planted_lib.planted_duplicates(10, 1, kinds=["rotate"])


# --------------------------------------------------------------------------------------------
# Streamed de-duplication of a source (`deduplicate`): same keep-list, resumable, bounded


def _planted_lmdb(tmp_path, planted, unusable=()):
    """The planted images as an LSUN-style LMDB of PNGs (lossless: the crops read back exactly),
    plus `unusable` values that do not decode. Returns (folder, ids in the LMDB's order)."""
    from keras_dcgan.testing import synthetic

    values = [synthetic.encode(image, "PNG") for image in planted.images] + list(unusable)
    path = str(tmp_path / "planted_lmdb")
    synthetic.write_lmdb(path, values)
    from keras_dcgan.data import LmdbSource

    return path, LmdbSource(path).all_ids()


def _in_memory(source, train_samples, seed, epochs, max_hamming=0):
    """Today's algorithm written out: every crop in memory, the subset drawn among them."""
    ids, images = source.arrays(dedup.INPUT_SIZE, 3)
    train = images
    if len(images) > train_samples:
        rows = np.random.default_rng(seed).choice(len(images), train_samples, replace=False)
        train = images[np.sort(rows)]
    model = dedup.train_autoencoder(train, epochs, seed=seed)
    return dedup.find_duplicates(images, ids, model=model, max_hamming=max_hamming)


@pytest.mark.parametrize("max_hamming", [0, 2])
def test_streamed_and_in_memory_dedup_give_the_same_keep_list(
    tmp_path, planted, monkeypatch, max_hamming
):
    from keras_dcgan.data import LmdbSource

    monkeypatch.setenv("KERAS_DCGAN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(dedup, "HASH_CHUNK", 64)  # several chunks
    path, _ = _planted_lmdb(tmp_path, planted)
    settings = dict(train_samples=120, seed=3, epochs=4)  # a subset: 120 of 210
    streamed = dedup.deduplicate(
        LmdbSource(path), max_hamming=max_hamming, progress=False, **settings
    )
    reference = _in_memory(LmdbSource(path), max_hamming=max_hamming, **settings)
    assert streamed.num_duplicates > 5  # the test sees real groups
    assert streamed.keep == reference.keep
    assert streamed.groups == reference.groups
    assert streamed.num_images == reference.num_images == len(planted.ids)


def test_exact_grouping_by_sorting_matches_a_dict_pass():
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (40, 16), dtype=np.uint8)
    hashes = base[rng.integers(0, 40, 500)]  # many collisions, in random order
    first: dict[bytes, list[int]] = {}
    for i, h in enumerate(hashes):
        first.setdefault(h.tobytes(), []).append(i)
    expected = [g for g in first.values() if len(g) > 1]
    assert dedup.group_hashes(hashes) == expected
    assert dedup.group_hashes(np.zeros((0, 16), np.uint8)) == []
    assert dedup.group_hashes(base) == []  # all distinct


class _Interrupt(Exception):
    pass


def test_an_interrupted_dedup_continues_from_its_hash_file(tmp_path, planted, monkeypatch):
    """Killed after two chunks (and once more with a torn last line), then rerun: the same
    keep-list as an uninterrupted run, the autoencoder not trained again, unusable inputs
    remembered."""
    from keras_dcgan.data import LmdbSource

    monkeypatch.setenv("KERAS_DCGAN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(dedup, "HASH_CHUNK", 50)
    path, _ = _planted_lmdb(tmp_path, planted, unusable=[b"not an image", b"\xff\xd8 torn"])
    settings = dict(train_samples=150, seed=1, epochs=3, progress=False)
    whole = dedup.deduplicate(LmdbSource(path), **settings)

    hash_file = tmp_path / "keep.txt.hashes"
    real_append = dedup.HashFile.append
    calls = []

    def append_then_die(self, rows):
        real_append(self, rows)
        calls.append(len(rows))
        if len(calls) == 2:
            raise _Interrupt

    monkeypatch.setattr(dedup.HashFile, "append", append_then_die)
    with pytest.raises(_Interrupt):
        dedup.deduplicate(LmdbSource(path), hash_file=hash_file, **settings)
    monkeypatch.setattr(dedup.HashFile, "append", real_append)
    lines = hash_file.read_bytes().splitlines(keepends=True)
    assert len(lines) == 1 + sum(calls)  # the header, then one line per input so far
    with open(hash_file, "ab") as f:  # a kill in the middle of a write
        f.write(b"0123abc")

    def no_training(*args, **kwargs):
        raise AssertionError("the autoencoder was trained again")

    monkeypatch.setattr(dedup, "train_autoencoder", no_training)
    # As on a new Colab VM: the same LMDB extracted again, at another path, with other times.
    moved = tmp_path / "extracted_again"
    shutil.copytree(path, moved)
    os.utime(moved / "data.mdb", (1e9, 1e9))
    path = str(moved)
    resumed = dedup.deduplicate(LmdbSource(path), hash_file=hash_file, **settings)
    assert resumed.keep == whole.keep and resumed.groups == whole.groups
    text = hash_file.read_text()
    assert text.count("\n") == 1 + len(planted.ids) + 2  # every input once, torn line gone
    assert text.count("\n- ") == 2  # the two unusable values, recorded as such
    # Complete: a third run only reads the file (no decoding needed), same answer.
    again = dedup.deduplicate(LmdbSource(path), hash_file=hash_file, **settings)
    assert again.keep == whole.keep


def test_a_hash_file_of_other_settings_or_in_use_is_refused(tmp_path, planted, monkeypatch):
    import fcntl

    from keras_dcgan.data import LmdbSource

    monkeypatch.setenv("KERAS_DCGAN_CACHE_DIR", str(tmp_path / "cache"))
    path, _ = _planted_lmdb(tmp_path, planted)
    hash_file = tmp_path / "h.hashes"
    settings = dict(train_samples=100, epochs=1, progress=False, hash_file=hash_file)
    dedup.deduplicate(LmdbSource(path), seed=0, **settings)
    before = hash_file.read_bytes()
    with pytest.raises(ValueError, match=r"another de-duplication \(it differs in seed\)"):
        dedup.deduplicate(LmdbSource(path), seed=1, **settings)
    with pytest.raises(ValueError, match="differs in limit, num_listed"):
        dedup.deduplicate(LmdbSource(path), seed=0, limit=10, **settings)
    assert hash_file.read_bytes() == before  # refused without touching it
    with open(f"{hash_file}.lock", "a") as holder:  # another process holds it
        fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(ValueError, match="in use by another de-duplication"):
            dedup.deduplicate(LmdbSource(path), seed=0, **settings)
    (tmp_path / "junk.hashes").write_text("hello\n")
    with pytest.raises(ValueError, match="not a keras-dcgan hash file"):
        dedup.deduplicate(LmdbSource(path), **dict(settings, hash_file=tmp_path / "junk.hashes"))
    damaged = before.replace(b'"\n', b"\n", 1)  # an id's closing quote lost
    hash_file.write_bytes(damaged)
    with pytest.raises(ValueError, match="is damaged"):
        dedup.deduplicate(LmdbSource(path), seed=0, **settings)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"train_samples": 0}, "train_samples must be a positive integer"),
        ({"limit": 0}, "limit must be a positive integer or None"),
        ({"max_hamming": -1}, "max_hamming must be an integer >= 0"),
        ({"epochs": 1.5}, "epochs must be a positive integer"),
    ],
)
def test_deduplicate_rejects_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        dedup.deduplicate("digits", progress=False, **kwargs)


def test_each_bit_splits_the_training_images_near_the_mean(model, planted):
    """The standardized code: "code_norm" holds the training projections' exact mean and
    variance, so no bit is the same for every image (the collapse it prevents at scale)."""
    x = dedup._flatten(planted.images)
    z = np.asarray(model.get_layer("code_linear")(x)).astype(np.float64)
    norm = model.get_layer("code_norm")
    np.testing.assert_allclose(np.asarray(norm.moving_mean), z.mean(0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.asarray(norm.moving_variance), z.var(0), rtol=1e-3)
    bits = np.unpackbits(dedup.semantic_hashes(model, planted.images), axis=1)
    share = bits.mean(axis=0)
    assert ((share > 0) & (share < 1)).all(), share
    assert 0.3 < share.mean() < 0.7
