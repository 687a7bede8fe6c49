"""`dcgan export`: write a run's generator as a TF Serving SavedModel version."""

from __future__ import annotations

from absl import flags

_MODEL_DIR = flags.DEFINE_string("model_dir", "runs/dcgan", "Run folder written by dcgan train.")
_EXPORT_BASE = flags.DEFINE_string(
    "export_base", "exports/dcgan", "TF Serving model base path; the version goes under it."
)
_VERSION = flags.DEFINE_integer("version", None, "Version number (default: latest + 1).")
_MAX_BATCH = flags.DEFINE_integer("max_batch", 1024, "Largest batch a request may carry.")
_MODEL_NAME = flags.DEFINE_string("model_name", "dcgan", "Model name in the warm-up requests.")


def main(argv: list[str]) -> int | None:
    from keras_dcgan.training import export_run

    path = export_run(
        _MODEL_DIR.value,
        _EXPORT_BASE.value,
        version=_VERSION.value,
        max_batch=_MAX_BATCH.value,
        model_name=_MODEL_NAME.value,
    )
    print(f"Exported {_MODEL_DIR.value} to {path}")
