"""Declare a setting once; its TOML key, ``SLR_EDGE_*`` variable, flag and checks follow from it.

A setting is a field of a frozen dataclass whose default comes from :func:`setting`::

    stride: int = setting(8, "extracted frames between inferences", ge=1, metavar="N")

The field's name is the TOML key (``stride``), the environment variable's suffix
(``SLR_EDGE_STRIDE``) and the flag (``--stride``, unless ``flag=`` names another); its annotation
is the type every layer converts to; ``ge``/``gt``/``le``/``choices`` are checked after the layers
are merged, and every float must be finite. Adding a setting is adding that one line.

Supported types: ``str``, ``int``, ``float``, ``bool``, ``tuple[str, ...]`` (a TOML list or a
comma-separated string), each optionally ``| None``.
"""

from __future__ import annotations

import argparse
import math
import sys
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from edge.util.files import read_regular_file
from edge.util.logs import error_line
from edge.util.redact import redact

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10 (JetPack 6): the tomli backport, a dependency there
    import tomli as tomllib

__all__ = ["ConfigError", "Declared", "Spec", "declared", "setting", "tomllib"]

_SPEC = "slovo.setting"
if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")

TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


class ConfigError(ValueError):
    """A configuration value or file that cannot be used; the message is one line for the user."""


@dataclass(frozen=True)
class Spec:
    """Everything about a setting except its name, type and default (those are the field's)."""

    help: str
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    choices: tuple[Any, ...] | None = None
    flag: str | None = None
    metavar: str | None = None


def setting(
    default: Any,
    help: str,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    choices: tuple[Any, ...] | None = None,
    flag: str | None = None,
    metavar: str | None = None,
) -> Any:
    """A dataclass field declaring one setting (see the module docstring)."""
    spec = Spec(help, ge=ge, gt=gt, le=le, choices=choices, flag=flag, metavar=metavar)
    return field(default=default, metadata={_SPEC: spec})


@dataclass(frozen=True)
class Declared:
    """One setting as the layers see it."""

    name: str
    kind: type  # str, int, float, bool or tuple (of str)
    nullable: bool
    default: Any
    spec: Spec

    @property
    def flag(self) -> str:
        return self.spec.flag or "--" + self.name.replace("_", "-")

    def env(self, prefix: str) -> str:
        return prefix + self.name.upper()


def _kind(annotation: Any) -> tuple[type, bool]:
    """``int`` → (int, False); ``str | None`` → (str, True); ``tuple[str, ...]`` → (tuple, False)."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        if len(rest) != 1:
            raise TypeError(f"unsupported setting type {annotation!r}")
        return _kind(rest[0])[0], True
    if typing.get_origin(annotation) is tuple and args == (str, Ellipsis):
        return tuple, False
    if annotation in (str, int, float, bool):
        return annotation, False
    raise TypeError(f"unsupported setting type {annotation!r}")


def declared(cls: type) -> dict[str, Declared]:
    """The settings of dataclass ``cls`` by name, in declaration order."""
    if cls not in _DECLARED:
        _DECLARED[cls] = _declare(cls)
    return _DECLARED[cls]


_DECLARED: dict[type, dict[str, Declared]] = {}


def _declare(cls: type) -> dict[str, Declared]:
    hints = typing.get_type_hints(cls)
    out: dict[str, Declared] = {}
    for f in fields(cls):
        if _SPEC not in f.metadata or f.default is MISSING:
            raise TypeError(f"{cls.__name__}.{f.name} is not declared with setting()")
        kind, nullable = _kind(hints[f.name])
        out[f.name] = Declared(f.name, kind, nullable, f.default, f.metadata[_SPEC])
    return out


def coerce(item: Declared, value: Any, origin: str) -> Any:
    """Convert one layer's value to the setting's type, or raise :class:`ConfigError` naming ``origin``."""
    kind = item.kind
    if value is None and item.nullable:
        return None
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in TRUE_WORDS:
            return True
        if isinstance(value, str) and value.strip().lower() in FALSE_WORDS:
            return False
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
    elif kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value.strip())
            except ValueError:
                pass
    elif kind is tuple:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            return tuple(value)
    elif kind is str and isinstance(value, (str, int)) and not isinstance(value, bool):
        return str(value)
    kind_name = "list of strings" if kind is tuple else kind.__name__
    raise ConfigError(f"{origin}: {item.name} must be {kind_name}, got {shown_value(value)}")


#: Longest value text an error message repeats (a config line can be megabytes long).
SHOWN_CHARS = 80


def shown_value(value: Any) -> str:
    """How an error message shows a value it refuses: never raw, never a secret, never long.

    A string is shown through :func:`edge.util.redact.redact` (a camera URL's password or
    ``?token=`` is masked) and cut to :data:`SHOWN_CHARS`; a TOML array or inline table is named,
    not repeated (its items may be credentials, and it may be nested 50,000 deep); a huge integer
    by its number of digits.
    """
    if isinstance(value, str):
        text = redact(value)
        return repr(text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "…")
    if isinstance(value, (list, tuple)):
        return f"an array of {len(value)} items"
    if isinstance(value, dict):
        return f"a table of {len(value)} keys"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**30:
        return f"an integer of {len(str(abs(value)))} digits"
    return repr(value)


def _bounds_text(spec: Spec) -> str:
    low = (
        None
        if spec.ge is None and spec.gt is None
        else ("[", spec.ge)
        if spec.ge is not None
        else ("(", spec.gt)
    )
    if low is not None and spec.le is not None:
        return f"in {low[0]}{low[1]:g}, {spec.le:g}]"
    if low is not None:
        return f"{'>=' if low[0] == '[' else '>'} {low[1]:g}"
    return f"<= {spec.le:g}"


def check(instance: T) -> T:
    """Check every declared setting of ``instance`` against its bounds and choices.

    Returns a copy with string choices in their declared spelling (``debug`` → ``DEBUG``).
    """
    changes: dict[str, Any] = {}
    for item in declared(type(instance)).values():
        value = getattr(instance, item.name)
        spec = item.spec
        if value is None:
            if not item.nullable:
                raise ConfigError(f"{item.name} must be set")
            continue
        if item.kind is float and not math.isfinite(value):
            raise ConfigError(f"{item.name} must be a finite number, got {value}")
        if isinstance(value, str) and "\x00" in value:  # no path, URL or name holds one; C APIs cut at it
            raise ConfigError(f"{item.name} must not contain a NUL character, got {shown_value(value)}")
        if spec.choices is not None:
            match = _choice(spec.choices, value)
            if match is None:
                listed = ", ".join(map(str, spec.choices[:-1])) + f" or {spec.choices[-1]}"
                raise ConfigError(f"{item.name} must be one of {listed}, got {shown_value(value)}")
            if match != value:
                changes[item.name] = match
        too_low = (spec.ge is not None and value < spec.ge) or (spec.gt is not None and value <= spec.gt)
        if too_low or (spec.le is not None and value > spec.le):
            raise ConfigError(f"{item.name} must be {_bounds_text(spec)}, got {shown_value(value)}")
    return replace(instance, **changes) if changes else instance


def _choice(choices: tuple[Any, ...], value: Any) -> Any:
    """The declared choice ``value`` stands for (strings match case-insensitively), or None."""
    for choice in choices:
        if value == choice or (
            isinstance(value, str) and isinstance(choice, str) and value.upper() == choice.upper()
        ):
            return choice
    return None


def load_toml(path: str | Path) -> dict[str, Any]:
    """The whole TOML file as a dict; a missing, unreadable or malformed file is a :class:`ConfigError`."""
    path = Path(path)
    try:
        return tomllib.loads(read_regular_file(path).decode("utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"config file {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message already ends with "(at line L, column C)".
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text") from None
    except RecursionError:  # tomllib recurses per nesting level: `[[[[...` 50,000 deep
        raise ConfigError(f"config file {path}: values nested too deep") from None
    except ValueError as exc:  # tomllib lets int()'s own errors through: an integer of 5000 digits
        reason = error_line(exc).split(";")[0]  # not int()'s advice to call sys.set_int_max_str_digits
        raise ConfigError(f"config file {path}: unusable value ({reason})") from None


def read_table(cls: type, data: Mapping[str, Any], origin: str) -> dict[str, Any]:
    """Setting values from one TOML table; unknown keys and wrong types are :class:`ConfigError`."""
    known = declared(cls)
    values: dict[str, Any] = {}
    for raw_key, value in data.items():
        key = raw_key.replace("-", "_")
        if key not in known:
            raise ConfigError(f"{origin}: unknown key {shown_value(raw_key)} (known: {', '.join(known)})")
        values[key] = coerce(known[key], value, origin)
    return values


def read_toml(cls: type, path: str | Path, *, skip_tables: tuple[str, ...] = ()) -> dict[str, Any]:
    """Setting values from a TOML file's top level; unknown keys, wrong types, bad syntax: ConfigError.

    ``skip_tables`` names tables that belong to other programs sharing the file (the daemon skips
    ``[mqtt]``, which ``slr-mqtt`` reads); only tables are skipped, a plain key of that name is unknown.
    """
    data = load_toml(path)
    mine = {k: v for k, v in data.items() if not (k in skip_tables and isinstance(v, dict))}
    return read_table(cls, mine, f"config file {path}")


def read_env(cls: type, environ: Mapping[str, str], prefix: str) -> dict[str, Any]:
    """Setting values from ``<prefix><NAME>`` variables; unknown ``<prefix>*`` names are errors."""
    known = declared(cls)
    values: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith(prefix):
            continue
        key = name[len(prefix) :].lower()
        if key not in known:
            raise ConfigError(
                f"unknown environment variable {name} (known: {prefix}<{'|'.join(known).upper()}>)"
            )
        values[key] = coerce(known[key], value, f"environment {name}")
    return values


def read_overrides(cls: type, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Setting values given on the command line; ``None`` means "flag not given" and is skipped."""
    known = declared(cls)
    values: dict[str, Any] = {}
    for key, value in overrides.items():
        if key not in known:
            raise ConfigError(f"unknown option {key!r}")
        if value is not None:
            values[key] = coerce(known[key], value, f"option {known[key].flag}")
    return values


def _flag_type(item: Declared) -> Callable[[str], Any] | None:
    if item.kind in (int, float):
        return item.kind
    if item.kind is str and item.spec.choices is not None:
        choices = item.spec.choices

        def canonical(text: str) -> Any:
            match = _choice(choices, text)
            return text if match is None else match

        return canonical
    return None


def add_arguments(cls: type, parser: argparse.ArgumentParser) -> None:
    """One flag per setting; each defaults to None (not given), so lower layers stand."""
    for item in declared(cls).values():
        spec = item.spec
        shown = "" if item.default in (None, "") else f" (default {_shown(item.default)})"
        kwargs: dict[str, Any] = {"dest": item.name, "default": None, "help": spec.help + shown}
        if item.kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = _flag_type(item)
            if spec.metavar is not None:
                kwargs["metavar"] = spec.metavar
            if spec.choices is not None:
                kwargs["choices"] = spec.choices
        parser.add_argument(item.flag, **kwargs)


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, tuple):
        return ",".join(value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def flag_values(cls: type, args: argparse.Namespace) -> dict[str, Any]:
    """The settings' values from parsed flags (None where a flag was not given)."""
    return {name: getattr(args, name) for name in declared(cls)}
