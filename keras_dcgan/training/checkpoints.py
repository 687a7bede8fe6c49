"""Run folders: their lock, their checkpoints, and the files written with them.

A checkpoint holds G's and D's variables (BatchNorm statistics included), both optimizers, the
noise SeedGenerator state, the fixed preview seeds, the data position (the epoch and the number
of batches of it already consumed), the batch size that position counts in, and the running
sums of the epoch's metrics (so that a resumed epoch's metrics.csv row covers the whole epoch).
It is named by the iteration count (`ckpt-<step>`). TF writes the data file first and the index
last, so a checkpoint exists once its `.index` does: a process killed while saving leaves the
previous checkpoints intact, and `RunCheckpointer.restore` falls back to the previous checkpoint
(with a warning) when the latest is unreadable.

Rotation and the list of checkpoints are taken from the files, never from TF's `checkpoint`
state file (which is rewritten after every save for TF's tools, but may be damaged, deleted or
stale after a kill): the newest `keep` are kept, whatever the state file says. Files of a
checkpoint whose write was killed (a `.data` file without its `.index`, TF's `*_temp` folders)
are deleted when the next run starts.

One training process at a time writes a run folder: `RunFolder` holds an exclusive lock on
`<model_dir>/run.lock` (flock: the kernel releases it when the holder dies, however it dies), and
undoes what a run that fails before its first training step wrote.
"""

from __future__ import annotations

import datetime
import errno
import glob
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import sys

import keras
import numpy as np
import tensorflow as tf

from keras_dcgan.config import Config
from keras_dcgan.errors import UserError
from keras_dcgan.models import DCGAN
from keras_dcgan.paths import PathError, ensure_folder, reason, write_failure
from keras_dcgan.training.callbacks import iterations

log = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
CHECKPOINT_DIR = "checkpoints"
SKIPPED_FILE = "skipped_inputs.tsv"
LOCK_FILE = "run.lock"
STATE_FILE = "checkpoint"  # TF's CheckpointState, for tf.train.latest_checkpoint and TensorBoard
_RUN_STATE_KEY = "run_state/batch_size/.ATTRIBUTES/VARIABLE_VALUE"
# In checkpoints that list G's variables by position (written before issue 19) only.
_POSITIONAL_KEY = "generator/0/.ATTRIBUTES/VARIABLE_VALUE"


class RunFolderBusy(PathError):
    """Another process holds the run folder's lock (the message names it)."""


class ConfigFileError(PathError):
    """A run folder's config.json cannot be read (the message names the file)."""


def _network_variables(network, by_name: bool):
    """{"<layer name>/<variable name>": variable} (`network.variables_by_layer()`, one level:
    the path of a trainable variable must be shorter than the optimizer's, which TF would
    otherwise save it under) when `by_name` and the network names them (a `Generator`, a
    `Discriminator`), else the list of its variables in order."""
    if by_name and hasattr(network, "variables_by_layer"):
        return {
            f"{layer}/{name}": variable
            for layer, variables in network.variables_by_layer().items()
            for name, variable in variables.items()
        }
    return list(network.variables)


def make_checkpoint(gan: DCGAN, by_name: bool = True, **state) -> tf.train.Checkpoint:
    """A tf.train.Checkpoint of the GAN's training state plus `state` (tf.Variables).

    G and D are listed by their variables (weights AND BatchNorm moving statistics), keyed by
    layer and variable name (`ConvNetwork.variables_by_layer`: G's child "up1_bn/moving_mean",
    which TF's tensor keys write `generator/up1_bn.Smoving_mean/...`, escaping the "/"):
    Keras 3 keeps layers held in Python lists out of TF's object graph, so
    `Checkpoint(generator=model)` would save nothing of them but what the optimizer happens to
    reference (the trainable weights, not the BatchNorm statistics). `by_name=False` lists them
    by position in `network.variables` (`generator/0`, `generator/1`, ...), as checkpoints
    written before the layers had names did (and as networks without `variables_by_layer` are
    always listed): `RunCheckpointer.restore` reads those through it.

    Under loss scaling (`mixed_float16`) each optimizer is listed by its inner optimizer (the
    entries of a float32 run: Adam's moments and iterations) and its loss scale apart, as
    `g_loss_scale`/`d_loss_scale` (the scale and its count of good steps). So the checkpoint of
    any precision loads into a float32 model (sampling, export), and a resumed float16 run goes
    on with the scales it had.
    """
    optimizers = {}
    for name in ("g", "d"):
        optimizer = getattr(gan, f"{name}_optimizer")
        if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            if not optimizer.built:  # its scale variables do not exist yet
                raise ValueError("Build the DCGAN (gan.build()) before checkpointing it.")
            optimizers[f"{name}_loss_scale"] = {
                "scale": optimizer.dynamic_scale,
                "good_steps": optimizer.step_counter,
            }
            optimizer = optimizer.inner_optimizer
        optimizers[f"{name}_optimizer"] = optimizer
    return tf.train.Checkpoint(
        generator=_network_variables(gan.generator, by_name),
        discriminator=_network_variables(gan.discriminator, by_name),
        noise_seed_state=gan.seed_generator.state,
        **optimizers,
        **state,
    )


def checkpoint_files(directory: str) -> list[str]:
    """Checkpoint prefixes in `directory` that have an index file, oldest (lowest step) first.

    Read from the files, not from TF's `checkpoint` state file, so that a damaged state file
    does not hide the checkpoints."""
    found = []
    for index in glob.glob(os.path.join(glob.escape(directory), "ckpt-*.index")):
        match = re.fullmatch(r"ckpt-(\d+)\.index", os.path.basename(index))
        if match:
            found.append((int(match.group(1)), index[: -len(".index")]))
    return [prefix for _, prefix in sorted(found)]


def checkpoint_step(prefix: str) -> int:
    return int(prefix.rsplit("-", 1)[1])


def remove_checkpoint(prefix: str) -> None:
    """Deletes a checkpoint: its index first (from then on it no longer exists), then its data."""
    for path in [f"{prefix}.index", *glob.glob(f"{glob.escape(prefix)}.data-*")]:
        try:
            os.remove(path)
        except FileNotFoundError:
            pass
    shutil.rmtree(f"{prefix}_temp", ignore_errors=True)


def remove_orphans(directory: str) -> list[str]:
    """Deletes what killed writes leave in a checkpoint folder: `.data` files without their
    `.index`, TF's `ckpt-N_temp` folders and temporary state files. Returns what was deleted.
    Call it only while holding the run folder's lock (a live writer's files look the same)."""
    if not os.path.isdir(directory):
        return []
    removed = []
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        data = re.fullmatch(r"(ckpt-\d+)\.data-\d+-of-\d+", name)
        orphan = (
            (data is not None
             and not os.path.exists(os.path.join(directory, f"{data.group(1)}.index")))
            or re.fullmatch(r"ckpt-\d+_temp.*", name) is not None
            or ".tempstate" in name
            or re.fullmatch(rf"{STATE_FILE}\.tmp.*", name) is not None
        )  # fmt: skip
        if not orphan:
            continue
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            try:
                os.remove(path)
            except OSError:
                continue
        removed.append(name)
    if removed:
        log.warning("Removed the leftovers of an interrupted checkpoint write in %s: %s",
                    directory, ", ".join(removed))  # fmt: skip
    return removed


def _write_state_file(directory: str, prefixes: list[str]) -> None:
    """TF's `checkpoint` state file (relative paths), atomically."""
    names = [os.path.basename(p) for p in prefixes]
    text = f'model_checkpoint_path: "{names[-1]}"\n' + "".join(
        f'all_model_checkpoint_paths: "{n}"\n' for n in names
    )
    tmp = os.path.join(directory, f"{STATE_FILE}.tmp{os.getpid()}")
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, os.path.join(directory, STATE_FILE))


class RunCheckpointer:
    """Saves and restores a run's state in `<model_dir>/checkpoints`, keeping the last `keep`.

    `epoch` and `batch` are the data position: the next batch to train on is batch `batch` of
    epoch `epoch`, in batches of `batch_size` (0 when unknown: a checkpoint written before the
    batch size was saved). `skip_log` (a `keras_dcgan.data.SkipLog`, optional) is written next to
    each checkpoint as `skipped_inputs.tsv`, and read back on restore, so that a resumed run can
    skip the consumed part of an epoch without decoding it again. Each save also records the
    running sums of `gan.metrics` (`restore_metric_sums` puts them back after Keras resets them).

    Creating one writes nothing; `prepare()` (the trainer, holding the run folder's lock) creates
    the folder and removes the leftovers of interrupted writes.

    On a chief-less worker (multi-worker training) pass `write=False`: it saves into a
    temporary folder (TF's collective save needs every worker to save) that is deleted.
    """

    def __init__(self, gan: DCGAN, model_dir: str, keep: int = 3, preview_seeds=(),
                 skip_log=None, write: bool = True, batch_size: int = 0):  # fmt: skip
        self.gan = gan
        self.model_dir = model_dir
        self.keep = keep
        self.directory = os.path.join(model_dir, CHECKPOINT_DIR)
        if not write:
            self.directory = os.path.join(model_dir, f".worker_tmp_{os.getpid()}")
        self.write = write
        self.skip_log = skip_log
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        self.batch = tf.Variable(0, dtype=tf.int64, trainable=False, name="batch_in_epoch")
        self.preview_seeds = tf.Variable(
            np.asarray(list(preview_seeds), np.int64), trainable=False, name="preview_seeds",
            shape=tf.TensorShape([None]),
        )  # fmt: skip
        self.batch_size = tf.Variable(batch_size, dtype=tf.int64, trainable=False)
        self._requested_batch_size = batch_size
        # Which metrics the sums belong to, as a number (a string variable cannot be created in
        # a multi-worker scope: its initial value is broadcast with collective ops).
        self.metric_names = tf.Variable(0, dtype=tf.int64, trainable=False)
        # Not empty at first: a multi-worker scope broadcasts initial values, and an empty
        # tensor crashes TF's collective broadcast.
        self.metric_sums = tf.Variable(
            np.zeros(max(len(self._metric_variables()), 1)), dtype=tf.float64,
            trainable=False, shape=tf.TensorShape([None]),
        )  # fmt: skip
        position = dict(epoch=self.epoch, batch_in_epoch=self.batch,
                        preview_seeds=self.preview_seeds)  # fmt: skip
        run_state = tf.train.Checkpoint(
            batch_size=self.batch_size, metric_names=self.metric_names,
            metric_sums=self.metric_sums,
        )  # fmt: skip
        self.checkpoint = make_checkpoint(gan, **position, run_state=run_state)
        # What restores each layout, keyed (G's and D's variables by name, with run state):
        # older checkpoints list them by position, and the oldest have no run state.
        self._layouts = {(True, True): self.checkpoint}
        for by_name, with_run_state in ((True, False), (False, True), (False, False)):
            extra = dict(run_state=run_state) if with_run_state else {}
            self._layouts[by_name, with_run_state] = make_checkpoint(
                gan, by_name=by_name, **position, **extra
            )
        for checkpoint in self._layouts.values():
            # Created now, so that `write` saves it (restore() creates it and expects a value).
            checkpoint.save_counter  # noqa: B018
        self.restored_from = None

    def prepare(self) -> None:
        """Creates the checkpoint folder and deletes the leftovers of interrupted writes."""
        os.makedirs(self.directory, exist_ok=True)
        if self.write:
            remove_orphans(self.directory)

    @property
    def position(self) -> tuple[int, int]:
        return int(self.epoch.numpy()), int(self.batch.numpy())

    @property
    def saved_batch_size(self) -> int:
        """The batch size the restored position counts in (0: unknown)."""
        return int(self.batch_size.numpy())

    def steps(self) -> int:
        return iterations(self.gan)

    def _metric_variables(self):
        return [v for m in self.gan.metrics for v in m.variables]

    def _metric_key(self) -> int:
        text = ",".join(f"{m.name}:{len(m.variables)}" for m in self.gan.metrics)
        return int.from_bytes(hashlib.sha1(text.encode()).digest()[:8], "big") >> 1

    def restore_metric_sums(self) -> bool:
        """Puts the saved running sums of the epoch's metrics back (after Keras reset them at
        the start of a resumed epoch). False when none were saved for these metrics."""
        names = int(self.metric_names.numpy())
        variables = self._metric_variables()
        values = self.metric_sums.numpy()
        if names != self._metric_key() or len(values) != len(variables):
            return False
        for variable, value in zip(variables, values, strict=True):
            variable.assign(tf.cast(value, variable.dtype))
        return True

    def save(self, epoch: int, batch: int) -> str | None:
        """Writes a checkpoint at data position (epoch, batch), named by the iteration count,
        then deletes all but the newest `keep`. Raises `PathError` (naming the cause) when it
        cannot be written; the earlier checkpoints are then left as they were."""
        self.epoch.assign(epoch)
        self.batch.assign(batch)
        self.batch_size.assign(self._requested_batch_size or self.saved_batch_size)
        variables = self._metric_variables()
        self.metric_names.assign(self._metric_key())
        self.metric_sums.assign(
            np.array([float(np.asarray(v.numpy())) for v in variables], np.float64)
        )
        prefix = os.path.join(self.directory, f"ckpt-{self.steps()}")
        try:
            os.makedirs(self.directory, exist_ok=True)
            path = self.checkpoint.write(prefix)
        except (OSError, tf.errors.OpError) as e:
            remove_checkpoint(prefix)
            remove_orphans(self.directory)
            previous = checkpoint_files(self.directory)
            intact = (
                f" The earlier checkpoints are intact (newest: {os.path.basename(previous[-1])})."
                if previous else ""
            )  # fmt: skip
            raise PathError(
                f"Could not write checkpoint {prefix}: {reason(e)}.{intact} Free some space (or "
                "fix the folder) and run the same command again to continue."
            ) from None
        try:
            self._rotate()
            if self.write and self.skip_log is not None and self.skip_log.count:
                write_skipped(self.skip_log, self.model_dir)
        except OSError as e:
            raise write_failure(self.model_dir, e, f"the run folder {self.model_dir}") from None
        return path if self.write else None

    def _rotate(self) -> None:
        files = checkpoint_files(self.directory)
        for prefix in files[: max(len(files) - self.keep, 0)]:
            remove_checkpoint(prefix)
        files = files[-self.keep :]
        if files:
            _write_state_file(self.directory, files)

    def restore(self) -> str | None:
        """Restores the newest readable checkpoint (None when there is none).

        An unreadable one (truncated, partial) is reported and the previous one tried; if none
        can be read, raises an error rather than starting over on top of them.
        """
        files = checkpoint_files(os.path.join(self.model_dir, CHECKPOINT_DIR))
        failures = []
        for prefix in reversed(files):
            try:
                reader = tf.train.load_checkpoint(prefix)
                with_run_state = reader.has_tensor(_RUN_STATE_KEY)
                checkpoint = self._layouts[not reader.has_tensor(_POSITIONAL_KEY), with_run_state]
                if not with_run_state:
                    self.batch_size.assign(0)
                    self.metric_names.assign(0)
                # expect_partial: a float16 run's loss scales are extra in a float32 model.
                checkpoint.restore(prefix).expect_partial().assert_existing_objects_matched()
            except Exception as e:  # noqa: BLE001 (truncated files raise all sorts)
                reason_ = str(e).strip().splitlines()[0][:200] if str(e).strip() else repr(e)
                log.warning("Checkpoint %s is unreadable (%s); trying the previous one.", prefix,
                            reason_)  # fmt: skip
                failures.append(prefix)
                continue
            if self.skip_log is not None:
                read_skipped(self.skip_log, self.model_dir)
            self.restored_from = prefix
            return prefix
        if failures:
            raise UserError(
                f"No readable checkpoint in {self.directory} (tried {len(failures)}: "
                f"{', '.join(os.path.basename(f) for f in failures)}); move the folder away to "
                "start over."
            )
        return None

    def close(self):
        if not self.write:
            shutil.rmtree(self.directory, ignore_errors=True)


# ----------------------------------------------------------------------------- skipped inputs
_ESCAPES = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}
_UNESCAPES = {"\\": "\\", "t": "\t", "n": "\n", "r": "\r"}


def _escape(text: str) -> str:
    """Backslash escapes for the characters that would break a TSV line (\\, tab, newlines)."""
    return "".join(_ESCAPES.get(c, c) for c in text)


def _unescape(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text) and text[i + 1] in _UNESCAPES:
            out.append(_UNESCAPES[text[i + 1]])
            i += 2
        else:  # a lone backslash (files written before escaping): kept as it is
            out.append(c)
            i += 1
    return "".join(out)


def write_skipped(skip_log, model_dir: str) -> str:
    """`<model_dir>/skipped_inputs.tsv`: id and reason of every skipped input (atomically).

    Ids are written with backslash escapes (`\\\\`, `\\t`, `\\n`, `\\r`), so that a file name
    holding a tab or a newline stays on its line; `read_skipped` undoes them."""
    path = os.path.join(model_dir, SKIPPED_FILE)
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8", errors="surrogateescape") as f:
        f.write("id\treason\n")
        for item_id, why in sorted(skip_log.items().items()):
            f.write(f"{_escape(item_id)}\t{_escape(why)}\n")
    os.replace(tmp, path)
    return path


def read_skipped(skip_log, model_dir: str) -> None:
    """Adds the inputs listed in `<model_dir>/skipped_inputs.tsv` (if any) to `skip_log`."""
    path = os.path.join(model_dir, SKIPPED_FILE)
    if not os.path.exists(path):
        return
    with open(path, encoding="utf-8", errors="surrogateescape", newline="\n") as f:
        next(f, None)
        for line in f:
            item_id, _, why = line.rstrip("\n").rpartition("\t")
            if item_id:
                skip_log.add(_unescape(item_id), _unescape(why), quiet=True)


# -------------------------------------------------------------------------------------- config
def read_config(model_dir: str) -> Config:
    """The `Config` of a run folder; `ConfigFileError` (naming the file) when it is damaged."""
    path = os.path.join(model_dir, CONFIG_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{model_dir} is not a run folder: it has no {CONFIG_FILE}.")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ConfigFileError(f"{path} cannot be read: {reason(e)}.") from None
    except UnicodeDecodeError:
        text = None
    try:
        if text is None:
            raise ValueError("not UTF-8 text")
        return Config.from_json(text)
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        detail = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        if isinstance(e, KeyError):
            detail = f"missing {e}"
        raise ConfigFileError(
            f"{path} is damaged ({detail}); restore it, or move the run folder away to start over."
        ) from None


def write_config(config: Config, model_dir: str) -> str:
    ensure_folder(model_dir, "The run folder (--model_dir)")
    path = os.path.join(model_dir, CONFIG_FILE)
    try:
        with open(f"{path}.tmp", "w") as f:
            f.write(config.to_json() + "\n")
        os.replace(f"{path}.tmp", path)
    except OSError as e:
        raise write_failure(path, e) from None
    return path


# ---------------------------------------------------------------------------------- run folder
def _holder_text(info: dict) -> str:
    if not info:
        return "holder unknown"
    parts = [f"pid {info.get('pid', '?')} on {info.get('host', '?')}"]
    if info.get("started"):
        parts.append(f"since {info['started']}")
    text = ", ".join(parts)
    if info.get("command"):
        text += f": {info['command']}"
    return text


def _snapshot(model_dir: str) -> set[str]:
    found = set()
    for dirpath, dirnames, filenames in os.walk(model_dir):
        rel = os.path.relpath(dirpath, model_dir)
        for name in dirnames + filenames:
            found.add(os.path.normpath(os.path.join(rel, name)))
    return found


class RunFolder:
    """The run folder of one training process: created if needed, locked, and rolled back if
    the run fails before its first training step.

    Use as a context manager. On entry: the folder is created (`PathError` when `model_dir` is a
    file, lies inside a file, or is read-only) and `<model_dir>/run.lock` is locked with
    `flock` (`RunFolderBusy`, naming the holder's pid, host, start time and command, when
    another process holds it; the kernel drops the lock of a process that dies, so a killed
    holder never leaves the folder stuck). On an exception before `mark_started()`, every file
    this run created is deleted and `config.json` is put back as it was (a new folder is deleted
    whole), so a retry with other flags starts clean. With `lock=False` (the non-chief workers of
    a multi-worker run, which do not write the folder) it only checks the path.
    """

    def __init__(self, model_dir: str, lock: bool = True):
        self.model_dir = model_dir
        self.lock = lock
        self.started = False
        self._fd = None
        self._existed = False
        self._before: set[str] = set()
        self._config: bytes | None = None

    def mark_started(self) -> None:
        self.started = True

    def __enter__(self) -> RunFolder:
        what = "The run folder (--model_dir)"
        self._existed = os.path.isdir(self.model_dir)
        if not self.lock:
            return self
        ensure_folder(self.model_dir, what)
        try:
            self._acquire()
        except BaseException:
            if not self._existed:
                shutil.rmtree(self.model_dir, ignore_errors=True)
            raise
        if self._existed:
            self._before = _snapshot(self.model_dir)
        config = os.path.join(self.model_dir, CONFIG_FILE)
        if os.path.isfile(config):
            try:
                with open(config, "rb") as f:
                    self._config = f.read()
            except OSError:
                self._config = None
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is not None and self.lock and not self.started:
                self._roll_back()
        finally:
            self._release()
        return False

    # --------------------------------------------------------------------------- the lock
    def _acquire(self) -> None:
        path = os.path.join(self.model_dir, LOCK_FILE)
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock
            log.warning("Cannot lock %s on this platform; run one training at a time.", path)
            return
        while True:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as e:
                raise PathError(
                    f"The run folder (--model_dir) {self.model_dir} is not writable: {reason(e)}."
                ) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                info = _read_lock_info(fd)
                os.close(fd)
                raise RunFolderBusy(
                    f"{self.model_dir} is in use by another training process "
                    f"({_holder_text(info)}); wait for it to end or stop it, or choose another "
                    "--model_dir."
                ) from None
            except OSError as e:  # a file system without flock (some network mounts)
                if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                    os.close(fd)
                    raise
                log.warning("This file system cannot lock %s (%s); run one training at a time "
                            "in it.", path, reason(e))  # fmt: skip
            # The file may have been deleted (a rolled-back start) between open and lock.
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z"),
            "command": " ".join(os.path.basename(a) if i == 0 else a
                                for i, a in enumerate(sys.argv))[:300],
        }  # fmt: skip
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        except OSError as e:
            os.close(fd)
            raise write_failure(path, e) from None
        self._fd = fd

    def _release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # drops the flock
            self._fd = None

    # ----------------------------------------------------------------------- the roll-back
    def _roll_back(self) -> None:
        """Deletes what this run created and restores config.json (a failed start)."""
        if not self._existed:
            shutil.rmtree(self.model_dir, ignore_errors=True)
            return
        keep = self._before | {LOCK_FILE}
        created = sorted(_snapshot(self.model_dir) - keep, key=len, reverse=True)
        for rel in created:
            path = os.path.join(self.model_dir, rel)
            try:
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path, ignore_errors=True)
                elif os.path.lexists(path):
                    os.remove(path)
            except OSError:
                pass
        config = os.path.join(self.model_dir, CONFIG_FILE)
        try:
            if self._config is None:
                if os.path.exists(config):
                    os.remove(config)
            else:
                current = open(config, "rb").read() if os.path.exists(config) else None
                if current != self._config:
                    with open(f"{config}.tmp", "wb") as f:
                        f.write(self._config)
                    os.replace(f"{config}.tmp", config)
        except OSError as e:
            log.warning("Could not restore %s after a failed start: %s", config, e)


def _read_lock_info(fd: int) -> dict:
    try:
        data = os.pread(fd, 4096, 0)
        info = json.loads(data.decode("utf-8", "replace") or "{}")
        return info if isinstance(info, dict) else {}
    except (OSError, ValueError):
        return {}


def load_trained(model_dir: str) -> tuple[Config, DCGAN]:
    """Rebuilds the DCGAN of a run folder, as trained (`DCGAN.from_config` of its config: the
    architecture, augment, r1_gamma, precision, seed and optimizers, loss scales included), with
    its newest readable checkpoint. (`dcgan export` serves a float32 twin of any precision.)"""
    config = read_config(model_dir)
    gan = DCGAN.from_config(config)  # the model as trained: recipe and optimizers included
    gan.build()
    checkpointer = RunCheckpointer(gan, model_dir, keep=10**6)
    if checkpointer.restore() is None:
        raise FileNotFoundError(f"{model_dir} holds no checkpoint yet.")
    return config, gan


def export_run(model_dir: str, export_base: str, **kwargs) -> str:
    """Exports the generator of a run folder's latest checkpoint as a new TF Serving version
    under `export_base`; returns its folder (see `keras_dcgan.serving.export.export_generator`,
    which takes `kwargs`)."""
    from keras_dcgan.serving.export import export_generator

    _, gan = load_trained(model_dir)
    return export_generator(gan, export_base, **kwargs)
