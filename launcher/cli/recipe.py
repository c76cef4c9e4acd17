"""Recipes: find the Module and DataModule in a recipe file, and type `--set` overrides.

    recipe = load_recipe("recipes/mnist.py")               # or load_recipe(path, "MNISTModel")
    recipe.module_cls, recipe.datamodule_cls, recipe.trainer_defaults
    resolve_overrides(recipe, {"lr": "0.01", "data.batch_size": "64"}).model   # {"lr": 0.01}

A recipe is a plain Python file defining one `launcher.Module` subclass, optionally one
`launcher.DataModule` subclass and a module-level `TRAINER = {...}` dict of Trainer defaults.
It is imported under its own module name (never exec'd into our globals); every mistake in
it becomes a `UserError` that names the fix.
"""

from __future__ import annotations

import ast
import difflib
import importlib.util
import inspect
import itertools
import sys
import traceback
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

from launcher.errors import UserError

__all__ = ["Overrides", "Recipe", "load_recipe", "resolve_overrides"]

_load_counter = itertools.count()


@dataclass
class Recipe:
    """A loaded recipe file and the classes found in it."""

    path: str  # absolute path of the .py file
    name: str  # file stem, e.g. "mnist"
    module_cls: type
    datamodule_cls: type | None = None
    trainer_defaults: dict[str, Any] = field(default_factory=dict)  # the recipe's TRAINER
    python_module: types.ModuleType | None = None


def load_recipe(path: str, module_name: str | None = None) -> Recipe:
    """Import the recipe at `path` and pick its Module class (`module_name` when it has several).

    Example: `load_recipe("mnist.py").module_cls(**overrides.model)`.
    """
    file = recipe_file(path)
    python_module = _import_file(file)

    from launcher.train.datamodule import DataModule
    from launcher.train.module import Module

    modules = _defined_subclasses(python_module, Module)
    if not modules:
        raise UserError(
            f"{file} defines no Module: add a class that subclasses launcher.Module "
            "(e.g. `class MyModel(launcher.Module):`) to the recipe"
        )
    if module_name is not None:
        chosen = [cls for cls in modules if cls.__name__ == module_name]
        if not chosen:
            raise UserError(
                f"--module {module_name}: no Module class of that name in {file}; "
                f"it defines: {', '.join(cls.__name__ for cls in modules)}"
            )
        module_cls = chosen[0]
    elif len(modules) > 1:
        raise UserError(
            f"{file} defines several Modules ({', '.join(cls.__name__ for cls in modules)}); "
            f"pick one with --module NAME, e.g. --module {modules[0].__name__}"
        )
    else:
        module_cls = modules[0]

    datamodules = _defined_subclasses(python_module, DataModule)
    if len(datamodules) > 1:
        raise UserError(
            f"{file} defines several DataModules "
            f"({', '.join(cls.__name__ for cls in datamodules)}); keep one per recipe"
        )
    trainer_defaults = getattr(python_module, "TRAINER", {})
    if not isinstance(trainer_defaults, dict):
        raise UserError(
            f"{file}: TRAINER must be a dict of Trainer arguments (e.g. TRAINER = "
            f"{{'max_epochs': 5}}), got {type(trainer_defaults).__name__}"
        )
    return Recipe(
        path=str(file),
        name=file.stem,
        module_cls=module_cls,
        datamodule_cls=datamodules[0] if datamodules else None,
        trainer_defaults=dict(trainer_defaults),
        python_module=python_module,
    )


def recipe_file(path: str) -> Path:
    """The recipe's absolute path; a `UserError` naming close matches when it is not a .py file."""
    file = Path(path).expanduser()
    if not file.exists():
        close = _close_recipes(file)
        hint = f"did you mean {' or '.join(close)}?" if close else "check the path"
        raise UserError(f"recipe {path!r} not found (looked for {file.resolve()}); {hint}")
    if file.is_dir() or file.suffix != ".py":
        raise UserError(f"recipe {path!r} is not a Python file; pass the recipe's .py file")
    return file.resolve()


def check_syntax(file: Path, source: str) -> None:
    """A `UserError` that shows the line and a caret when the recipe does not compile."""
    try:
        compile(source, str(file), "exec")
    except SyntaxError as exc:
        line = (exc.text or "").rstrip("\n")
        pointer = ""
        if line and exc.offset:
            pointer = "\n    " + " " * (exc.offset - 1 - (len(line) - len(line.lstrip()))) + "^"
        raise UserError(
            f"{file}:{exc.lineno}: syntax error in the recipe: {exc.msg}\n    {line.strip()}"
            f"{pointer}"
        ) from exc


def _close_recipes(file: Path) -> list[str]:
    """The .py files closest in name to a missing `file`, in its folder (or the closest folder).

    `recipes/digit.py` -> `["recipes/digits.py"]`; `recipe/digits.py` -> `["recipes/digits.py"]`.
    """
    folder = file.parent
    if not folder.is_dir():
        parent = folder.parent if str(folder.parent) else Path(".")
        siblings = [d.name for d in parent.iterdir() if d.is_dir()] if parent.is_dir() else []
        close_dirs = difflib.get_close_matches(folder.name, siblings, n=1, cutoff=0.6)
        if not close_dirs:
            return []
        folder = folder.with_name(close_dirs[0])
    names = [f.name for f in folder.glob("*.py")]
    return [
        str(folder / name) for name in difflib.get_close_matches(file.name, names, n=3, cutoff=0.75)
    ]


def _import_file(file: Path) -> types.ModuleType:
    check_syntax(file, file.read_text())

    # Recipes import helpers that sit next to them.
    folder = str(file.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    # A fresh, unique name per load: two recipes called `train.py` never collide, and a
    # recipe named like a library (`random.py`) never shadows it.
    stem = "".join(c if c.isalnum() else "_" for c in file.stem)
    name = f"launcher_recipe_{stem}"
    while name in sys.modules:
        name = f"launcher_recipe_{stem}_{next(_load_counter)}"
    spec = importlib.util.spec_from_file_location(name, file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Registered before running it: dataclasses and pickling look classes up by module name.
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        where = ""
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(file)]
        if frames:
            where = f" (at {file}:{frames[-1].lineno}: {(frames[-1].line or '').strip()})"
        fix = ""
        if isinstance(exc, ModuleNotFoundError):
            fix = f"; install {exc.name!r} or fix the import"
        raise UserError(
            f"recipe {file} failed to import: {type(exc).__name__}: {exc}{where}{fix}"
        ) from exc
    return module


def _defined_subclasses(python_module: types.ModuleType, base: type) -> list[type]:
    """Subclasses of `base` defined in `python_module` itself (not imported into it)."""
    return [
        obj
        for obj in vars(python_module).values()
        if inspect.isclass(obj)
        and issubclass(obj, base)
        and obj is not base
        and obj.__module__ == python_module.__name__
    ]


# -- `--set key=value` overrides -----------------------------------------------------------

GROUPS = ("model", "data", "trainer")


@dataclass
class Overrides:
    """Typed `--set` values, split by who receives them."""

    model: dict[str, Any] = field(default_factory=dict)  # Module(**model)
    data: dict[str, Any] = field(default_factory=dict)  # DataModule(**data)
    trainer: dict[str, Any] = field(default_factory=dict)  # Trainer(**trainer)


def resolve_overrides(
    recipe: Recipe, overrides: dict[str, str], trainer_cls: type | None = None
) -> Overrides:
    """Route each `key=value` to the Module, DataModule or Trainer and convert it to the type
    the receiving `__init__` expects. Keys may be bare (`lr`) or prefixed (`model.lr`,
    `data.batch_size`, `trainer.max_epochs`).

    Example: `resolve_overrides(recipe, {"lr": "0.01"}).model == {"lr": 0.01}`.
    """
    # The Trainer (and torch's heavier corners) only when a key may be meant for it.
    if trainer_cls is None and needs_trainer(overrides):
        from launcher.train.trainer import Trainer

        trainer_cls = Trainer
    targets: dict[str, type | None] = {
        "model": recipe.module_cls,
        "data": recipe.datamodule_cls,
        "trainer": trainer_cls,
    }
    receivers = {group: Receiver(cls.__name__, _init_params(cls)) if cls else None
                 for group, cls in targets.items()}  # fmt: skip
    return resolve_for(receivers, overrides)


@dataclass
class Receiver:
    """Who receives `--set` keys of one group: a class name and its `__init__` keyword
    parameters (name -> (parameter, resolved annotation or `inspect.Parameter.empty`))."""

    name: str
    params: dict[str, tuple[inspect.Parameter, Any]]


class CannotTell(Exception):
    """A parameter whose type or default only an import can tell (`recipe_static`)."""


UNKNOWN: Any = object()  # such a parameter's annotation or default, as `recipe_static` read it


def needs_trainer(overrides: dict[str, str]) -> bool:
    """Whether some key may be meant for the Trainer (bare or `trainer.`)."""
    prefixes = {key.split(".")[0] if "." in key else "" for key in overrides}
    return bool(prefixes - {"model", "data"})


def resolve_for(receivers: dict[str, Receiver | None], overrides: dict[str, str]) -> Overrides:
    """`resolve_overrides` on receivers, however they were found (imported or read)."""
    params = {group: r.params if r else {} for group, r in receivers.items()}
    result = Overrides()
    for key, raw in overrides.items():
        group, _, name = key.partition(".") if key.split(".")[0] in GROUPS else ("", "", key)
        if group:
            if receivers[group] is None:
                raise UserError(f"--set {key}={raw}: the recipe has no DataModule to receive it")
            if name not in params[group]:
                raise UserError(_unknown_key(key, raw, name, params, receivers))
        else:
            owners = [g for g in GROUPS if name in params[g]]
            if not owners:
                raise UserError(_unknown_key(key, raw, name, params, receivers))
            if len(owners) > 1:
                choices = " or ".join(f"--set {g}.{name}={raw}" for g in owners)
                raise UserError(
                    f"--set {key}={raw}: {name!r} is a parameter of "
                    f"{' and '.join(_owner(g, receivers) for g in owners)}; prefix it: {choices}"
                )
            group = owners[0]
        param, hint = params[group][name]
        if hint is UNKNOWN or param.default is UNKNOWN:
            raise CannotTell(f"{_owner(group, receivers)}.{name}")
        value = _convert(raw, hint, param.default)
        if value is _INVALID:
            expected = _type_name(hint, param.default)
            default = ""
            if param.default is not inspect.Parameter.empty:
                default = (
                    f" (the default of {_owner(group, receivers)}.{name} is {param.default!r})"
                )
            raise UserError(f"--set {key}={raw}: expected {expected}{default}")
        getattr(result, group)[name] = value
    return result


_INVALID = object()
_TRUE, _FALSE = {"true", "1", "yes", "y", "on"}, {"false", "0", "no", "n", "off"}
_NONE = {"none", "null"}
_ARTICLES = {int: "an int", float: "a float", bool: "a bool (true/false)", str: "a string"}


def _init_params(cls: type | None) -> dict[str, tuple[inspect.Parameter, Any]]:
    """Keyword parameters of `cls.__init__` -> (parameter, resolved annotation or empty)."""
    # Looked up on the class itself (what `cls.__init__` finds), not on an instance.
    init = inspect.getattr_static(cls, "__init__", object.__init__) if cls else object.__init__
    if init is object.__init__:
        return {}
    try:
        hints = typing.get_type_hints(init)
    except Exception:  # an annotation naming something the recipe never imported
        hints = {}
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    params = list(inspect.signature(init).parameters.values())[1:]  # drop self
    return {
        p.name: (p, hints.get(p.name, inspect.Parameter.empty)) for p in params if p.kind in kinds
    }


def _convert(raw: str, hint: Any, default: Any) -> Any:
    """`raw` as the type `hint` names, or the type of `default`; `_INVALID` when it doesn't fit."""
    if hint is inspect.Parameter.empty or hint is Any:
        if default is inspect.Parameter.empty or default is None:
            # No type to go by: the most specific reading wins.
            if raw.lower() in _NONE:
                return None
            return next(
                v for v in (_scalar(int, raw), _scalar(float, raw), raw) if v is not _INVALID
            )
        hint = type(default)
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        options = typing.get_args(hint)
        if type(None) in options and raw.lower() in _NONE:
            return None
        for option in (o for o in options if o is not type(None)):
            value = _convert(raw, option, inspect.Parameter.empty)
            if value is not _INVALID:
                return value
        return _INVALID
    if origin is Literal:
        for choice in typing.get_args(hint):
            if str(choice) == raw or (isinstance(choice, str) and choice.lower() == raw.lower()):
                return choice
        return _INVALID
    if hint in (int, float, bool, str):
        return _scalar(hint, raw)
    if origin in (list, tuple, dict) or hint in (list, tuple, dict):
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            return _INVALID
        container = origin or hint
        if container is tuple and isinstance(value, list):
            value = tuple(value)
        return value if isinstance(value, container) else _INVALID
    return _INVALID  # e.g. a callback object: not something a string can say


def _scalar(kind: type, raw: str) -> Any:
    if kind is bool:
        lowered = raw.lower()
        return True if lowered in _TRUE else False if lowered in _FALSE else _INVALID
    try:
        return kind(raw)
    except ValueError:
        return _INVALID


def _type_name(hint: Any, default: Any) -> str:
    if hint is inspect.Parameter.empty or hint is Any:
        hint = type(default)
    if hint is type(None):
        return "none"
    if typing.get_origin(hint) in (Union, types.UnionType):
        return " or ".join(_type_name(o, inspect.Parameter.empty) for o in typing.get_args(hint))
    if typing.get_origin(hint) is Literal:
        return "one of " + ", ".join(map(str, typing.get_args(hint)))
    if typing.get_origin(hint) in (list, tuple, dict):
        hint = typing.get_origin(hint)
    return _ARTICLES.get(hint, f"a {getattr(hint, '__name__', hint)}, which --set cannot express")


def _owner(group: str, receivers: dict[str, Receiver | None]) -> str:
    receiver = receivers[group]
    return receiver.name if receiver is not None else group


def _unknown_key(key: str, raw: str, name: str, params: dict, receivers: dict) -> str:
    every = [n for group in GROUPS for n in params[group]]
    close = difflib.get_close_matches(name, every, n=1)
    suggestion = f"; did you mean {close[0]!r}?" if close else "."
    lines = [f"--set {key}={raw}: unknown key {name!r}{suggestion}"]
    lines.append("Valid keys (prefix with model., data. or trainer. when a name is in several):")
    for group in GROUPS:
        if receivers[group] is not None:
            names = ", ".join(params[group]) or "(none)"
            lines.append(f"  {group} ({_owner(group, receivers)}): {names}")
    return "\n".join(lines)
