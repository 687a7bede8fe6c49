"""The `dcgan` command line, run as a user would (a fresh process per command)."""

import os
import subprocess
import sys

import pytest
from PIL import Image

from tests.helpers import dcgan

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_train_then_sample(tmp_path):
    import json

    model_dir = str(tmp_path / "run")
    out = dcgan("train", "--preset=tiny", "--steps=2", "--augment=translation,cutout",
                "--r1_gamma=0.5", f"--model_dir={model_dir}")  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Trained 2 steps" in out.stdout
    with open(os.path.join(model_dir, "config.json")) as f:
        train_config = json.load(f)["train"]
    assert train_config["augment"] == "translation,cutout" and train_config["r1_gamma"] == 0.5
    png = str(tmp_path / "grid.png")
    out = dcgan("sample", f"--model_dir={model_dir}", "--seeds=1,2,3", f"--output={png}")
    assert out.returncode == 0, out.stderr[-2000:]
    assert Image.open(png).size == (2 * 34 + 2, 2 * 34 + 2)


def test_export_serve_and_sample_from_the_server(tmp_path):
    import re

    import numpy as np

    model_dir, base = str(tmp_path / "run"), str(tmp_path / "exports" / "dcgan")
    assert dcgan("train", "--preset=tiny", "--steps=2", f"--model_dir={model_dir}").returncode == 0
    out = dcgan("export", f"--model_dir={model_dir}", f"--export_base={base}")
    assert out.returncode == 0, out.stderr[-2000:]
    assert os.path.isfile(os.path.join(base, "1", "saved_model.pb"))
    path = os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")]))
    server = subprocess.Popen(
        [sys.executable, "-m", "keras_dcgan.cli.main", "serve", f"--model_base_path={base}",
         "--port=0", "--rest_api_port=-1"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=path),
    )  # fmt: skip
    try:
        line = server.stdout.readline()
        port = re.search(r"gRPC 127.0.0.1:(\d+)", line).group(1)
        served, local = str(tmp_path / "served.png"), str(tmp_path / "local.png")
        out = dcgan("sample", f"--server=127.0.0.1:{port}", "--seeds=1,2,3", f"--output={served}")
        assert out.returncode == 0, out.stderr[-2000:]
        out = dcgan("sample", f"--model_dir={model_dir}", "--seeds=1,2,3", f"--output={local}")
        assert out.returncode == 0, out.stderr[-2000:]
        np.testing.assert_array_equal(np.asarray(Image.open(served)), np.asarray(Image.open(local)))
    finally:
        server.terminate()
        server.wait(10)


def test_eval_digits_score_and_missing_inception_weights(tmp_path, monkeypatch):
    import json

    model_dir = str(tmp_path / "run")
    assert dcgan("train", "--preset=tiny", "--steps=2", f"--model_dir={model_dir}").returncode == 0
    out = dcgan("eval", f"--model_dir={model_dir}", "--metrics=digits")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "digits_frechet_distance:" in out.stdout
    record = json.loads(open(os.path.join(model_dir, "quality.jsonl")).readlines()[-1])
    assert record["step"] == 2 and "digits_confident_share" in record
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))  # no weights there
    out = dcgan("eval", f"--model_dir={model_dir}", "--metrics=fid1k")
    assert out.returncode == 1 and "weights are not in the Keras cache" in out.stderr


def test_train_on_a_folder_of_images(tmp_path):
    from keras_dcgan.config import Config
    from keras_dcgan.data import synthetic
    from tests.helpers import write_messy_folder

    folder = write_messy_folder(str(tmp_path / "images"), synthetic.photo_like_images(22, 40))
    model_dir = str(tmp_path / "run")
    out = dcgan(
        "train", "--preset=tiny", f"--dataset={folder}", "--channels=1", "--batch_size=4",
        "--holdout_fraction=0.2", "--steps=2", f"--model_dir={model_dir}",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Trained 2 steps" in out.stdout
    config = Config.from_json(open(os.path.join(model_dir, "config.json")).read())
    assert config.dataset == folder and config.model.channels == 1
    assert config.data.holdout_fraction == 0.2


def test_dedup_writes_a_keep_list_without_the_copies(tmp_path):
    import json
    import shutil

    from keras_dcgan.data import synthetic

    folder = tmp_path / "images"
    synthetic.write_image_folder(str(folder), synthetic.photo_like_images(30, 48, seed=1))
    for i in (3, 7):  # byte-identical copies always collide
        shutil.copy(folder / f"img_{i:05d}.jpg", folder / f"copy_of_{i}.jpg")
    keep, groups = tmp_path / "keep.txt", tmp_path / "groups.json"
    out = dcgan("dedup", f"--dataset={folder}", f"--output={keep}", f"--groups={groups}")
    assert out.returncode == 0, out.stderr[-2000:]
    kept = keep.read_text().split()
    for i in (3, 7):  # the first of each group (in listing order) is kept, the other dropped
        assert f"copy_of_{i}.jpg" in kept and f"img_{i:05d}.jpg" not in kept
    assert len(kept) <= 30
    found = json.loads(groups.read_text())["groups"]
    for i in (3, 7):
        assert any({f"copy_of_{i}.jpg", f"img_{i:05d}.jpg"} <= set(g) for g in found)
    assert "32 images" in out.stdout and f"to {keep}" in out.stdout


@pytest.mark.parametrize(
    "args,message",
    [
        (["train", "--preset=paper65"], "paper65"),
        (["train", "--preset=tiny", "--image_size=48"], "image_size must be a power of two"),
        (["train", "--preset=tiny", "--dataset=nope"], "Unknown dataset 'nope'"),
        (["train", "--preset=tiny", "--dataset={tmp}/no/such/dir"], "does not exist"),
        (["train", "--preset=tiny", "--holdout_fraction=1.5"], "holdout_fraction must be in"),
        (["train", "--preset=tiny", "--augment=color"], "Unknown augmentation 'color'"),
        (["train", "--preset=tiny", "--r1_gamma=-1"], "r1_gamma must be a finite number >= 0"),
        (["sample", "--model_dir=/nonexistent"], "no config.json"),
        (["dedup", "--dataset={tmp}"], "has no input"),
        (["export", "--model_dir={tmp}/none"], "no config.json"),
        (["eval", "--model_dir={tmp}/none", "--metrics=fid2x"], "Unknown metric 'fid2x'"),
        (["sample", "--server=127.0.0.1:1", "--wait=0.5"], "not AVAILABLE after 0.5s"),
        (["sample", "--seeds=a,b"], "--seeds must be integers"),
        (["frobnicate"], "unknown command 'frobnicate'"),
    ],
)
def test_bad_input_is_one_line_naming_the_problem(tmp_path, args, message):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    out = dcgan(*args, cwd=tmp_path)
    assert out.returncode != 0
    lines = [line for line in out.stderr.splitlines() if message in line]
    assert lines, out.stderr[-2000:]


def test_help_lists_commands_without_loading_tensorflow():
    out = dcgan("--help")
    assert out.returncode == 0 and "train" in out.stdout and "sample" in out.stdout
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            # Building and validating a config (the package docstring's promise) needs no TF.
            "import sys, keras_dcgan.cli.train; from keras_dcgan.config import get_config; "
            "get_config('paper64', r1_gamma=0.5); print('tensorflow' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert out.stdout.strip() == "False", out.stderr[-2000:]
