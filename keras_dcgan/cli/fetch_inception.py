"""`dcgan fetch_inception`: download (once) and check the reference Inception graph of FID.

Fetches Google's inception-2015-12-05.tgz (about 85 MB) into the Keras cache, takes
classify_image_graph_def.pb out of it, checks it and prints its path and SHA-256. With --path,
checks a copy you brought (the .pb or the .tgz) instead, e.g. on an offline machine.
"""

from __future__ import annotations

from absl import flags

_PATH = flags.DEFINE_string(
    "path", None, "Check this .pb or .tgz instead of downloading (default: the Keras cache)."
)


def main(argv: list[str]) -> int | None:
    from keras_dcgan.evaluation import tf_inception

    path = tf_inception.resolve(_PATH.value, allow_download=_PATH.value is None)
    print(f"Reference Inception graph: {path}\nSHA-256: {tf_inception.sha256_of(path)}")
