"""Argument checks shared by the whole package: each rule written once, each failure one line.

Dependency-free (no NumPy, TensorFlow or Keras), so that `keras_dcgan.config` validates without
them. Every check raises `keras_dcgan.errors.UserError` with a message that names the argument,
the rule and the value given, and returns the value in its canonical type (a Python `int` for an
integer given as `numpy.int64`), so that what is stored (e.g. in `config.json`) is plain JSON.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable

from keras_dcgan.errors import UserError


def is_int(value) -> bool:
    """An integer (Python or NumPy), not a bool."""
    return isinstance(value, numbers.Integral) and not _is_bool(value)


def _is_bool(value) -> bool:
    # NumPy's bool_ is not a numbers.Integral, but guard it by name without importing NumPy.
    return isinstance(value, bool) or type(value).__name__ == "bool_"


def is_number(value) -> bool:
    """A finite real number (int or float, Python or NumPy), not a bool."""
    return isinstance(value, numbers.Real) and not _is_bool(value) and math.isfinite(float(value))


def integer(value, name: str, minimum: int | None = None, optional: bool = False,
            rule: str | None = None) -> int | None:  # fmt: skip
    """`value` as an int, if it is an integer >= `minimum`; None passes when `optional`.

    The message says "{name} must be an integer >= {minimum}" (or `rule` in its place), with
    "or None" when `optional`."""
    if value is None and optional:
        return None
    if not is_int(value) or (minimum is not None and value < minimum):
        if rule is None:
            rule = "an integer" + ("" if minimum is None else f" >= {minimum}")
        raise UserError(f"{name} must be {rule}{' or None' if optional else ''}; got {value!r}.")
    return int(value)


def positive_int(value, name: str, optional: bool = False) -> int | None:
    """`value` as an int >= 1: "{name} must be a positive integer"."""
    return integer(value, name, 1, optional, rule="a positive integer")


def non_negative_int(value, name: str, optional: bool = False) -> int | None:
    """`value` as an int >= 0: "{name} must be a non-negative integer"."""
    return integer(value, name, 0, optional, rule="a non-negative integer")


def number(value, name: str, minimum: float | None = None, positive: bool = False) -> float:
    """`value` as a float, if it is a finite number (> 0 when `positive`, >= `minimum`)."""
    if (not is_number(value) or (positive and not value > 0)
            or (minimum is not None and value < minimum)):  # fmt: skip
        rule = "a positive number" if positive else "a finite number"
        rule += f" >= {minimum:g}" if minimum is not None else ""
        raise UserError(f"{name} must be {rule}; got {value!r}.")
    return float(value)


def unit_interval(value, name: str) -> float:
    """`value` as a float in [0, 1)."""
    if not is_number(value) or not 0 <= value < 1:
        raise UserError(f"{name} must be in [0, 1); got {value!r}.")
    return float(value)


def one_of(value, choices: Iterable, name: str):
    """`value` if it is one of `choices`."""
    choices = tuple(choices)
    try:
        ok = value in choices
    except TypeError:  # unhashable or incomparable
        ok = False
    if not ok:
        raise UserError(f"{name} must be one of {', '.join(map(str, choices))}; got {value!r}.")
    return value


def boolean(value, name: str) -> bool:
    """`value` if it is True or False."""
    if not isinstance(value, bool):
        raise UserError(f"{name} must be true or false; got {value!r}.")
    return value
