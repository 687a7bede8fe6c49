"""The `dcgan` command line, run as a user would (a fresh process per command)."""

import os
import subprocess
import sys

import pytest
from PIL import Image

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def dcgan(*args, cwd=None):
    path = os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=path)
    return subprocess.run(
        [sys.executable, "-m", "keras_dcgan.cli.main", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
    )


def test_train_then_sample(tmp_path):
    model_dir = str(tmp_path / "run")
    out = dcgan("train", "--preset=tiny", "--steps=2", f"--model_dir={model_dir}")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Trained 2 steps" in out.stdout
    png = str(tmp_path / "grid.png")
    out = dcgan("sample", f"--model_dir={model_dir}", "--seeds=1,2,3", f"--output={png}")
    assert out.returncode == 0, out.stderr[-2000:]
    assert Image.open(png).size == (2 * 34 + 2, 2 * 34 + 2)


@pytest.mark.parametrize(
    "args,message",
    [
        (["train", "--preset=paper65"], "paper65"),
        (["train", "--preset=tiny", "--image_size=48"], "image_size must be a power of two"),
        (["train", "--preset=tiny", "--dataset=nope"], "Unknown dataset 'nope'"),
        (["sample", "--model_dir=/nonexistent"], "no config.json"),
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
            "import sys, keras_dcgan.cli.train; print('tensorflow' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert out.stdout.strip() == "False", out.stderr[-2000:]
