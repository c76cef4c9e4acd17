"""Plain dicts (from YAML or JSON) into dataclasses, checked against their type hints.

    slurm = from_dict(SlurmConfig, {"partition": "gpu", "time_limit_minutes": 90}, "slurm")
    from_dict(SlurmConfig, {"partiton": "gpu"}, "slurm")
    # UserError: unknown key 'partiton' in slurm (did you mean 'partition'?). Valid keys: ...

The cluster config (`launcher.cli.cluster_config`) and the backends that read their own
section of it back from `launch.json` (`backends.slurm`, `backends.ray_config`) share this
check, so a misspelled or mistyped setting fails the same way wherever it is read.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from typing import TYPE_CHECKING, Any, Union

from launcher.errors import UserError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    T = typing.TypeVar("T", bound=DataclassInstance)
else:
    T = typing.TypeVar("T")


def from_dict(cls: type[T], data: object, where: str) -> T:
    """Build dataclass `cls` from `data`, checking every key and value against its fields.

    `where` prefixes error messages (e.g. "slurm"): `slurm.time_limit_minutes: expected an
    int, got 'abc'`. Unknown keys fail with the list of valid keys.
    """
    if not isinstance(data, dict):
        raise UserError(f"{where or 'config'}: expected a mapping, got {_describe(data)}")
    hints = typing.get_type_hints(cls)
    valid = [f.name for f in dataclasses.fields(cls)]
    unknown = [key for key in data if key not in valid]
    if unknown:
        close = difflib.get_close_matches(str(unknown[0]), valid, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        section = f" in {where}" if where else ""
        raise UserError(
            f"unknown key{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(repr(k) for k in unknown)}{section}{hint}. "
            f"Valid keys: {', '.join(valid)}"
        )
    values = {
        key: _check(hints[key], value, f"{where}.{key}" if where else key)
        for key, value in data.items()
    }
    return cls(**values)


def _check(annotation: Any, value: Any, where: str) -> Any:
    """Return `value` if it fits `annotation` (nested dataclasses are built); else UserError."""
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in (o for o in options if o is not type(None)):
            try:
                return _check(option, value, where)
            except UserError as exc:
                errors.append(exc)
        if len(errors) == 1:
            raise errors[0]
        raise UserError(f"{where}: expected {_type_name(annotation)}, got {_describe(value)}")
    if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
        return from_dict(annotation, value if value is not None else {}, where)
    if annotation is Any:
        return value
    if origin is list:
        if not isinstance(value, list):
            raise UserError(f"{where}: expected a list, got {_describe(value)}")
        (item_type,) = typing.get_args(annotation) or (Any,)
        return [_check(item_type, item, f"{where}[{i}]") for i, item in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise UserError(f"{where}: expected a mapping, got {_describe(value)}")
        key_type, item_type = typing.get_args(annotation) or (Any, Any)
        return {
            _check(key_type, k, f"{where} key"): _check(item_type, v, f"{where}.{k}")
            for k, v in value.items()
        }
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        # YAML reads `qos: 1` or `time: 01:00` as numbers; sbatch wants text either way.
        return str(value)
    # bool is a subclass of int, but `time_limit_minutes: true` is a mistake.
    if isinstance(value, annotation) and not (annotation is int and isinstance(value, bool)):
        return value
    raise UserError(f"{where}: expected {_type_name(annotation)}, got {_describe(value)}")


def _type_name(annotation: Any) -> str:
    names = {int: "an int", float: "a number", bool: "true or false", str: "a string"}
    if annotation in names:
        return names[annotation]
    if typing.get_origin(annotation) in (Union, types.UnionType):
        options = [o for o in typing.get_args(annotation) if o is not type(None)]
        return " or ".join(_type_name(o) for o in options)
    return getattr(annotation, "__name__", str(annotation))


def _describe(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return f"a {'mapping' if isinstance(value, dict) else 'list'} ({value!r})"
    return repr(value)
