"""Flag parsing shared by the commands."""

from __future__ import annotations


def int_list(values, flag: str) -> list[int]:
    """The integers of a list flag (`--seeds=3,17,42`); a clear error names the flag otherwise."""
    try:
        return [int(v) for v in values]
    except ValueError:
        raise ValueError(f"--{flag} must be integers; got {values}.") from None


def seeds(seeds_flag, num: int) -> list[int]:
    """The seeds of `--seeds`, or 0..num-1 when it is unset (`--num`)."""
    if seeds_flag is not None:
        values = int_list(seeds_flag, "seeds")
        if not values:
            raise ValueError("--seeds is empty.")
        return values
    if num < 1:
        raise ValueError(f"--num must be positive; got {num}.")
    return list(range(num))
