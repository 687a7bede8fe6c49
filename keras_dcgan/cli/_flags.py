"""Flag parsing shared by the commands, and flags derived from the config dataclasses."""

from __future__ import annotations

import dataclasses
import inspect
import re
import typing

from absl import flags

from keras_dcgan.errors import UserError

# A config field's flag is named after the field, except these (kept for old command lines).
FLAG_NAMES = {"synchronized_batch_norm": "sync_batch_norm"}


def int_list(values, flag: str) -> list[int]:
    """The integers of a list flag (`--seeds=3,17,42`); a clear error names the flag otherwise."""
    try:
        return [int(v) for v in values]
    except ValueError:
        raise UserError(f"--{flag} must be integers; got {values}.") from None


def seeds(seeds_flag, num: int) -> list[int]:
    """The seeds of `--seeds`, or 0..num-1 when it is unset (`--num`)."""
    if seeds_flag is not None:
        values = int_list(seeds_flag, "seeds")
        if not values:
            raise UserError("--seeds is empty.")
        return values
    if num < 1:
        raise UserError(f"--num must be positive; got {num}.")
    return list(range(num))


def field_docs(cls) -> dict[str, str]:
    """The `Attributes:` entries of a dataclass's docstring, by field name, as one line each.

    An entry is `name: text` or `name1, name2: text`, continued on more deeply indented lines.
    """
    lines = inspect.cleandoc(cls.__doc__ or "").splitlines()
    try:
        start = lines.index("Attributes:") + 1
    except ValueError:
        return {}
    docs: dict[str, str] = {}
    names: list[str] = []
    for line in lines[start:]:
        if line and not line.startswith(" "):
            break  # the next section
        entry = re.match(r"^ {4}([a-z_0-9, ]+):\s+(.*)$", line)
        if entry:
            names = [n.strip() for n in entry.group(1).split(",")]
            for name in names:
                docs[name] = entry.group(2)
        elif line.strip():
            for name in names:
                docs[name] += " " + line.strip()
    return docs


def _flag_kind(hint) -> str:
    """'bool', 'int', 'float', 'str' or 'list' for a field's type hint (Optional unwrapped)."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) is tuple:
        return "list"
    if args and len(args) == 1:  # X | None
        hint = args[0]
    for kind in (bool, int, float, str):
        if hint is kind:
            return kind.__name__
    raise TypeError(f"No flag type for {hint!r}.")


def define_config_flag(
    config_class,
    field: str,
    module_name: str,
    *,
    default=None,
    choices=None,
    default_text: str = "the preset's",
) -> flags.FlagHolder:
    """Defines the flag of one field of `config_class` (a config dataclass), owned by
    `module_name` so that `dcgan <command> --help` lists it.

    Its help is the class docstring's `Attributes:` entry, its type the field's type (`choices`
    makes an enum flag). The default None means `default_text` ("the preset's" value:
    `Config.with_overrides` ignores None); give `default` for commands without a preset.
    """
    name = FLAG_NAMES.get(field, field)
    help_ = field_docs(config_class).get(field, field)
    if default is None:
        help_ += f" (default: {default_text})"
    kind = _flag_kind(typing.get_type_hints(config_class)[field])
    if choices is not None:
        return flags.DEFINE_enum(name, default, list(choices), help_, module_name=module_name)
    define = {
        "bool": flags.DEFINE_boolean,
        "int": flags.DEFINE_integer,
        "float": flags.DEFINE_float,
        "list": flags.DEFINE_list,
        "str": flags.DEFINE_string,
    }[kind]
    return define(name, default, help_, module_name=module_name)


def define_config_flags(
    config_class, module_name: str, *, choices=None
) -> dict[str, flags.FlagHolder]:
    """`define_config_flag` for every field of `config_class`; returns {field: flag holder}."""
    choices = choices or {}
    return {
        f.name: define_config_flag(config_class, f.name, module_name, choices=choices.get(f.name))
        for f in dataclasses.fields(config_class)
    }


def values(holders: dict[str, flags.FlagHolder]) -> dict:
    """{field name: flag value} of the flags given on the command line (None for the others)."""
    return {name: holder.value for name, holder in holders.items()}
