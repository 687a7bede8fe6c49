"""LSUN scale rehearsal on a CPU: an LSUN-like LMDB of `--num` JPEGs, then each step of the paper's
bedroom run (key listing, `dcgan dedup`, one `paper64` input epoch, a few training steps), each in
a fresh subprocess, with its wall time and peak RSS, extrapolated to LSUN's 3,033,042 bedrooms.

1. write: an LMDB in `--workdir` like LSUN's export: keys are 40-hex SHA-1 strings (LMDB sorts
   them, so the listing order is random), values JPEG bytes (quality `--quality`), short side
   `--short_side` (LSUN: 256), long side 1.0-1.33x. The content: random crops of scikit-learn's
   two sample photos from a pre-built pyramid (16 scales up to 1.5x, 4 colour casts), randomly
   flipped, with 2-5 opaque objects of random colours drawn on (two photos alone are too few
   distinct scenes); flat crops (sky, blurred background) are drawn again. A `--dup_fraction` of the
   records (default 0.09, like the ~275k of 3.03M that the paper removed) are planted
   near-copies of another record, under their own keys: re-encoded at another JPEG quality, or
   resampled (down to 0.7-0.9x and back up). Generated in chunks by `--workers` processes and
   written in transactions of 10,000 records (bounded memory at any N). The planted pairs are
   recorded in `planted.tsv`, every record's crop parameters in `records.npy`. A rerun with the
   same settings reuses the database (`--rewrite` writes it again).
2. Each step runs in a FRESH subprocess (its peak RSS is its own: VmHWM, sampled every 0.1 s),
   after the database's pages are dropped from the OS page cache (`--evict`, as LSUN's 43 GiB
   would not fit in memory anyway):
   - startup: Python + importing TensorFlow, Keras and keras_dcgan.data (the fixed part of
     `dedup`, which runs as a black box).
   - keys_first, keys_cached: `keras_dcgan.data.open_source(path).all_ids()` with an empty LMDB
     key cache (`$KERAS_DCGAN_CACHE_DIR`, a fresh folder), then again with the cache it filled.
   - dedup: `dcgan dedup --dataset=<lmdb> --output=<workdir>/keep.txt` (old keep-list, groups
     and hash files removed first, and a fresh cache folder, so it is a complete run, not a
     resume); images/s, the duplicates found, and against the planted pairs: recall (planted
     pairs inside one group) and precision (reported pairs, every pair in a group, made from the
     same original). Pairs of unrelated records whose crops overlap (same photo, flip and colour,
     IoU >= 0.7 of the crop boxes) are counted apart (near-duplicates before the objects were
     drawn on; now mostly different scenes).
   - epoch: `open_source(path).dataset(64, 3, 128, epoch=0, shuffle=True, seed=0, cache=None,
     keep_list=keep.txt)` iterated to its end (the keep-list of the dedup step, if there is one).
   - train: `paper64` at batch 128 reading from the LMDB (same keep-list): one warm-up step, then
     `--train_steps` timed steps (median).
3. A table: wall time, the fixed part (start-up: imports, model build, warm-up), the per-image
   cost, the peak RSS (VmHWM) and the peak of its anonymous part (file pages mapped in, such
   as TensorFlow's libraries and data.mdb's pages, are page cache), and the extrapolation to
   LSUN's 3,033,042 images: time = fixed + per-image cost x 3,033,042; memory = the anonymous
   peak as measured, or, when `--results` holds runs of the same --short_side and --quality at
   an N at least 4x apart (one >= 50,000), a least-squares line fixed + bytes/image x N through
   them (and the same for the per-image time of keys, dedup and epoch; dedup's autoencoder trains
   on at most 100,000 images, so only runs of N >= 100,000 give its true slope). `--results=FILE`
   appends one JSON line per run with every figure; the logs of each step are in
   `<workdir>/logs/`.

    python bench/lsun_scale.py --num=2000 --short_side=64 --train_steps=1
    python bench/lsun_scale.py --num=100000 --results=/tmp/lsun_scale.jsonl
    python bench/lsun_scale.py --num=1000000 --short_side=64 --steps=write,keys,dedup,epoch
"""

from __future__ import annotations

import collections
import datetime
import hashlib
import io
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time

_STARTED_AT = time.time()  # a child step's start (the interpreter's own start-up is before it)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

LSUN_BEDROOMS = 3_033_042
STEPS = ("write", "keys", "dedup", "epoch", "train")
IMAGE_SIZE = 64  # paper64
CHUNK = 1_000  # records per generated chunk
RECORDS_PER_COMMIT = 10_000
GENERATOR_VERSION = 6  # bump when the generated content changes (a stale database is rewritten)
NUM_LEVELS = 16  # pyramid scales, from the short side's to MAX_SCALE x the photo's
# Up to 1.5x the photo's size (more distinct crops), every scale equally often: drawing the scales
# by their number of crop positions (zoomed in, mostly) gave the autoencoder groups of 50-200
# unrelated images under one hash at N = 2,000, and a lower top scale more overlapping crops.
MAX_SCALE = 1.5
COLOURS = ((1.0, 1.0, 1.0), (1.1, 1.0, 0.86), (0.88, 0.97, 1.12), (0.82, 0.82, 0.82))
# Crops with less detail than this are drawn again: the mean absolute difference of neighbouring
# grey levels at about 32 px (what dedup hashes). Sky and blurred background score 0.2-3, the
# rest 3-30; flat crops share one semantic hash whatever their colour.
MIN_DETAIL = 3.0
FIT_MIN_NUM = 50_000  # fits across runs need one of at least this many images
OVERLAP_IOU = 0.7  # 0.78: the same view at the next scale
# records.npy columns: the crop of each record (copies repeat their original's)
PHOTO, COLOUR, LEVEL, FLIP, TOP, LEFT, WIDTH, HEIGHT, ORIGINAL = range(9)

_NUM = flags.DEFINE_integer("num", 10_000, "Images in the LMDB (LSUN bedrooms: 3,033,042).")
_WORKDIR = flags.DEFINE_string(
    "workdir", "/tmp/dcgan_lsun_scale", "Folder of the LMDB, the planted pairs, keep-list, logs."
)
_SHORT_SIDE = flags.DEFINE_integer(
    "short_side", 256, "Short side of the stored JPEGs (LSUN: 256; 64 fits 1M images in less).",
    lower_bound=IMAGE_SIZE,
)  # fmt: skip
_QUALITY = flags.DEFINE_integer("quality", 75, "JPEG quality.", lower_bound=1, upper_bound=95)
_DUP_FRACTION = flags.DEFINE_float(
    "dup_fraction", 0.09, "Share of records that are planted near-copies of another record.",
    lower_bound=0.0, upper_bound=0.5,
)  # fmt: skip
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the generated content and keys.")
_WORKERS = flags.DEFINE_integer("workers", 2, "Processes generating JPEGs (0: in-process).")
_TRAIN_STEPS = flags.DEFINE_integer(
    "train_steps", 3, "Timed paper64 steps (after one warm-up step).", lower_bound=1
)
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 128, "Batch of the epoch and train steps.")
_STEPS = flags.DEFINE_list("steps", list(STEPS), f"Steps to run, of {', '.join(STEPS)}.")
flags.register_validator(
    "steps", lambda v: set(v) <= set(STEPS), f"--steps takes a list of {', '.join(STEPS)}."
)
_REWRITE = flags.DEFINE_boolean("rewrite", False, "Write the LMDB again even if it is there.")
_EVICT = flags.DEFINE_boolean(
    "evict", True, "Drop data.mdb from the OS page cache before each step (cold reads)."
)
_DEDUP_ARGS = flags.DEFINE_list(
    "dedup_args", [], "Extra flags for dcgan dedup, e.g. --dedup_args=--epochs=10."
)
_RESULTS = flags.DEFINE_string(
    "results", None, "Append one JSON line with all figures to this file (default: print only)."
)
_CHILD = flags.DEFINE_enum(
    "child", None, ["startup", "keys", "epoch", "train"], "(internal) run one measured step."
)
_KEEP = flags.DEFINE_string("keep", "", "(internal) the keep-list of a child step.")


# ------------------------------------------------------------------------------------------
# Writing the LMDB


def record_key(seed: int, index: int) -> bytes:
    """LSUN-like key of record `index`: 40 hex digits of a SHA-1."""
    return hashlib.sha1(f"lsun_scale:{seed}:{index}".encode()).hexdigest().encode("ascii")


_PYRAMID: list = []  # [photo][colour][level] uint8 arrays, built before the workers fork


def _build_pyramid(short_side: int) -> list:
    from PIL import Image
    from sklearn.datasets import load_sample_images

    pyramid = []
    for photo in load_sample_images().images:  # 427 x 640
        height, width = photo.shape[:2]
        scales = np.geomspace(short_side / height, MAX_SCALE, NUM_LEVELS)
        levels = [
            Image.fromarray(photo).resize(
                (
                    max(round(width * s), short_side * 4 // 3 + 1),
                    max(round(height * s), short_side),
                ),
                Image.Resampling.LANCZOS,
            )
            for s in scales
        ]
        pyramid.append(
            [
                [
                    np.clip(np.asarray(level, np.float32) * gains, 0, 255).astype(np.uint8)
                    for level in levels
                ]
                for gains in np.array(COLOURS, np.float32)
            ]
        )
    return pyramid


def _encode(image, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def _detail(image: np.ndarray) -> float:
    grey = image.astype(np.int16).sum(-1)
    return float(np.abs(np.diff(grey, axis=0)).mean() + np.abs(np.diff(grey, axis=1)).mean()) / 6


def _original(rng, short_side: int, quality: int):
    """One random crop: (JPEG bytes, its parameters)."""
    from PIL import Image

    for _ in range(100):
        photo = int(rng.integers(len(_PYRAMID)))
        colour = int(rng.integers(len(COLOURS)))
        level = int(rng.integers(NUM_LEVELS))
        array = _PYRAMID[photo][colour][level]
        width = int(short_side * rng.uniform(1.0, 4 / 3))
        top = int(rng.integers(array.shape[0] - short_side + 1))
        left = int(rng.integers(array.shape[1] - width + 1))
        crop = array[top : top + short_side, left : left + width]
        if _detail(crop[:: short_side // 32, :: short_side // 32]) >= MIN_DETAIL:
            break
    flip = int(rng.random() < 0.5)
    image = Image.fromarray(crop)
    if flip:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    _draw_objects(image, rng)
    params = (photo, colour, level, flip, top, left, width, short_side, -1)
    return _encode(image, quality), params


def _draw_objects(image, rng) -> None:
    """2-5 opaque objects (boxes, ellipses, triangles) of random colours, a sixth to half the
    short side, drawn on the crop: two photos alone give too few distinct scenes (at N = 100,000
    80% of the crops overlapped another and shared its semantic hash); with the objects nearly
    every record is a scene of its own, as in LSUN, while the photo keeps JPEG sizes natural."""
    from PIL import ImageDraw

    draw = ImageDraw.Draw(image)
    width, height = image.size
    for _ in range(int(rng.integers(2, 6))):
        size = int(height * rng.uniform(1 / 6, 1 / 2))
        x0 = int(rng.integers(-size // 2, width - size // 2))
        y0 = int(rng.integers(-size // 2, height - size // 2))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        kind = int(rng.integers(3))
        if kind == 0:
            draw.rectangle((x0, y0, x0 + size, y0 + int(size * rng.uniform(0.5, 1.5))), colour)
        elif kind == 1:
            draw.ellipse((x0, y0, x0 + size, y0 + int(size * rng.uniform(0.5, 1.5))), colour)
        else:
            corners = rng.integers(0, size, (3, 2)) + (x0, y0)
            draw.polygon([tuple(int(v) for v in c) for c in corners], colour)


def _near_copy(data: bytes, kind: str, rng, quality: int) -> bytes:
    """A planted near-duplicate of JPEG `data`: re-encoded at another quality, or resampled."""
    from PIL import Image

    image = Image.open(io.BytesIO(data)).convert("RGB")
    if kind == "requality":
        others = [q for q in range(50, 96, 5) if abs(q - quality) >= 10]
        return _encode(image, int(rng.choice(others)))
    factor = rng.uniform(0.7, 0.9)
    small = image.resize(
        (round(image.width * factor), round(image.height * factor)), Image.Resampling.BILINEAR
    )
    return _encode(small.resize(image.size, Image.Resampling.BICUBIC), quality)


COPY_KINDS = ("requality", "resample")


def make_chunk(task):
    """Records [start, start + count): (start, values, params [count, 9] int32, planted pairs
    [(copy index, original index, kind)]). Seeded by (seed, chunk), whatever the workers."""
    start, count, seed, short_side, quality, dup_fraction = task
    rng = np.random.default_rng([seed, start // CHUNK])
    copies = round(dup_fraction * (start + count)) - round(dup_fraction * start)
    copies = min(copies, count // 2)
    copy_rows = rng.choice(count, copies, replace=False)
    is_copy = np.zeros(count, bool)
    is_copy[copy_rows] = True
    original_rows = np.flatnonzero(~is_copy)
    sources = rng.choice(original_rows, copies, replace=False)
    values = [b""] * count
    params = np.zeros((count, 9), np.int32)
    for row in original_rows:
        values[row], params[row] = _original(rng, short_side, quality)
    planted = []
    for row, source in zip(copy_rows, sources, strict=True):
        kind = COPY_KINDS[int(rng.integers(len(COPY_KINDS)))]
        values[row] = _near_copy(values[source], kind, rng, quality)
        params[row] = params[source]
        params[row, ORIGINAL] = start + source
        planted.append((start + int(row), start + int(source), kind))
    return start, values, params, planted


def _settings() -> dict:
    return {
        "num": _NUM.value,
        "short_side": _SHORT_SIDE.value,
        "quality": _QUALITY.value,
        "dup_fraction": _DUP_FRACTION.value,
        "seed": _SEED.value,
        "generator_version": GENERATOR_VERSION,
    }


WRITTEN_FILES = ("settings.json", "lmdb", "planted.tsv", "records.npy")
STEP_FILES = ("keep.txt", "groups.json", "dedup_hashes", "cache", "cache_dedup", "logs")


def _remove(workdir: str, names) -> None:
    """Removes what this bench wrote in `workdir` (only these names, never the folder)."""
    for name in os.listdir(workdir):
        if any(name == n or name.startswith(n + ".") or name.startswith("." + n) for n in names):
            path = os.path.join(workdir, name)
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)


def _disk_bytes(path: str) -> tuple[int, int]:
    stat = os.stat(path)
    return stat.st_size, stat.st_blocks * 512


def write_database(workdir: str) -> dict:
    """Writes the LMDB (or reuses a complete one with the same settings); returns its figures."""
    import lmdb

    settings_file = os.path.join(workdir, "settings.json")
    lmdb_dir = os.path.join(workdir, "lmdb")
    if os.path.exists(settings_file) and not _REWRITE.value:
        with open(settings_file) as f:
            done = json.load(f)
        if done.get("settings") == _settings() and os.path.isfile(
            os.path.join(lmdb_dir, "data.mdb")
        ):
            print(
                f"write: reusing {lmdb_dir} ({_NUM.value:,} images, written in "
                f"{done['write_s']:.1f} s, {done['us_per_image']:.0f} us/image; --rewrite "
                "writes it again)"
            )
            return {**done, "reused": True}
        print(f"write: {settings_file} has other settings: writing again")
    _remove(workdir, WRITTEN_FILES + STEP_FILES)
    num, seed, side, quality = _NUM.value, _SEED.value, _SHORT_SIDE.value, _QUALITY.value
    start_time = time.perf_counter()
    _PYRAMID[:] = _build_pyramid(side)
    pyramid_s = time.perf_counter() - start_time
    raw = 3 * side * (side * 4 // 3 + 1)
    map_size = num * max(raw // 2, 8192) + (1 << 30)
    tasks = [
        (s, min(CHUNK, num - s), seed, side, quality, _DUP_FRACTION.value)
        for s in range(0, num, CHUNK)
    ]
    env = lmdb.open(lmdb_dir, map_size=map_size, meminit=False)
    records = np.zeros((num, 9), np.int32)
    planted_file = os.path.join(workdir, "planted.tsv")
    value_bytes = copies = 0
    next_report = 0.1
    with open(planted_file, "w") as planted_out:
        planted_out.write("copy\toriginal\tkind\n")
        txn, in_txn = env.begin(write=True), 0
        for start, values, params, planted in _generate(tasks):
            keys = [record_key(seed, start + i) for i in range(len(values))]
            txn.cursor().putmulti(zip(keys, values, strict=True))
            in_txn += len(values)
            value_bytes += sum(map(len, values))
            records[start : start + len(values)] = params
            for copy, original, kind in planted:
                planted_out.write(
                    f"{record_key(seed, copy).decode()}\t{record_key(seed, original).decode()}"
                    f"\t{kind}\n"
                )
            copies += len(planted)
            if in_txn >= RECORDS_PER_COMMIT:
                txn.commit()
                txn, in_txn = env.begin(write=True), 0
            done = (start + len(values)) / num
            if done >= next_report and num >= 50_000:
                seconds = time.perf_counter() - start_time
                print(
                    f"  write: {done:4.0%} ({start + len(values):,} images, {seconds:.0f} s, "
                    f"{seconds / (start + len(values)) * 1e6:.0f} us/image)",
                    flush=True,
                )
                next_report += 0.1
        txn.commit()
    env.sync(True)
    entries = env.stat()["entries"]
    env.close()
    np.save(os.path.join(workdir, "records.npy"), records)
    seconds = time.perf_counter() - start_time
    streaming = seconds - pyramid_s
    size, allocated = _disk_bytes(os.path.join(lmdb_dir, "data.mdb"))
    figures = {
        "settings": _settings(),
        "write_s": seconds,
        "pyramid_s": pyramid_s,
        "us_per_image": seconds / num * 1e6,
        "images_per_s": num / seconds,
        "streaming_us_per_image": streaming / num * 1e6,
        "workers": _WORKERS.value,
        "entries": entries,
        "planted_copies": copies,
        "value_bytes": value_bytes,
        "mean_value_bytes": value_bytes / num,
        "data_mdb_bytes": size,
        "data_mdb_allocated_bytes": allocated,
        "writer_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "worker_rss_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }
    with open(settings_file + ".tmp", "w") as f:
        json.dump(figures, f, indent=1)
    os.replace(settings_file + ".tmp", settings_file)
    _print_write(figures)
    return {**figures, "reused": False}


def _generate(tasks):
    """make_chunk over `tasks` in order, by a pool of `--workers` with a bounded window."""
    if _WORKERS.value <= 0:
        yield from map(make_chunk, tasks)
        return
    import multiprocessing

    with multiprocessing.get_context("fork").Pool(_WORKERS.value) as pool:
        pending = collections.deque()
        submitted = 0
        while pending or submitted < len(tasks):
            while submitted < len(tasks) and len(pending) < 2 * _WORKERS.value + 2:
                pending.append(pool.apply_async(make_chunk, (tasks[submitted],)))
                submitted += 1
            yield pending.popleft().get()


def _print_write(f: dict) -> None:
    s, allocated = f["settings"], f["data_mdb_allocated_bytes"]
    print(
        f"write: {s['num']:,} JPEGs (short side {s['short_side']}, quality {s['quality']}, "
        f"{f['planted_copies']:,} planted copies) in {f['write_s']:.1f} s = "
        f"{f['us_per_image']:.0f} us/image, {f['images_per_s']:,.0f} images/s ({f['workers']} "
        f"worker(s); after the {f['pyramid_s']:.1f} s pyramid "
        f"{f['streaming_us_per_image']:.0f} us/image); mean value {f['mean_value_bytes']:,.0f} "
        f"bytes; data.mdb {f['data_mdb_bytes'] / 2**20:,.1f} MiB ({allocated / 2**20:,.1f} "
        f"MiB allocated, {allocated / s['num']:,.0f} bytes/image; LSUN's "
        f"bedrooms: 42.77 GiB, 15,141 bytes/image); peak RSS: writer "
        f"{f['writer_rss_mib']:,.0f} MiB, workers {f['worker_rss_mib']:,.0f} MiB"
    )


# ------------------------------------------------------------------------------------------
# Child steps (each in its own process; prints one "RESULT {json}" line)


def _child(kind: str, path: str) -> dict:
    start = time.perf_counter()
    import tensorflow as tf

    from keras_dcgan.data import open_source

    imported = time.perf_counter()
    out = {"import_s": imported - start, "tf": tf.__version__}
    keep = _KEEP.value or None
    if kind == "startup":
        import keras  # noqa: F401

        import keras_dcgan.data.dedup  # noqa: F401
        import keras_dcgan.models  # noqa: F401

        out["work_s"] = time.perf_counter() - imported
    elif kind == "keys":
        ids = open_source(path).all_ids()
        out.update(count=len(ids), work_s=time.perf_counter() - imported)
    elif kind == "epoch":
        source = open_source(path)
        ds = source.dataset(IMAGE_SIZE, 3, _BATCH_SIZE.value, epoch=0, shuffle=True, seed=0,
                            cache=None, keep_list=keep)  # fmt: skip
        built = time.perf_counter()
        batches = images = 0
        first = None
        for batch in ds:
            images += int(batch.shape[0])
            batches += 1
            first = first or time.perf_counter() - built
        out.update(
            batches=batches, images=images, build_s=built - imported, first_batch_s=first,
            work_s=time.perf_counter() - imported, skipped=source.skip_log.count,
            skip_summary=source.skip_log.summary(),
        )  # fmt: skip
    elif kind == "train":
        out.update(_train_steps(path, keep, imported))
    return out


def _train_steps(path: str, keep: str | None, imported: float) -> dict:
    import keras

    import keras_dcgan
    from keras_dcgan.data import open_source

    config = keras_dcgan.get_config(
        "paper64", dataset=path, batch_size=_BATCH_SIZE.value, keep_list=keep,
        steps_per_execution=1,
    )  # fmt: skip
    mc, tc, dc = config.model, config.train, config.data
    keras.utils.set_random_seed(tc.seed)
    source = open_source(path)
    ds = source.dataset(mc.image_size, mc.channels, tc.batch_size, keep_list=dc.keep_list,
                        seed=tc.seed, shuffle_buffer=dc.shuffle_buffer, cache=None,
                        max_image_pixels=dc.max_image_pixels)  # fmt: skip
    gan = keras_dcgan.DCGAN.from_config(config)
    gan.build()
    gan.make_train_function()
    iterator = iter(ds)
    built = time.perf_counter()
    times = []
    for _ in range(1 + _TRAIN_STEPS.value):
        start = time.perf_counter()
        logs = gan.train_function(iterator)
        float(logs["d_loss"])  # waits for the step
        times.append(time.perf_counter() - start)
    median = statistics.median(times[1:])
    return {
        "build_s": built - imported,
        "warmup_s": times[0],
        "step_s": times[1:],
        "median_step_s": median,
        "images_per_s": tc.batch_size / median,
        "work_s": sum(times[1:]),
        "d_loss": float(logs["d_loss"]),
    }


# ------------------------------------------------------------------------------------------
# Measuring a step in a fresh process


def _evict(lmdb_dir: str) -> bool:
    """Drops data.mdb's pages from the OS page cache (clean pages only; no root needed)."""
    if not _EVICT.value:
        return False
    fd = os.open(os.path.join(lmdb_dir, "data.mdb"), os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    return True


def _memory_kib(pid: int) -> dict[str, int]:
    """VmHWM (the peak RSS of the process since its exec: unlike ru_maxrss, not raised by the
    parent it was forked from), RssAnon, RssFile (pages of mapped files: LMDB's data.mdb,
    libraries) of a live process."""
    try:
        with open(f"/proc/{pid}/status") as f:
            pairs = [line.split(":", 1) for line in f]
        return {k: int(v.split()[0]) for k, v in pairs if k in ("VmHWM", "RssAnon", "RssFile")}
    except (OSError, ValueError):
        return {}


def measure(name: str, argv: list[str], workdir: str, cache_dir: str, lmdb_dir: str) -> dict:
    """Runs `argv` in a fresh process: its wall time, peak RSS (ru_maxrss, and the peaks of its
    anonymous and file-backed parts, sampled every 0.1 s) and its RESULT line."""
    logs = os.path.join(workdir, "logs")
    os.makedirs(logs, exist_ok=True)
    env = {**os.environ, "KERAS_DCGAN_CACHE_DIR": cache_dir, "TF_CPP_MIN_LOG_LEVEL": "2"}
    evicted = _evict(lmdb_dir)
    out_path, err_path = os.path.join(logs, f"{name}.out"), os.path.join(logs, f"{name}.err")
    peaks = {"VmHWM": 0, "RssAnon": 0, "RssFile": 0}
    with open(out_path, "w") as out, open(err_path, "w") as err:
        start, launched = time.perf_counter(), time.time()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, env=env)
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            for key, value in _memory_kib(proc.pid).items():
                peaks[key] = max(peaks[key], value)
            time.sleep(0.1)
        wall, ended = time.perf_counter() - start, time.time()
    proc.returncode = os.waitstatus_to_exitcode(status)
    with open(out_path) as f:
        stdout = f.read()
    # ru_maxrss of a forked child counts the parent's memory at the fork (Linux keeps the old
    # mm's high-water mark across exec): the bench's own RSS after writing 1M records would
    # show up in every step. VmHWM, sampled up to the exit, is the step's own peak.
    result = {"wall_s": wall, "rss_mib": peaks["VmHWM"] / 1024,
              "ru_maxrss_mib": usage.ru_maxrss / 1024,
              "anon_mib": peaks["RssAnon"] / 1024, "file_mib": peaks["RssFile"] / 1024,
              "rc": proc.returncode, "cpu_s": usage.ru_utime + usage.ru_stime,
              "evicted": evicted}  # fmt: skip
    for line in stdout.splitlines():
        if line.startswith("RESULT "):
            result.update(json.loads(line[len("RESULT ") :]))
    result["anon_mib"] = max(result["anon_mib"], result.get("anon_end_mib", 0.0))
    if "done_at" in result:  # the interpreter's start-up before the script, its exit after it
        result["launch_s"] = result.pop("started_at") - launched
        result["exit_s"] = ended - result.pop("done_at")
    if proc.returncode:
        with open(err_path) as f:
            tail = f.read()[-3000:]
        print(f"{name}: exit {proc.returncode}; the end of {err_path}:\n{tail}", flush=True)
    return result


def _child_argv(kind: str, lmdb_dir: str, keep: str = "") -> list[str]:
    return [sys.executable, os.path.abspath(__file__), f"--child={kind}", f"--workdir={lmdb_dir}",
            f"--keep={keep}", f"--batch_size={_BATCH_SIZE.value}",
            f"--train_steps={_TRAIN_STEPS.value}"]  # fmt: skip


def _dcgan() -> list[str]:
    script = os.path.join(os.path.dirname(sys.executable), "dcgan")
    if os.path.exists(script):
        return [script]
    return [sys.executable, "-c", "from keras_dcgan.cli.main import run; run()"]


def run_dedup(workdir: str, lmdb_dir: str) -> dict:
    help_text = subprocess.run(_dcgan() + ["dedup", "--help"], capture_output=True,
                               text=True).stdout  # fmt: skip
    keep = os.path.join(workdir, "keep.txt")
    groups = os.path.join(workdir, "groups.json")
    _remove(workdir, ("keep.txt", "groups.json", "dedup_hashes", "cache_dedup"))
    argv = _dcgan() + ["dedup", f"--dataset={lmdb_dir}", f"--output={keep}"]
    if "--groups" in help_text:
        argv.append(f"--groups={groups}")
    if "--hashes" in help_text:
        argv.append(f"--hashes={os.path.join(workdir, 'dedup_hashes')}")
    argv += _DEDUP_ARGS.value
    print("dedup: " + " ".join(argv[1:]), flush=True)
    result = measure("dedup", argv, workdir, os.path.join(workdir, "cache_dedup"), lmdb_dir)
    with open(os.path.join(workdir, "logs", "dedup.out")) as f:
        lines = [line for line in f.read().splitlines() if line.strip()]
    result["cli_summary"] = lines[-1] if lines else ""
    if result["rc"] == 0 and os.path.exists(keep):
        result.update(score_dedup(workdir, keep, groups if os.path.exists(groups) else None))
    return result


# ------------------------------------------------------------------------------------------
# Scoring dedup against the planted pairs


def _crop_boxes(records: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """[len(rows), 4] boxes (y0, x0, y1, x1) in the photo's own pixels."""
    from sklearn.datasets import load_sample_images

    height = load_sample_images().images[0].shape[0]
    r = records[rows]
    scales = np.geomspace(r[:, HEIGHT] / height, MAX_SCALE, NUM_LEVELS)[
        r[:, LEVEL], np.arange(len(r))
    ]
    y0, x0 = r[:, TOP] / scales, r[:, LEFT] / scales
    return np.stack([y0, x0, y0 + r[:, HEIGHT] / scales, x0 + r[:, WIDTH] / scales], 1)


def _overlapping(records: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Whether records a[i], b[i] are crops of the same photo, flip and colour with IoU >= 0.7."""
    same = np.all(records[a][:, [PHOTO, COLOUR, FLIP]] == records[b][:, [PHOTO, COLOUR, FLIP]], 1)
    box_a, box_b = _crop_boxes(records, a), _crop_boxes(records, b)
    inter = np.prod(
        np.clip(np.minimum(box_a[:, 2:], box_b[:, 2:]) - np.maximum(box_a[:, :2], box_b[:, :2]),
                0, None), 1,
    )  # fmt: skip
    area = lambda box: np.prod(box[:, 2:] - box[:, :2], 1)  # noqa: E731
    return same & (inter / (area(box_a) + area(box_b) - inter) >= OVERLAP_IOU)


def score_dedup(workdir: str, keep_path: str, groups_path: str | None) -> dict:
    num, seed = _NUM.value, _SEED.value
    index = {record_key(seed, i).decode(): i for i in range(num)}
    records = np.load(os.path.join(workdir, "records.npy"))
    base = np.arange(num)  # the original each record was made from
    planted = []
    with open(os.path.join(workdir, "planted.tsv")) as f:
        next(f)
        for line in f:
            copy, original, _ = line.rstrip("\n").split("\t")
            planted.append((index[copy], index[original]))
            base[index[copy]] = index[original]
    with open(keep_path) as f:
        kept = sum(1 for line in f if line.strip() and not line.startswith("#"))
    out = {"kept": kept, "duplicates": num - kept, "planted_pairs": len(planted)}
    if groups_path is None:  # keep-list only: a pair is found when one of the two was dropped
        with open(keep_path) as f:
            keep = {index[line.strip()] for line in f if line.strip() in index}
        found = sum(1 for c, o in planted if (c in keep) != (o in keep))
        dropped = [i for i in range(num) if i not in keep]
        paired = set(base[base != np.arange(num)].tolist()) | {c for c, _ in planted}
        in_pair = sum(1 for i in dropped if i in paired)
        out.update(recall=found / max(len(planted), 1), precision=in_pair / max(len(dropped), 1),
                   scored_from="keep-list (approximate: no --groups)")  # fmt: skip
        return out
    with open(groups_path) as f:
        groups = [[index[i] for i in g] for g in json.load(f)["groups"]]
    group_of = np.full(num, -1)
    reported = true = 0
    pairs_a, pairs_b = [], []
    for g, members in enumerate(groups):
        group_of[members] = g
        k = len(members)
        reported += k * (k - 1) // 2
        counts = collections.Counter(base[members].tolist())
        true += sum(c * (c - 1) // 2 for c in counts.values())
        if k <= 100:
            for i in range(k):
                for j in range(i + 1, k):
                    if base[members[i]] != base[members[j]]:
                        pairs_a.append(members[i])
                        pairs_b.append(members[j])
    found = sum(1 for c, o in planted if group_of[c] >= 0 and group_of[c] == group_of[o])
    overlap = 0
    if pairs_a:
        overlap = int(_overlapping(records, np.array(pairs_a), np.array(pairs_b)).sum())
    sizes = [len(g) for g in groups]
    out.update(
        groups=len(groups), largest_group=max(sizes, default=0), reported_pairs=reported,
        true_pairs=true, overlap_pairs=overlap, found_planted=found,
        recall=found / max(len(planted), 1), precision=true / reported if reported else 1.0,
        precision_with_overlaps=(true + overlap) / reported if reported else 1.0,
        scored_from="groups",
    )  # fmt: skip
    return out


# ------------------------------------------------------------------------------------------
# The table


def _fit(points) -> tuple[float, float] | None:
    """Least-squares (fixed, per image) through (count, value) points, when the counts span at
    least a factor of 4 and reach FIT_MIN_NUM (smaller ones give a slope of noise)."""
    points = [(n, v) for n, v in points if n > 0]
    counts = [n for n, _ in points]
    if len(points) < 2 or max(counts) < max(4 * min(counts), FIT_MIN_NUM):
        return None
    slope, intercept = np.polyfit(counts, [v for _, v in points], 1)
    return float(intercept), max(float(slope), 0.0)


def _previous_runs(path: str | None) -> list[dict]:
    if not path or not os.path.exists(path):
        return []
    runs = []
    with open(path) as f:
        for line in f:
            try:
                runs.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return runs


def _hms(seconds: float) -> str:
    if seconds < 100:
        return f"{seconds:.1f} s"
    if seconds < 6000:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


TABLE_NOTES = """\
LSUN time = fixed + us/image x 3,033,042; fixed = the step's wall time less its work on the images
(Python, imports, model build, warm-up step). dedup is a black box: its fixed part is the startup
step's, and its per-image part includes training the autoencoder on min(N, --train_samples =
100,000) images, so from N < 100,000 it is an upper bound. epoch: per image read (after the
keep-list). train: the median step / batch, i.e. one epoch of paper64 on this machine.
peak RSS: VmHWM, which counts file pages mapped in (TensorFlow's libraries, ~390 MiB, and
data.mdb's pages: page cache, given back under pressure); anon: the peak of the anonymous part
(sampled every 0.1 s, and at the end of the work): what must fit in memory.
LSUN anon = that peak as measured, or (*) a least-squares line fixed + per-image x N through the
runs in --results with the same --short_side and --quality, N at least 4x apart and one >= 50,000
(* on a time: fixed + that line fitted to the per-image part)."""


def summarize(steps: dict, previous: list[dict]) -> None:
    """Adds per-image costs and extrapolations to `steps`; prints the table."""
    num = _NUM.value
    startup = steps.get("startup", {})
    same = [
        r for r in previous
        if r.get("settings", {}).get("short_side") == _SHORT_SIDE.value
        and r.get("settings", {}).get("quality") == _QUALITY.value
        and r.get("settings", {}).get("num") != num
    ]  # fmt: skip
    print(
        f"\n{'step':<12} {'wall':>8} {'fixed':>8} {'us/image':>9} {'peak RSS':>9} {'anon':>9} "
        f"{'LSUN time':>11} {'LSUN anon':>11}   (N = {num:,}; LSUN = {LSUN_BEDROOMS:,})"
    )
    for name, s in steps.items():
        if s.get("rc"):
            print(f"{name:<12} failed (exit {s['rc']})")
            continue
        # the part that grows with the images: var_s over count images
        s["count"] = s.get("images") or num
        if name == "startup":
            s["var_s"] = 0.0
        elif name == "dedup":
            s["var_s"] = max(s["wall_s"] - startup.get("wall_s", 0.0), 0.0)
        elif name == "train":
            s["var_s"], s["count"] = s["median_step_s"], _BATCH_SIZE.value
        else:
            s["var_s"] = s["work_s"]
        per_image = s["var_s"] / s["count"]
        fixed = s["wall_s"] - (s["work_s"] if name == "train" else s["var_s"])
        s["fixed_s"], s["us_per_image"] = fixed, per_image * 1e6
        s["lsun_s"], s["lsun_s_from"] = fixed + per_image * LSUN_BEDROOMS, "fixed + per-image x N"
        s["lsun_anon_mib"], s["lsun_anon_from"] = s["anon_mib"], "measured"
        others = [r["steps"][name] for r in same if name in r.get("steps", {})]
        others = [o for o in others if not o.get("rc") and "var_s" in o and "anon_mib" in o]
        if name != "startup":
            if name == "train":  # its memory grows with the ids listed, not with the batch
                points = [(o.get("num_listed", 0), o["anon_mib"]) for o in others]
                points.append((num, s["anon_mib"]))
            else:
                points = [(o["count"], o["anon_mib"]) for o in others]
                points.append((s["count"], s["anon_mib"]))
            anon = _fit(points)
            if anon:
                s["lsun_anon_mib"] = anon[0] + anon[1] * LSUN_BEDROOMS
                s["anon_fit"] = {"fixed_mib": anon[0], "bytes_per_image": anon[1] * 2**20}
                s["lsun_anon_from"] = f"fit over {len(others) + 1} runs"
        if name == "train":
            s["num_listed"] = num
        else:
            time_fit = _fit([(o["count"], o["var_s"]) for o in others] + [(s["count"], s["var_s"])])
            if time_fit and name != "startup":
                s["lsun_s"] = fixed + time_fit[0] + time_fit[1] * LSUN_BEDROOMS
                s["time_fit"] = {"fixed_s": time_fit[0], "us_per_image": time_fit[1] * 1e6}
                s["lsun_s_from"] = f"fit over {len(others) + 1} runs"
        lsun_time = "" if name == "startup" else _hms(s["lsun_s"])
        lsun_anon = "" if name == "startup" else f"{s['lsun_anon_mib']:,.0f} MiB"
        lsun_anon += "*" if s["lsun_anon_from"] != "measured" else ""
        lsun_time += "*" if s["lsun_s_from"].startswith("fit") else ""
        print(
            f"{name:<12} {s['wall_s']:7.1f}s {fixed:7.1f}s {per_image * 1e6:9.1f} "
            f"{s['rss_mib']:6,.0f}MiB {s['anon_mib']:6,.0f}MiB {lsun_time:>11} {lsun_anon:>11}"
        )
    print(TABLE_NOTES)


# ------------------------------------------------------------------------------------------


def main(argv):
    del argv
    if _CHILD.value:
        out = _child(_CHILD.value, _WORKDIR.value)
        anon_kib = _memory_kib(os.getpid()).get("RssAnon", 0)  # with the work's data still alive
        out.update(started_at=_STARTED_AT, done_at=time.time(), anon_end_mib=anon_kib / 1024)
        print("RESULT " + json.dumps(out), flush=True)
        return
    workdir = os.path.abspath(_WORKDIR.value)
    os.makedirs(workdir, exist_ok=True)
    lmdb_dir = os.path.join(workdir, "lmdb")
    wanted = set(_STEPS.value)
    print(
        f"# {os.cpu_count()} CPUs, Python {platform.python_version()}; load average "
        f"{os.getloadavg()[0]:.2f}; N = {_NUM.value:,}, short side {_SHORT_SIDE.value}, quality "
        f"{_QUALITY.value}, dup_fraction {_DUP_FRACTION.value}, seed {_SEED.value}; {workdir}",
        flush=True,
    )
    run = {"time": datetime.datetime.now().isoformat(timespec="seconds"),
           "host": platform.node(), "cpus": os.cpu_count(), "num": _NUM.value,
           "settings": _settings(), "train_steps": _TRAIN_STEPS.value,
           "batch_size": _BATCH_SIZE.value, "evict": _EVICT.value,
           "load_before": os.getloadavg()[0], "commit": _commit()}  # fmt: skip
    if "write" in wanted:
        run["write"] = write_database(workdir)
    elif not os.path.isfile(os.path.join(workdir, "settings.json")):
        raise app.UsageError(f"No complete LMDB in {lmdb_dir}: add write to --steps.")
    else:
        with open(os.path.join(workdir, "settings.json")) as f:
            done = json.load(f)
        if done["settings"] != _settings():
            raise app.UsageError(
                f"{lmdb_dir} was written with {done['settings']}, not these settings: add write "
                "to --steps (it rewrites the database)."
            )
        run["write"] = {**done, "reused": True}
    steps = {}
    cache = os.path.join(workdir, "cache")
    if wanted - {"write"}:
        steps["startup"] = measure("startup", _child_argv("startup", lmdb_dir), workdir, cache,
                                   lmdb_dir)  # fmt: skip
        _report("startup", steps["startup"])
    if "keys" in wanted:
        shutil.rmtree(cache, ignore_errors=True)
        for name in ("keys_first", "keys_cached"):
            steps[name] = measure(name, _child_argv("keys", lmdb_dir), workdir, cache, lmdb_dir)
            _report(name, steps[name])
    if "dedup" in wanted:
        steps["dedup"] = run_dedup(workdir, lmdb_dir)
        _report("dedup", steps["dedup"])
    keep = os.path.join(workdir, "keep.txt")
    keep = keep if os.path.exists(keep) else ""
    for name in ("epoch", "train"):
        if name in wanted:
            steps[name] = measure(name, _child_argv(name, lmdb_dir, keep), workdir, cache, lmdb_dir)
            steps[name]["keep_list"] = keep
            _report(name, steps[name])
    previous = _previous_runs(_RESULTS.value)
    if steps:
        summarize(steps, previous)
    run["steps"] = steps
    run["load_after"] = os.getloadavg()[0]
    if _RESULTS.value:
        os.makedirs(os.path.dirname(os.path.abspath(_RESULTS.value)), exist_ok=True)
        with open(_RESULTS.value, "a") as f:
            f.write(json.dumps(run) + "\n")
        print(f"Appended this run to {_RESULTS.value}")


def _report(name: str, s: dict) -> None:
    head = f"{name}: {s['wall_s']:.1f} s wall, peak RSS {s['rss_mib']:,.0f} MiB"
    if s.get("rc"):
        print(f"{head}; FAILED (exit {s['rc']})", flush=True)
        return
    if name.startswith("keys"):
        detail = f"{s['count']:,} keys; open + all_ids {s['work_s']:.2f} s"
    elif name == "startup":
        detail = f"import TF + keras_dcgan.data {s['import_s']:.1f} s, + keras, models, dedup "
        detail += f"{s['work_s']:.1f} s"
    elif name == "dedup":
        detail = f"{_NUM.value / s['wall_s']:,.0f} images/s overall"
        if "duplicates" in s:
            detail += (
                f"; {s['duplicates']:,} duplicates removed ({s['kept']:,} kept); planted pairs "
                f"{s['planted_pairs']:,}: recall {s['recall']:.3f}, precision {s['precision']:.3f}"
            )
            if s["scored_from"] == "groups":
                detail += (
                    f" ({s['reported_pairs']:,} reported pairs, {s['true_pairs']:,} planted, "
                    f"{s['overlap_pairs']:,} overlapping crops of unrelated records: precision "
                    f"counting those {s['precision_with_overlaps']:.3f}; {s['groups']:,} groups, "
                    f"largest {s['largest_group']})"
                )
            else:
                detail += f" ({s['scored_from']})"
        detail += f"\n  dcgan dedup said: {s['cli_summary']}"
    elif name == "epoch":
        detail = (
            f"{s['batches']:,} batches, {s['images']:,} images in {s['work_s']:.1f} s = "
            f"{s['images'] / s['work_s']:,.0f} images/s (first batch after {s['first_batch_s']:.1f}"
            f" s); keep-list {'yes' if s['keep_list'] else 'no'}; {s['skip_summary']}"
        )
    elif name == "train":
        steps = ", ".join(f"{t:.2f}" for t in s["step_s"])
        detail = (
            f"warm-up step {s['warmup_s']:.1f} s, steps {steps} s: median {s['median_step_s']:.2f}"
            f" s = {s['images_per_s']:.1f} images/s; build {s['build_s']:.1f} s; keep-list "
            f"{'yes' if s['keep_list'] else 'no'}"
        )
    else:
        detail = ""
    if s.get("exit_s", 0) > 3:
        detail += f"; the process took {s['exit_s']:.1f} s to exit"
    print(f"{head}; {detail}", flush=True)


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, cwd=os.path.dirname(os.path.abspath(__file__)),
                              timeout=10).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return ""


if __name__ == "__main__":
    app.run(main)
