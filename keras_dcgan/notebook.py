"""Small helpers for the Colab notebooks in `notebooks/` (they import the package, never copy it).

- `smoke_mode()`: whether the notebooks run in CI's small mode (`DCGAN_NOTEBOOK_SMOKE=1`: a tiny
  LMDB or folder made on the fly, a tiny model, a few steps, no install, no Drive, no download).

"The first N bedrooms" of the LSUN notebooks is `keras_dcgan.data.write_lmdb_subset`.
"""

from __future__ import annotations

import os

SMOKE_ENV = "DCGAN_NOTEBOOK_SMOKE"


def smoke_mode() -> bool:
    """True when `$DCGAN_NOTEBOOK_SMOKE` is "1" (how CI executes the notebooks)."""
    return os.environ.get(SMOKE_ENV, "") == "1"
