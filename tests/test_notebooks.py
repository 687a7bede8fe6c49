"""The Colab notebooks in notebooks/: committed without outputs, the two LSUN notebooks in step,
and every notebook executed in its smoke mode.

Smoke mode (`DCGAN_NOTEBOOK_SMOKE=1`, read by each notebook's second cell): a tiny image folder,
or for LSUN a tiny zip archive laid out as LSUN's and "downloaded" from a file:// URL, made on the
fly (the analysis notebook: the offline digits), a tiny model, a few steps; no install, no Google
Drive, no network. The LSUN notebooks run their first-N branch, and with
`DCGAN_NOTEBOOK_SMOKE_FULL=1` their all-images one. The notebook runs in a fresh kernel of this
Python (nbclient, kernel "python3" = ipykernel here) with a temporary folder as its working
directory; the test then checks the files it should have left.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import sys
import time
import zipfile
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
LSUN_1, LSUN_5 = "lsun_bedrooms_1_epoch.ipynb", "lsun_bedrooms_5_epochs.ipynb"
OWN = "your_images.ipynb"
ANALYSIS = "analysis_tools.ipynb"
ALL = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
BADGE = "https://colab.research.google.com/github/keras-dcgan/keras-dcgan/blob/main/notebooks/"

# What each smoke run must leave under its working directory ("keras-dcgan" is the notebooks'
# stand-in for the Drive folder).
LSUN_RUN = "keras-dcgan/runs/bedrooms_paper64_first64_dedup"
LSUN_FIGURES = "keras-dcgan/figures/bedrooms_paper64_first64_dedup"
SMOKE_ARCHIVE = "smoke_server/bedroom_train_lmdb.zip"  # the stand-in for LSUN's server


def _lsun_files(run_name: str, data: str) -> list[str]:
    """An LSUN smoke run's files: `data` the LMDB de-duplicated (its name), `run_name` the run."""
    return [
        SMOKE_ARCHIVE,
        f"keras-dcgan/data/{data}_keep.txt",  # the de-duplication keep-list, "on Drive"
        f"keras-dcgan/data/{data}_keep.hashes",  # its resumable hash file, beside it
        f"keras-dcgan/runs/{run_name}/config.json",
        f"keras-dcgan/runs/{run_name}/checkpoints/checkpoint",
        f"keras-dcgan/runs/{run_name}/model.keras",
        f"keras-dcgan/runs/{run_name}/samples/epoch_0001.png",
        f"keras-dcgan/figures/{run_name}/real_images.png",
        f"keras-dcgan/figures/{run_name}/served_samples.png",
        f"keras-dcgan/figures/{run_name}/latent_walk.png",
        f"keras-dcgan/exports/{run_name}/1/saved_model.pb",
    ]


LSUN_FILES = [
    "keras-dcgan/data/bedroom_first64_lmdb/data.mdb",  # the first-N subset, kept "on Drive"
    *_lsun_files("bedrooms_paper64_first64_dedup", "bedroom_first64_lmdb"),
]
LSUN_FULL_FILES = [  # DCGAN_NOTEBOOK_SMOKE_FULL=1: all the stand-in's images, "downloaded"
    "smoke_data/bedroom_train_lmdb/data.mdb",
    *_lsun_files("bedrooms_paper64_dedup", "bedroom_train_lmdb"),
]
SMOKE_RECORDS = 80  # the stand-in archive's images
OWN_RUN = "keras-dcgan/runs/my_images"
ANALYSIS_RUN = "keras-dcgan/runs/tiny_demo"  # the demo run (MODEL_DIR = ""), tiny in smoke mode
ANALYSIS_FIGURES = "keras-dcgan/figures/tiny_demo/analysis"
OWN_FIGURES = "keras-dcgan/figures/my_images"
EXPECTED = {
    LSUN_1: LSUN_FILES,
    LSUN_5: [*LSUN_FILES, f"{LSUN_RUN}/samples/epoch_0005.png"],
    OWN: [
        "smoke_images/.copied",
        "keras-dcgan/data/my_images_keep.txt",
        f"{OWN_RUN}/checkpoints/checkpoint",
        f"{OWN_RUN}/model.keras",
        f"{OWN_RUN}/samples/epoch_0001.png",
        f"{OWN_RUN}/samples/epoch_0002.png",
        f"{OWN_FIGURES}/real_images.png",
        f"{OWN_FIGURES}/samples.png",
        f"{OWN_FIGURES}/latent_walk.png",
        f"{OWN_FIGURES}/served_samples.png",
        "keras-dcgan/exports/my_images/1/saved_model.pb",
    ],
    ANALYSIS: [
        f"{ANALYSIS_RUN}/config.json",
        f"{ANALYSIS_RUN}/checkpoints/checkpoint",
        *(
            f"{ANALYSIS_FIGURES}/{name}"
            for name in (
                "samples.png",
                "walks_linear.png",
                "walks_spherical.png",
                "arithmetic.png",
                "arithmetic_result.npy",
                "turn.png",
                "classify_digits.json",
                "guided_backprop.png",
                "ablation_channels.png",
                "boxes.json",
                "boxes.png",
                "object_maps.json",
                "ablation_boxes.png",
            )
        ),
    ],
}


def _load(name: str) -> dict:
    with open(NOTEBOOKS / name, encoding="utf-8") as f:
        return json.load(f)


def _code(nb: dict) -> list[tuple[str, str]]:
    cells = [c for c in nb["cells"] if c["cell_type"] == "code"]
    return [(c.get("id", ""), "".join(c["source"])) for c in cells]


def test_every_notebook_runs_in_ci():
    """Each notebook has a smoke test below and its expected files in EXPECTED."""
    assert set(ALL) == set(EXPECTED), f"notebooks: {ALL}; smoke-tested: {sorted(EXPECTED)}"


@pytest.mark.parametrize("name", ALL)
def test_committed_without_outputs(name):
    for cell in _load(name)["cells"]:
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [], f"{name}: cell {cell.get('id')} has outputs"
            assert cell.get("execution_count") is None, f"{name}: cell {cell.get('id')} ran"


@pytest.mark.parametrize("name", ALL)
def test_structure(name):
    nb = _load(name)
    text = "".join("".join(c["source"]) for c in nb["cells"])
    assert BADGE + name in text, f"{name}: no Open in Colab badge for itself"
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    ids = [cell_id for cell_id, _ in _code(nb)]
    for cell_id in ("parameters", "smoke-mode", "install", "gpu-check", "precision"):
        assert cell_id in ids, f"{name}: no {cell_id!r} cell"
    parameters = next(c for c in nb["cells"] if c.get("id") == "parameters")
    assert "parameters" in parameters["metadata"].get("tags", []), "papermill's parameters tag"
    assert "from keras_dcgan" in text


def _package_names() -> set[str]:
    names = set()
    for path in (NOTEBOOKS.parent / "keras_dcgan").rglob("*.py"):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                names.add(node.name.lstrip("_"))
    return names


@pytest.mark.parametrize("name", ALL)
def test_notebooks_import_the_package_never_copy_it(name):
    """No notebook defines a class, or a function under a name the package already uses."""
    package = _package_names()
    for cell_id, source in _code(_load(name)):
        for node in ast.walk(ast.parse(source)):
            assert not isinstance(node, ast.ClassDef), f"{name}: cell {cell_id} defines a class"
            if isinstance(node, ast.FunctionDef):
                assert node.name.lstrip("_") not in package, (
                    f"{name}: cell {cell_id} defines {node.name}, which keras_dcgan has"
                )


def test_lsun_notebooks_in_step():
    """The 1- and 5-epoch notebooks run the same code; only EPOCHS differs."""
    one, five = _code(_load(LSUN_1)), _code(_load(LSUN_5))
    assert [i for i, _ in one] == [i for i, _ in five]
    for (cell_id, a), (_, b) in zip(one, five, strict=True):
        if cell_id == "parameters":
            assert a.replace("EPOCHS = 1 ", "EPOCHS = 5 ") == b
        else:
            assert a == b, f"cell {cell_id} differs between {LSUN_1} and {LSUN_5}"


def _execute(name: str, workdir: Path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    monkeypatch.setenv("DCGAN_NOTEBOOK_SMOKE", "1")
    monkeypatch.setenv("KERAS_DCGAN_CACHE_DIR", str(workdir / "cache"))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = nbclient.NotebookClient(
        nb, kernel_name="python3", timeout=300, resources={"metadata": {"path": str(workdir)}}
    )
    client.execute()  # raises CellExecutionError, naming the cell, if one fails
    return nb


def _check_ran(name: str, nb, workdir: Path, expected: list[str] | None = None) -> str:
    """Every code cell ran without an error and the expected files exist (`expected`, else those
    of EXPECTED); returns the output."""
    texts = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        assert cell.execution_count is not None, f"{name}: cell {cell.get('id')} did not run"
        for output in cell.outputs:
            assert output.output_type != "error", f"{name}: cell {cell.get('id')}: {output}"
            texts.append(output.get("text", ""))
    text = "".join(texts)
    # The kernel ran this Python (the one with keras_dcgan installed), in smoke mode.
    assert f"Smoke mode: using the keras_dcgan installed in {sys.prefix}" in text
    assert "Precision: float32 (chosen for no GPU" in text  # the precision cell, on the CPU
    expected = EXPECTED.get(name, []) if expected is None else expected
    missing = [f for f in expected if not (workdir / f).exists()]
    assert not missing, f"{name} did not write {missing}; it wrote {_files(workdir)}"
    return text


TRUNCATED = "/bedroom_train_lmdb/data.mdb is truncated: "  # the smoke run's half-unzipped copy
EXTRACTED_AGAIN = "Deleted it; extracting the archive again."


def _training_line(text: str, batch_size: int = 8) -> tuple[int, int, int]:
    """(images, duplicates removed, steps per epoch) as the train cell printed them."""
    found = re.search(
        r"Training on ([\d,]+) images \(([\d,]+) duplicates removed\): ([\d,]+) steps per "
        rf"epoch of batch {batch_size}\n",
        text,
    )
    assert found, "no 'Training on N images (M duplicates removed): S steps' line"
    images, removed, steps = (int(g.replace(",", "")) for g in found.groups())
    assert steps == images // batch_size
    return images, removed, steps


def _data_mdb(workdir: Path, name: str) -> tuple[int, int]:
    stat = (workdir / "smoke_data" / name / "data.mdb").stat()
    return stat.st_size, stat.st_mtime_ns  # with the path: the de-duplication's source id


def test_lsun_notebooks_smoke_and_session_restart(tmp_path, monkeypatch):
    """The 1-epoch notebook from scratch (its first-N branch: the stand-in archive downloaded,
    an earlier session's truncated unzip found and redone, the subset written); then, as after a
    Colab restart (the VM's disk wiped, Drive kept), the 5-epoch notebook in the same place
    continues that run to epoch 5."""
    nb = _execute(LSUN_1, tmp_path, monkeypatch)
    text = _check_ran(LSUN_1, nb, tmp_path)
    assert TRUNCATED in text and EXTRACTED_AGAIN in text
    assert text.index(TRUNCATED) < text.index("Downloading file://") < text.index("Extracting")
    assert "Wrote the first 64 images" in text
    images, removed, steps = _training_line(text)
    assert images + removed == 64
    assert f"{LSUN_RUN}: step {steps}\n" in text  # one epoch: the steps printed
    assert _pictures(nb) == 4  # data, epoch 1, served, walk
    assert not (tmp_path / LSUN_RUN / "samples" / "epoch_0002.png").exists()
    subset = _data_mdb(tmp_path, "bedroom_first64_lmdb")

    shutil.rmtree(tmp_path / "smoke_data")  # the VM's disk; keras-dcgan/ stands for Drive
    nb = _execute(LSUN_5, tmp_path, monkeypatch)
    text = _check_ran(LSUN_5, nb, tmp_path)
    assert "Wrote the first" not in text  # the subset came back from "Drive"
    assert "Downloading" not in text and TRUNCATED not in text
    # The copy from Drive is the same file to the hash file (a resumed de-duplication).
    assert _data_mdb(tmp_path, "bedroom_first64_lmdb") == subset
    assert "Keep-list of an earlier session" in text
    assert _training_line(text) == (images, removed, steps)
    assert "Continuing from" in text and "epoch 2, batch 0" in text
    assert (tmp_path / LSUN_RUN / "samples" / "epoch_0005.png").exists()
    assert (tmp_path / "keras-dcgan/exports/bedrooms_paper64_first64_dedup/2").is_dir()
    assert _pictures(nb) == 5  # data, epochs 1 and 5, served, walk


def test_lsun_notebook_all_images_smoke(tmp_path, monkeypatch):
    """The 1-epoch notebook's all-images branch (MAX_IMAGES = None): the stand-in archive
    downloaded from its file:// URL and unzipped, after the truncated data.mdb of an earlier
    session's unzip is found (by check_lmdb), reported and deleted."""
    monkeypatch.setenv("DCGAN_NOTEBOOK_SMOKE_FULL", "1")
    nb = _execute(LSUN_1, tmp_path, monkeypatch)
    text = _check_ran(LSUN_1, nb, tmp_path, LSUN_FULL_FILES)
    assert TRUNCATED in text and EXTRACTED_AGAIN in text
    assert text.index(TRUNCATED) < text.index("Downloading file://") < text.index("Extracting")
    assert "Wrote the first" not in text
    assert f"{SMOKE_RECORDS} images in " in text  # all of them, no subset
    images, removed, steps = _training_line(text)
    assert images + removed == SMOKE_RECORDS
    assert f"keras-dcgan/runs/bedrooms_paper64_dedup: step {steps}\n" in text
    assert sorted(p.name for p in (tmp_path / "smoke_data").iterdir()) == ["bedroom_train_lmdb"]
    # Unzipped with the archive's file times: every session's copy is the same file to the
    # de-duplication's hash file.
    with zipfile.ZipFile(tmp_path / SMOKE_ARCHIVE) as archive:
        stamp = archive.getinfo("bedroom_train_lmdb/data.mdb").date_time
    mtime = (tmp_path / "smoke_data/bedroom_train_lmdb/data.mdb").stat().st_mtime
    assert time.localtime(mtime)[:6] == stamp


def test_own_images_notebook_smoke(tmp_path, monkeypatch):
    nb = _execute(OWN, tmp_path, monkeypatch)
    _check_ran(OWN, nb, tmp_path)
    assert _pictures(nb) == 6  # data, epochs 1 and 2, samples, walk, served


def test_analysis_notebook_smoke(tmp_path, monkeypatch):
    nb = _execute(ANALYSIS, tmp_path, monkeypatch)
    text = _check_ran(ANALYSIS, nb, tmp_path)
    # samples, linear and spherical walks, arithmetic, turn, guided backprop, maps dropped by
    # hand, the annotated boxes, maps dropped from the boxes
    assert _pictures(nb) == 9
    assert "linear: |z|" in text and "spherical: |z|" in text
    assert "trained D (step 20)" in text and "random-init D" in text
    figures = tmp_path / ANALYSIS_FIGURES
    report = json.loads((figures / "classify_digits.json").read_text())
    assert report["protocol"]["labels"] == 20 and report["protocol"]["repeats"] == 1
    assert report["C_grid"] == [0.01, 1.0]  # the smoke settings reached features.classify
    boxes = json.loads((figures / "boxes.json").read_text())
    assert [s["seed"] for s in boxes["samples"]] == [0, 1, 2, 3] and boxes["image_size"] == 32
    fit = json.loads((figures / "object_maps.json").read_text())
    assert fit["positives"] > 0 and fit["negatives"] > 0
    assert fit["channels"] == [i for i, w in enumerate(fit["weights"]) if w > 0]


def _pictures(nb) -> int:
    return sum("image/png" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))


def _files(root: Path) -> list[str]:
    return sorted(
        str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and "cache" not in p.parts
    )
