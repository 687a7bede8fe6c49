"""The `dcgan` command line, run as a user would (a fresh process per command)."""

import os
import subprocess
import sys

import pytest
from PIL import Image

from tests.helpers import REPO, dcgan, dcgan_env


def test_train_then_sample(tmp_path):
    import json

    model_dir = str(tmp_path / "run")
    out = dcgan("train", "--preset=tiny", "--steps=2", "--augment=translation,cutout",
                "--r1_gamma=0.5", f"--model_dir={model_dir}")  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Trained 2 steps" in out.stdout
    with open(os.path.join(model_dir, "config.json")) as f:
        model_config = json.load(f)["model"]
    assert model_config["augment"] == "translation,cutout" and model_config["r1_gamma"] == 0.5
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
    server = subprocess.Popen(
        [sys.executable, "-m", "keras_dcgan.cli.main", "serve", f"--model_base_path={base}",
         "--port=0", "--rest_api_port=-1"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env=dcgan_env(),
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
    out = dcgan("eval", f"--model_dir={model_dir}", "--metrics=fid1k",
                "--fid_network=keras_inception_v3")  # fmt: skip
    assert out.returncode == 1 and "weights are not in the Keras cache" in out.stderr
    out = dcgan("eval", f"--model_dir={model_dir}", "--metrics=fid1k")  # the reference graph
    assert out.returncode == 1 and "graph is not in the Keras cache" in out.stderr
    assert "dcgan fetch_inception" in out.stderr


def test_train_on_a_folder_of_images(tmp_path):
    from keras_dcgan.config import Config
    from keras_dcgan.testing import synthetic
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

    from keras_dcgan.testing import synthetic

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
        (["fetch_inception", "--path={tmp}/none.pb"], "does not exist"),
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
    assert "Traceback" not in out.stderr, out.stderr[-2000:]


@pytest.mark.parametrize(
    "command,flags",
    [
        ("train", ["--preset", "--learning_rate", "--sync_batch_norm", "--small_images"]),
        ("sample", ["--seeds", "--server"]),
        ("dedup", ["--max_hamming", "--data_dir"]),
        ("eval", ["--metrics", "--fid_network", "--inception_weights"]),
        ("fetch_inception", ["--path"]),
        ("export", ["--export_base"]),
        ("serve", ["--rest_api_port"]),
        ("interpolate", ["--method"]),
        ("arithmetic", ["--num_neighbours", "--classifier", "--pixel_baseline"]),
        ("attributes", ["--limit", "--data_dir", "--output"]),
        ("classify", ["--protocol"]),
        ("visualize", ["--features"]),
        ("ablate", ["--boxes", "--layer"]),
        ("neighbours", ["--k", "--num_images", "--space", "--save"]),
    ],
)
def test_command_help_lists_the_commands_own_flags(command, flags):
    out = dcgan(command, "--help")
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith(f"usage: dcgan {command}")
    for flag in flags:
        assert f"  {flag}:" in out.stdout or f"  --[no]{flag[2:]}:" in out.stdout, flag
    assert "--helpfull" in out.stdout and "--log_dir" not in out.stdout  # not absl's own flags


def test_every_config_field_is_a_train_flag_that_reaches_the_config(tmp_path):
    import dataclasses
    import json

    from keras_dcgan import config as config_lib

    out = subprocess.run(
        [sys.executable, "-c", "import json, keras_dcgan.cli.train as t; "
         "print(json.dumps(sorted(t._CONFIG_FLAGS)))"],
        capture_output=True, text=True, cwd=REPO, timeout=60,
    )  # fmt: skip
    fields = {
        f.name
        for cls in (config_lib.ModelConfig, config_lib.TrainConfig, config_lib.DataConfig)
        for f in dataclasses.fields(cls)
    }
    assert set(json.loads(out.stdout)) == fields
    model_dir = str(tmp_path / "run")
    out = dcgan("train", "--preset=tiny", "--steps=1", "--learning_rate=1e-4", "--beta_1=0.9",
                "--z_dim=8", "--nobatch_norm", "--small_images=skip", "--eval_every_epochs=2",
                "--d_batch=concatenated", "--projection_bn=feature", "--d_leaky_slope=0",
                f"--model_dir={model_dir}")  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    saved = json.load(open(os.path.join(model_dir, "config.json")))
    assert saved["train"]["learning_rate"] == 1e-4 and saved["train"]["beta_1"] == 0.9
    assert saved["model"]["z_dim"] == 8 and saved["model"]["batch_norm"] is False
    assert saved["data"]["small_images"] == "skip" and saved["train"]["eval_every_epochs"] == 2
    assert saved["model"]["base_width"] == 8  # unset flags keep the preset's value
    assert (saved["model"]["d_batch"], saved["model"]["projection_bn"]) == (
        "concatenated", "feature")  # fmt: skip
    assert saved["model"]["d_leaky_slope"] == 0.0


def test_a_bug_keeps_its_traceback_and_a_user_error_is_one_line(tmp_path):
    script = (
        "import sys, keras_dcgan.training as t\n"
        "def boom(*a, **k): raise KeyError('internal')\n"
        "t.train = boom\n"
        "from keras_dcgan.cli.main import run\n"
        "run(['dcgan', 'train', '--preset=tiny', '--model_dir=' + sys.argv[1]])\n"
    )
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path / "run")],
                         capture_output=True, text=True, cwd=REPO, timeout=120)  # fmt: skip
    assert out.returncode == 1
    assert "Traceback" in out.stderr and "KeyError: 'internal'" in out.stderr
    out = dcgan("sample", "--num=0")
    assert out.returncode == 1
    assert out.stderr.strip() == "dcgan sample: error: --num must be positive; got 0."  # no TF
    out = dcgan("sample", "stray")
    assert out.returncode == 1 and "unexpected arguments ['stray']" in out.stderr


def test_help_lists_commands_without_loading_tensorflow():
    out = dcgan("--help")
    assert out.returncode == 0 and "train" in out.stdout and "sample" in out.stdout
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            # Building and validating a config (the package docstring's promise) needs no TF.
            "import sys, keras_dcgan.cli.train; from keras_dcgan.cli.main import command_help; "
            "from keras_dcgan.config import get_config; command_help('train'); "
            "get_config('paper64', r1_gamma=0.5); print('tensorflow' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert out.stdout.strip() == "False", out.stderr[-2000:]
