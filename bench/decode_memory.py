"""Peak memory of decoding one hostile or huge input, as the folder pipeline decodes it.

Run it under `/usr/bin/time -v` and read "Maximum resident set size"; the script also prints
its own peak (ru_maxrss) before and after the decode, and what the decoder did:

    /usr/bin/time -v .venv/bin/python bench/decode_memory.py --case=png16 --size=12000
    /usr/bin/time -v .venv/bin/python bench/decode_memory.py --case=nonimage --megabytes=1536
    /usr/bin/time -v .venv/bin/python bench/decode_memory.py --case=png16 --size=6000

Cases: `png16`, a 16-bit grayscale PNG of size x size (zeros, streamed through zlib: a few
hundred KB on disk, as an attacker's file); `rgba`, an 8-bit RGBA PNG; `nonimage`, a sparse
file of zeros (no disk space used). `--max_pixels=0` turns the pixel budget off. Only
`keras_dcgan/data/decode.py` is loaded (not TensorFlow), so the figures are the decoder's. With a
checkout that predates `decode_file` (e.g. `--repo=/path/to/old/checkout`), the old path runs:
the file read whole, then decoded.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import resource
import sys
import tempfile
import time


def _load(repo: str, package: str, module: str):
    """One module file of a checkout (keras_dcgan/<package>/<module>.py), without its package's
    __init__ (which loads TensorFlow)."""
    if repo not in sys.path:
        sys.path.insert(0, repo)  # keras_dcgan.config (no TensorFlow) for decode.py's import
    path = os.path.join(repo, "keras_dcgan", package, f"{module}.py")
    spec = importlib.util.spec_from_file_location(module, path)
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=["png16", "rgba", "nonimage"], default="png16")
    parser.add_argument("--size", type=int, default=12000, help="side of the PNG, pixels")
    parser.add_argument("--megabytes", type=int, default=1536, help="size of the non-image file")
    parser.add_argument("--max_pixels", type=int, default=None, help="budget (0: none)")
    parser.add_argument("--repo", default=os.path.dirname(os.path.dirname(__file__)) or ".")
    args = parser.parse_args()
    here = os.path.abspath(os.path.dirname(os.path.dirname(__file__)) or ".")
    synthetic = _load(here, "testing", "synthetic")
    decode = _load(os.path.abspath(args.repo), "data", "decode")
    folder = tempfile.mkdtemp(prefix="decode_memory_")
    path = os.path.join(folder, "input.png")
    if args.case == "nonimage":
        with open(path, "wb") as f:
            f.truncate(args.megabytes << 20)
    else:
        depth, color = (16, 0) if args.case == "png16" else (8, 6)
        synthetic.write_large_png(path, args.size, args.size, depth, color)
    size_mb = os.path.getsize(path) / 2**20
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    if hasattr(decode, "decode_file"):
        budget = {"max_pixels": None if args.max_pixels == 0 else args.max_pixels}
        if args.max_pixels is None:
            budget = {}
        run = lambda: decode.decode_file(path, 64, 3, **budget)  # noqa: E731
        how = f"decode_file (budget {getattr(decode, 'DEFAULT_MAX_PIXELS', None):,} px default)"
    else:

        def run():
            with open(path, "rb") as f:
                return decode.decode_image(f.read(), 64, 3)

        how = "old path: read whole, then decode_image"
    try:
        result = f"decoded to {run().shape}"
    except decode.SkippedImage as e:
        result = f"skipped: {e}"
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    os.remove(path)
    os.rmdir(folder)
    print(
        f"{args.case} ({args.size}x{args.size} px, " if args.case != "nonimage" else "nonimage (",
        end="",
    )
    print(f"{size_mb:.1f} MiB on disk) with {how}: {result} in {seconds:.2f} s; peak RSS "
          f"{before:.0f} MiB before the decode, {after:.0f} MiB after")  # fmt: skip


if __name__ == "__main__":
    main()
