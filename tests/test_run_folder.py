"""Run folders under faults: the lock, checkpoint rotation and leftovers, metrics.csv across
continuations and kills, batch-size changes, odd file names, failed starts, bad paths."""

import csv
import errno
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest
import tensorflow as tf

from keras_dcgan.paths import PathError
from keras_dcgan.testing import synthetic
from keras_dcgan.training import load_trained, train
from keras_dcgan.training.checkpoints import (
    ConfigFileError,
    RunCheckpointer,
    RunFolder,
    RunFolderBusy,
    checkpoint_files,
    make_checkpoint,
    read_skipped,
    write_config,
)
from tests.helpers import (
    REPO,
    batches,
    dcgan,
    dcgan_env,
    random_images,
    tiny_config,
    tiny_gan,
    write_run_folder,
)


def _config(**overrides):
    """tiny, for a dataset passed to train() (not "digits": no digits score at the end)."""
    return tiny_config(dataset="in-memory", **overrides)


def _steps(model_dir):
    return [int(p.rsplit("-", 1)[1]) for p in checkpoint_files(f"{model_dir}/checkpoints")]


def _rows(model_dir):
    with open(os.path.join(model_dir, "metrics.csv"), newline="") as f:
        return list(csv.DictReader(f))


def _same_rows(a, b):
    assert [r.keys() for r in a] == [r.keys() for r in b]
    for x, y in zip(a, b, strict=True):
        for key in ("epoch", "step", "batches", "skipped_inputs"):
            assert x.get(key) == y.get(key), (key, x, y)
        for key in ("d_loss", "g_loss", "d_real", "d_fake"):
            np.testing.assert_allclose(float(x[key]), float(y[key]), rtol=1e-4, err_msg=key)


def _one_line_error(out, message):
    assert out.returncode == 1, out.stdout[-2000:] + out.stderr[-2000:]
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    lines = [line for line in out.stderr.splitlines() if message in line]
    assert len(lines) == 1 and lines[0].startswith("dcgan "), out.stderr[-2000:]


# ------------------------------------------------------------------------------------ the lock
def test_a_second_training_is_refused_naming_the_holder_and_a_killed_holder_frees_it(tmp_path):
    model_dir = str(tmp_path / "run")
    data = batches(random_images(16, seed=1), 8)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from keras_dcgan.training.checkpoints import RunFolder; "
         "RunFolder(sys.argv[1]).__enter__(); print('locked', flush=True); time.sleep(600)",
         model_dir],
        stdout=subprocess.PIPE, text=True, env=dcgan_env(),
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunFolderBusy, match=f"in use by another training process \\(pid "
                                                f"{holder.pid} on "):  # fmt: skip
            train(_config(steps=1), model_dir, dataset=data, verbose=0)
        assert sorted(os.listdir(model_dir)) == ["run.lock"]  # the refused run wrote nothing
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(30)
    # The kernel dropped the killed holder's lock: nothing stuck.
    assert train(_config(steps=1), model_dir, dataset=data, verbose=0).steps == 1
    info = json.load(open(os.path.join(model_dir, "run.lock")))
    assert info["pid"] == os.getpid() and "host" in info and "started" in info


@pytest.mark.slow
def test_two_dcgan_train_on_one_folder_and_a_sigkill(tmp_path):
    """End to end: a second `dcgan train` on a folder in training is one line and exit 1; the
    first, killed with SIGKILL, leaves nothing stuck: the next one continues."""
    model_dir = str(tmp_path / "run")
    args = ["train", "--preset=tiny", "--steps=100000", "--checkpoint_every_steps=5",
            f"--model_dir={model_dir}"]  # fmt: skip
    first = subprocess.Popen([sys.executable, "-m", "keras_dcgan.cli.main", *args],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                             env=dcgan_env())  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while not [s for s in _steps(model_dir) if s >= 5]:
            assert first.poll() is None and time.monotonic() < deadline, first.stderr.read()
            time.sleep(0.1)
        out = dcgan("train", "--preset=tiny", "--steps=6", f"--model_dir={model_dir}")
        _one_line_error(out, f"in use by another training process (pid {first.pid}")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(30)
    out = dcgan("train", "--preset=tiny", "--steps=6", f"--model_dir={model_dir}")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Continuing from" in out.stdout


def test_a_file_system_without_locks_trains_with_a_warning(tmp_path, monkeypatch, capsys):
    import fcntl

    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    with RunFolder(str(tmp_path / "run")):
        pass
    assert "cannot lock" in capsys.readouterr().out


# ---------------------------------------------------------------------------------- rotation
def test_rotation_survives_a_rebuilt_state_file_and_killed_writes_are_cleaned_up(tmp_path):
    model_dir = str(tmp_path / "run")
    data = batches(random_images(64, seed=4), 8)
    train(_config(steps=6, checkpoint_every_steps=2), model_dir, dataset=data, verbose=0)
    assert _steps(model_dir) == [2, 4, 6]
    folder = os.path.join(model_dir, "checkpoints")
    os.remove(os.path.join(folder, "checkpoint"))  # the state file: deleted, then damaged
    # What a SIGKILL during a write leaves: a .data file without its .index, TF's temp folder.
    for name in ("ckpt-7.data-00000-of-00001", "ckpt-1.data-00000-of-00001"):
        with open(os.path.join(folder, name), "wb") as f:
            f.write(b"\0" * 1000)
    os.makedirs(os.path.join(folder, "ckpt-9_temp"))
    open(os.path.join(folder, "ckpt-9_temp", "part-00000-of-00001.data.tempstate1"), "w").close()
    train(_config(steps=10, checkpoint_every_steps=2), model_dir, dataset=data, verbose=0)
    assert _steps(model_dir) == [6, 8, 10]
    leftovers = [n for n in os.listdir(folder) if not n.startswith(("ckpt-6.", "ckpt-8.",
                                                                     "ckpt-10."))]  # fmt: skip
    assert leftovers == ["checkpoint"]
    assert tf.train.latest_checkpoint(folder).endswith("ckpt-10")
    with open(os.path.join(folder, "checkpoint"), "w") as f:
        f.write("model_checkpoint_path: <garbage")
    train(_config(steps=14, checkpoint_every_steps=2), model_dir, dataset=data, verbose=0)
    assert _steps(model_dir) == [10, 12, 14]


# ------------------------------------------------------------------------------- full disks
def test_a_failed_checkpoint_write_is_one_error_and_keeps_the_earlier_ones(tmp_path, monkeypatch):
    model_dir = str(tmp_path / "run")
    data = batches(random_images(64, seed=4), 8)
    train(_config(steps=4, checkpoint_every_steps=2), model_dir, dataset=data, verbose=0)
    assert _steps(model_dir) == [0, 2, 4]
    write = tf.train.Checkpoint.write

    def full_disk(self, prefix, *args, **kwargs):
        if prefix.endswith("ckpt-6"):  # what TF leaves and raises on ENOSPC (checked on tmpfs)
            os.makedirs(f"{prefix}_temp")
            open(f"{prefix}_temp/part-00000-of-00001.data-00000-of-00001.tempstate9", "w").close()
            raise tf.errors.ResourceExhaustedError(
                None, None, f"{prefix}_temp/part...tempstate9; No space left on device"
            )
        return write(self, prefix, *args, **kwargs)

    monkeypatch.setattr(tf.train.Checkpoint, "write", full_disk)
    with pytest.raises(PathError) as info:
        train(_config(steps=8, checkpoint_every_steps=2), model_dir, dataset=data, verbose=0)
    message = str(info.value)
    assert "Could not write checkpoint" in message and "ckpt-6: No space left on device" in message
    assert "The earlier checkpoints are intact (newest: ckpt-4)" in message
    assert len(message.splitlines()) == 1
    assert _steps(model_dir) == [0, 2, 4]
    assert not glob.glob(f"{model_dir}/checkpoints/ckpt-6*")  # nothing half-written left
    monkeypatch.undo()
    config = _config(steps=8, checkpoint_every_steps=2)
    assert train(config, model_dir, dataset=data, verbose=0).steps == 8


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare (a private tmpfs)")
def test_a_really_full_disk_while_checkpointing(tmp_path):
    """A 3 MB tmpfs in a private mount namespace: train, fill the disk, continue (one line,
    exit 1, the checkpoints intact), free it, continue."""
    mount = str(tmp_path / "disk")
    os.makedirs(mount)
    train_cmd = (f"{sys.executable} -m keras_dcgan.cli.main train --preset=tiny "
                 f"--checkpoint_every_steps=1 --num_preview=4 --model_dir={mount}/run")  # fmt: skip
    script = f"""
mount -t tmpfs -o size=3m tmpfs {mount} || exit 99
{train_cmd} --steps=2 > {tmp_path}/1.out 2>&1; echo $? > {tmp_path}/1.rc
dd if=/dev/zero of={mount}/filler bs=4096 2>/dev/null; truncate -s -65536 {mount}/filler
{train_cmd} --steps=4 > {tmp_path}/2.out 2> {tmp_path}/2.err; echo $? > {tmp_path}/2.rc
ls {mount}/run/checkpoints > {tmp_path}/2.ls
rm {mount}/filler
{train_cmd} --steps=4 > {tmp_path}/3.out 2>&1; echo $? > {tmp_path}/3.rc
ls {mount}/run/checkpoints > {tmp_path}/3.ls
"""
    run = subprocess.run(["unshare", "-rm", "sh", "-c", script], env=dcgan_env(), timeout=600)
    if run.returncode == 99 or not os.path.exists(tmp_path / "1.rc"):
        pytest.skip("cannot mount a tmpfs in a user namespace here")
    read = lambda name: open(tmp_path / name).read()  # noqa: E731
    assert read("1.rc").strip() == "0", read("1.out")[-2000:]
    assert read("2.rc").strip() == "1", read("2.err")[-2000:]
    errors = [line for line in read("2.err").splitlines() if line.startswith("dcgan train: error")]
    assert len(errors) == 1 and "No space left on device" in errors[0], read("2.err")[-2000:]
    assert "The earlier checkpoints are intact (newest: ckpt-2)" in errors[0]
    assert "Traceback" not in read("2.err")
    assert read("2.ls").split() == ["checkpoint"] + [
        f"ckpt-{s}.{k}" for s in (0, 1, 2) for k in ("data-00000-of-00001", "index")
    ]
    assert read("3.rc").strip() == "0", read("3.out")[-2000:]
    assert "Continuing from" in read("3.out") and "ckpt-4.index" in read("3.ls").split()


# --------------------------------------------------------------------------------- metrics
def test_metrics_csv_has_one_row_per_epoch_across_continuations(tmp_path):
    """4 batches per epoch; 10 steps straight, or 6 (stopped mid-epoch 2) then continued to 10:
    the same rows (epoch, step, batches, the epoch means), the partial row replaced."""
    data = batches(random_images(32, seed=3), 8)
    straight, stopped = str(tmp_path / "a"), str(tmp_path / "b")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(_config(steps=10), straight, dataset=data, verbose=0)
        tiny_gan().fit(data, epochs=1, verbose=0)
    assert not [w for w in caught if "shuffle" in str(w.message)]  # Keras' shuffle warning
    rows = _rows(straight)
    assert [(r["epoch"], r["step"], r["batches"]) for r in rows] == [
        ("1", "4", "4"), ("2", "8", "4"), ("3", "10", "2"),
    ]  # fmt: skip
    assert list(rows[0])[:3] == ["epoch", "step", "batches"]
    train(_config(steps=6), stopped, dataset=data, verbose=0)
    partial = _rows(stopped)
    assert [(r["epoch"], r["step"], r["batches"]) for r in partial] == [
        ("1", "4", "4"), ("2", "6", "2"),
    ]  # fmt: skip
    train(_config(steps=10), stopped, dataset=data, verbose=0)
    _same_rows(_rows(stopped), rows)  # no second "epoch 2" row; the means of the whole epoch


class _Killed(BaseException):
    """Stands for a SIGKILL: nothing after it runs."""


def test_a_kill_between_the_epoch_loggers_and_its_checkpoint_loses_no_row_or_grid(
    tmp_path, monkeypatch
):
    data = batches(random_images(32, seed=3), 8)
    config = _config(epochs=3, checkpoint_every_steps=3)
    straight, killed = str(tmp_path / "a"), str(tmp_path / "b")
    train(config, straight, dataset=data, verbose=0)
    save = RunCheckpointer.save

    def killed_at_the_end_of_epoch_2(self, epoch, batch):
        if (epoch, batch) == (2, 0):
            raise _Killed
        return save(self, epoch, batch)

    monkeypatch.setattr(RunCheckpointer, "save", killed_at_the_end_of_epoch_2)
    with pytest.raises(_Killed):
        train(config, killed, dataset=data, verbose=0)
    # The row and the grid of epoch 2 were on disk before its checkpoint.
    assert [r["epoch"] for r in _rows(killed)] == ["1", "2"]
    assert os.path.exists(os.path.join(killed, "samples", "epoch_0002.png"))
    monkeypatch.undo()
    assert max(_steps(killed)) == 6  # the last checkpoint: mid-epoch 2 (every 3 steps)
    train(config, killed, dataset=data, verbose=0)  # replays the end of epoch 2
    _same_rows(_rows(killed), _rows(straight))
    assert sorted(os.listdir(os.path.join(killed, "samples"))) == [
        "epoch_0001.png", "epoch_0002.png", "epoch_0003.png",
    ]  # fmt: skip


# ------------------------------------------------------------------------------- batch size
def test_continuing_mid_epoch_with_another_batch_size_is_refused(tmp_path):
    model_dir = str(tmp_path / "run")
    train(tiny_config(steps=3, batch_size=8), model_dir, verbose=0)  # digits: mid-epoch 1
    config_before = open(os.path.join(model_dir, "config.json")).read()
    files_before = sorted(os.listdir(model_dir))
    refused = (
        r"stopped in the middle of epoch 1, after 3 batches of 8; continue it with batch_size=8"
    )
    with pytest.raises(ValueError, match=refused):
        train(tiny_config(steps=5, batch_size=16), model_dir, verbose=0)
    assert open(os.path.join(model_dir, "config.json")).read() == config_before  # rolled back
    assert sorted(os.listdir(model_dir)) == files_before
    assert train(tiny_config(steps=5, batch_size=8), model_dir, verbose=0).steps == 5
    # At an epoch boundary the batch size may change.
    other = str(tmp_path / "boundary")
    images = random_images(16, seed=2)
    train(
        _config(epochs=1, batch_size=8),
        other,
        dataset=batches(images, 8),
        verbose=0,
    )
    config = _config(epochs=2, batch_size=4)
    result = train(config, other, dataset=batches(images, 4), verbose=0)
    assert result.steps == 2 + 4


def test_checkpoints_written_before_the_run_state_still_restore(tmp_path):
    """A checkpoint of the previous layout (CheckpointManager, no batch size or metric sums): it
    restores, and its batch size comes from config.json."""
    model_dir = str(tmp_path / "run")
    gan = tiny_gan(seed=1)
    write_config(tiny_config(batch_size=8), model_dir)
    gan.g_optimizer.iterations.assign(5)
    state = dict(
        epoch=tf.Variable(0, dtype=tf.int64),
        batch_in_epoch=tf.Variable(5, dtype=tf.int64),
        preview_seeds=tf.Variable(np.arange(16, dtype=np.int64)),
    )
    # As they were: G's and D's variables by position too (by_name=False).
    manager = tf.train.CheckpointManager(make_checkpoint(gan, by_name=False, **state),
                                         os.path.join(model_dir, "checkpoints"), 3)  # fmt: skip
    manager.save(checkpoint_number=5)
    with pytest.raises(ValueError, match="after 5 batches of 8"):
        train(tiny_config(steps=7, batch_size=16), model_dir, verbose=0)
    assert train(tiny_config(steps=7, batch_size=8), model_dir, verbose=0).steps == 7
    _, loaded = load_trained(model_dir)
    assert int(loaded.g_optimizer.iterations) == 7


# ----------------------------------------------------------------------------- odd file names
def test_file_names_with_newlines_and_tabs_keep_exact_resume(tmp_path):
    folder = str(tmp_path / "images")
    photos = synthetic.photo_like_images(22, 40)
    synthetic.write_image_folder(folder, photos[:20])
    with open(os.path.join(folder, "new\nline.jpg"), "wb") as f:
        f.write(synthetic.encode(photos[20]))
    with open(os.path.join(folder, "tab\tand\\backslash.jpg"), "wb") as f:
        f.write(synthetic.encode(photos[21]))
    with open(os.path.join(folder, "bad\nname.txt"), "w") as f:
        f.write("not an image")
    open(os.path.join(folder, "empty\r\n.png"), "wb").close()
    config = tiny_config(dataset=folder, batch_size=7, steps=11, checkpoint_every_steps=2)
    straight = train(config, str(tmp_path / "a"), verbose=0)
    part = str(tmp_path / "b")
    train(tiny_config(dataset=folder, batch_size=7, steps=4), part, verbose=0)
    lines = open(os.path.join(part, "skipped_inputs.tsv"), newline="").read().split("\n")
    assert lines == [
        "id\treason",
        "bad\\nname.txt\tnot an image",
        "empty\\r\\n.png\tempty file",
        "",
    ]
    from keras_dcgan.data import SkipLog

    log = SkipLog()
    read_skipped(log, part)
    assert log.items() == {"bad\nname.txt": "not an image", "empty\r\n.png": "empty file"}
    resumed = train(config, part, verbose=0)
    assert resumed.steps == straight.steps == 11
    for a, b in zip(straight.gan.generator.variables + straight.gan.discriminator.variables,
                    resumed.gan.generator.variables + resumed.gan.discriminator.variables,
                    strict=True):  # fmt: skip
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------ failed starts
def test_a_failed_start_leaves_the_folder_as_it_found_it(tmp_path):
    fresh = str(tmp_path / "fresh")
    with pytest.raises(ValueError, match="Unknown dataset 'nope'"):
        train(tiny_config(dataset="nope"), fresh, verbose=0)
    assert not os.path.exists(fresh)  # no config.json left to refuse the retry
    assert train(tiny_config(steps=1, base_width=16), fresh, verbose=0).steps == 1
    existing = str(tmp_path / "existing")
    train(tiny_config(steps=1), existing, verbose=0)
    before = {p: open(p, "rb").read() for p in glob.glob(f"{existing}/**", recursive=True)
              if os.path.isfile(p)}  # fmt: skip
    with pytest.raises(ValueError, match="does not exist"):
        train(tiny_config(steps=2, dataset=str(tmp_path / "missing/folder")), existing, verbose=0)
    after = {p: open(p, "rb").read() for p in glob.glob(f"{existing}/**", recursive=True)
             if os.path.isfile(p)}  # fmt: skip
    assert after.keys() == before.keys()
    assert all(after[p] == before[p] for p in after if not p.endswith("run.lock"))


def test_a_start_killed_before_its_first_step_does_not_bind_the_folder(tmp_path, capsys):
    model_dir = write_run_folder(str(tmp_path / "run"), tiny_gan(seed=2), tiny_config())  # step 0
    result = train(tiny_config(steps=1, base_width=16), model_dir, verbose=0)
    assert result.steps == 1 and "holds only the untrained start" in capsys.readouterr().out
    with pytest.raises(ValueError, match="different model"):  # now it holds a trained step
        train(tiny_config(steps=2), model_dir, verbose=0)


# ------------------------------------------------------------------------------- bad paths
@pytest.mark.parametrize("kind", ["a file", "inside a file"])
def test_output_paths_that_are_files_are_one_line_errors(tmp_path, kind):
    from keras_dcgan.images import save_grid
    from keras_dcgan.serving.export import export_generator

    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    path = str(blocker) if kind == "a file" else str(blocker / "sub")
    expected = "is a file, not a folder"
    with pytest.raises(PathError, match=expected):
        train(tiny_config(steps=1), path, verbose=0)
    with pytest.raises(PathError, match=expected):
        export_generator(tiny_gan(), path)
    with pytest.raises(PathError, match=expected):
        save_grid(random_images(1), os.path.join(path, "grid.png"))
    with pytest.raises(PathError, match="is a folder"):
        save_grid(random_images(1), str(tmp_path))
    assert blocker.read_text() == "x"


def test_a_damaged_config_json_is_named(tmp_path):
    model_dir = write_run_folder(str(tmp_path / "run"), tiny_gan(), tiny_config())
    path = os.path.join(model_dir, "config.json")
    for damage in ('{"preset": "tiny", "mod', '{"preset": "tiny"}', "[1, 2]", '{"x": 1}',
                   '\x00\xff\xfe'):  # fmt: skip
        with open(path, "w", encoding="latin-1") as f:
            f.write(damage)
        with pytest.raises(ConfigFileError, match=f"{path} is damaged"):
            load_trained(model_dir)
        with pytest.raises(ConfigFileError, match=f"{path} is damaged"):
            train(tiny_config(steps=1), model_dir, verbose=0)
    out = dcgan("train", "--preset=tiny", "--steps=1", f"--model_dir={model_dir}")
    _one_line_error(out, f"{path} is damaged")


def _read_only_prefix(path):
    """A command prefix that runs a command with `path` read-only (a read-only bind mount in a
    private mount namespace when running as root, where permission bits do not stop writes)."""
    if os.geteuid() != 0:
        os.chmod(path, 0o555)
        return []
    if shutil.which("unshare") is None:
        pytest.skip("running as root without unshare: cannot make a read-only folder")
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("unshare is not permitted here")
    script = 'mount --bind "$0" "$0" && mount -o remount,ro,bind "$0" "$0" && exec "$@"'
    return ["unshare", "-rm", "sh", "-c", script, path]


def test_read_only_model_dir_output_and_export_base_are_one_line_errors(tmp_path):
    """With the folder read-only (a read-only bind mount when running as root), what `dcgan
    train`, `dcgan sample --output` and `dcgan export --export_base` call raises PathError, one
    line naming the path and the cause (the commands print it as "dcgan <command>: error: ...",
    as test_a_damaged_config_json_is_named checks for this error class)."""
    run = write_run_folder(str(tmp_path / "ro" / "run"), tiny_gan(), tiny_config())
    prefix = _read_only_prefix(str(tmp_path / "ro"))
    driver = f"""
import json
from keras_dcgan.training import export_run
from keras_dcgan.images import save_grid
from keras_dcgan.paths import PathError
from keras_dcgan.training import load_trained, train
from tests.helpers import tiny_config
calls = {{
    "train": lambda: train(tiny_config(steps=1), {run!r}, verbose=0),
    "sample": lambda: save_grid(load_trained({run!r})[1].sample(seeds=[1]).numpy(),
                                {str(tmp_path / "ro" / "grid.png")!r}),
    "export": lambda: export_run({run!r}, {str(tmp_path / "ro" / "exports")!r}),
}}
results = {{}}
for name, call in calls.items():
    try:
        call()
        results[name] = "no error"
    except PathError as e:
        results[name] = str(e)
print(json.dumps(results))
"""
    out = subprocess.run([*prefix, sys.executable, "-c", driver], capture_output=True, text=True,
                         env=dcgan_env(), timeout=600, cwd=REPO)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    results = json.loads(out.stdout.splitlines()[-1])
    expected = {
        "train": f"The run folder (--model_dir) {run} is not writable",
        "sample": f"Could not write {tmp_path / 'ro' / 'grid.png'}",
        "export": f"The export base (--export_base) {tmp_path / 'ro' / 'exports'} cannot be",
    }
    for name, start in expected.items():
        assert results[name].startswith(start), results
        assert len(results[name].splitlines()) == 1
        assert "Read-only file system" in results[name] or "Permission denied" in results[name]
    assert sorted(os.listdir(run)) == ["checkpoints", "config.json"]


def test_write_json_is_atomic_readable_and_names_a_bad_path(tmp_path):
    import stat

    from keras_dcgan.paths import write_json

    target = tmp_path / "a" / "b.json"
    write_json({"x": [1, 2]}, target)
    assert json.loads(target.read_text()) == {"x": [1, 2]}
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o644
    with pytest.raises(TypeError):  # not JSON: the old file stays, no temporary file is left
        write_json({"x": object()}, target)
    assert json.loads(target.read_text()) == {"x": [1, 2]}
    assert os.listdir(target.parent) == ["b.json"]
    (tmp_path / "file").write_text("")
    with pytest.raises(PathError, match=r"Could not write .*x\.json"):
        write_json({}, tmp_path / "file" / "x.json")
