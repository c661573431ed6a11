"""Dataclasses to and from JSON, with every value checked against the field's type on the way in.

For records that a program writes and later reads back from a file anyone may have edited or damaged
(`run.json`): `decode` either returns the dataclass with every field of its declared type, or raises
`DecodeError` naming the field ("tasks[2].attempts[0].exit_code: expected an integer, got 'x'"), never a
TypeError or KeyError from deep inside the reader.

Supported field types: int (a bool is not one), float (an int is one), str, bool, `JSON` (any JSON value),
Optional[X], list[X], tuple[X, ...] of fixed length, dict[str, X] and nested dataclasses. A field with a
default may be missing; one without may not. `field(key="from")` names a field that is a Python keyword in
the file; `omit_default=True` leaves a field at its default out of the file, as optional keys were before.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Optional, TypeVar, Union

from launcher.cluster.errors import UserError

JSON = Any  # a field holding any JSON value, kept as read
INT_RANGE = 2 ** 63  # integers are 64-bit, as everywhere they come from (steps, exit codes, pids)
T = TypeVar("T")


class DecodeError(UserError):
    """A value of the wrong type or shape; the message names where it is."""


def field(*, key: Optional[str] = None, omit_default: bool = False, **kwargs) -> Any:
    return dataclasses.field(metadata={"key": key, "omit_default": omit_default}, **kwargs)


def _key(f: dataclasses.Field) -> str:
    return f.metadata.get("key") or f.name


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _fail(where: str, expected: str, value: object) -> DecodeError:
    got = "an object" if isinstance(value, dict) else "a list" if isinstance(value, list) else _show(value)
    return DecodeError(f"{where or 'top level'}: expected {expected}, got {got}")


def decode(kind: Any, value: object, where: str = "") -> Any:
    """`value` (decoded JSON) as `kind`, checked all the way down; DecodeError naming the first bad field."""
    if kind is Any:
        return value
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]  # only Optional[X] is supported
        return decode(inner, value, where)
    if dataclasses.is_dataclass(kind):
        if not isinstance(value, dict):
            raise _fail(where, f"an object ({kind.__name__})", value)
        hints = typing.get_type_hints(kind)
        values = {}
        for f in dataclasses.fields(kind):
            key, inner = _key(f), f"{where}.{_key(f)}" if where else _key(f)
            if key in value:
                values[f.name] = decode(hints[f.name], value[key], inner)
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise DecodeError(f"{inner}: missing")
        return kind(**values)
    if origin is list:
        if not isinstance(value, list):
            raise _fail(where, "a list", value)
        return [decode(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is tuple:
        if not isinstance(value, list) or len(value) != len(args):
            raise _fail(where, f"a list of {len(args)}", value)
        return tuple(decode(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if origin is dict:
        if not isinstance(value, dict):
            raise _fail(where, "an object", value)
        return {k: decode(args[1], v, f"{where}.{k if k.isidentifier() else _show(k)}") for k, v in value.items()}
    if kind is bool:
        if type(value) is not bool:
            raise _fail(where, "true or false", value)
        return value
    if kind is int:
        if type(value) is not int or not -INT_RANGE <= value < INT_RANGE:
            raise _fail(where, "an integer", value)
        return value
    if kind is float:
        if type(value) not in (int, float) or (type(value) is int and not -INT_RANGE <= value < INT_RANGE):
            raise _fail(where, "a number", value)
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            raise _fail(where, "a string", value)
        return value
    raise TypeError(f"typed_json cannot decode {kind!r}")  # a field type of ours this module lacks: a bug


def encode(value: object) -> object:
    """A dataclass (or list, tuple, dict of them) as plain JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {}
        for f in dataclasses.fields(value):
            item = getattr(value, f.name)
            if f.metadata.get("omit_default") and item == _default(f):
                continue
            out[_key(f)] = encode(item)
        return out
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        return {k: encode(v) for k, v in value.items()}
    return value


def _default(f: dataclasses.Field) -> object:
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else dataclasses.MISSING
