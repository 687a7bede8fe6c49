"""Peak memory and time of the streaming L2-SVM (`dcgan classify --solver=streaming`) at the
size of CIFAR-10 at paper32 (50,000 x 28,672 features), without a GAN: synthetic features with a
planted class structure are written chunk by chunk to .npy stores (never whole in memory), then
`streaming_svm.fit_streaming_svm` fits them as the command would.

    python bench/classify_memory.py --rows=10000                  # reduced size
    python bench/classify_memory.py --rows=50000 --dtype=float16  # CIFAR-10's size

Prints the peak resident memory (`ru_maxrss`) after each phase, the time, the passes over the
data, and the validation error (the classes are separable enough for a clearly-below-chance
error), next to what `LinearSVC` would need (32 bytes per value).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import time

import numpy as np

from keras_dcgan.analysis import features as F
from keras_dcgan.analysis import streaming_svm as S


def peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 2**30


def synthetic_store(path, rows, dim, classes, dtype, seed, chunk=1000):
    """Non-negative, sparse-ish features like D's pooled LeakyReLU maps: a class direction plus
    noise, written `chunk` rows at a time."""
    centers = np.random.default_rng(0).normal(size=(classes, dim)).astype(np.float32)
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, rows)
    store = S.FeatureStore.create(path, rows, dim, dtype)
    for start in range(0, rows, chunk):
        y = labels[start : start + chunk]
        x = 0.15 * centers[y] + rng.standard_normal((len(y), dim), dtype=np.float32)
        store.write(start, np.maximum(x, 0.2 * x))
    return store, labels


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000, help="training examples")
    parser.add_argument("--val_rows", type=int, default=5_000)
    parser.add_argument("--dim", type=int, default=28_672, help="paper32: 28,672")
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--dtype", default="float16", choices=S.FEATURE_DTYPES)
    parser.add_argument("--C", type=float, nargs="+", default=[1e-4])
    parser.add_argument("--max_iter", type=int, default=100)
    parser.add_argument("--folder", default=None, help="where the .npy files go (default: tmp)")
    args = parser.parse_args()
    folder = S.feature_folder(args.folder)
    print(f"{args.rows:,} x {args.dim:,} {args.dtype} features in {folder}; after imports: "
          f"peak RSS {peak_gib():.2f} GiB")  # fmt: skip
    try:
        t0 = time.perf_counter()
        train, y = synthetic_store(os.path.join(folder, "train.npy"), args.rows, args.dim,
                                   args.classes, args.dtype, 1)  # fmt: skip
        val, yv = synthetic_store(os.path.join(folder, "val.npy"), args.val_rows, args.dim,
                                  args.classes, args.dtype, 2)  # fmt: skip
        t1 = time.perf_counter()
        print(f"written {(train.nbytes + val.nbytes) / 2**30:.2f} GiB in {t1 - t0:.0f} s; "
              f"peak RSS {peak_gib():.2f} GiB")  # fmt: skip
        calls = []
        original = S._Objective.__call__

        def counted(self, theta):
            calls.append(1)
            return original(self, theta)

        S._Objective.__call__ = counted
        _, _, C, val_errors, converged = S.fit_streaming_svm(
            train, y, val, yv, args.C, max_iter=args.max_iter
        )
        t2 = time.perf_counter()
        print(f"fit: {t2 - t1:.0f} s, {len(calls)} passes ({(t2 - t1) / max(1, len(calls)):.1f} "
              f"s/pass), converged {converged}, C={C:g}, validation error "
              f"{100 * val_errors[C]:.2f}% (chance {100 * (1 - 1 / args.classes):.0f}%); "
              f"peak RSS {peak_gib():.2f} GiB")  # fmt: skip
        exact = args.rows * args.dim * F.BYTES_PER_FIT_VALUE / 2**30
        estimate = S.streaming_fit_bytes(args.dim, args.classes, args.dtype) / 2**30
        print(f"LinearSVC would need about {exact:.1f} GiB; streaming fit estimate "
              f"{estimate:.2f} GiB beyond the process")  # fmt: skip
    finally:
        if args.folder is None:
            shutil.rmtree(folder, ignore_errors=True)
        else:
            for name in ("train.npy", "val.npy"):
                path = os.path.join(folder, name)
                if os.path.exists(path):
                    os.remove(path)


if __name__ == "__main__":
    main()
