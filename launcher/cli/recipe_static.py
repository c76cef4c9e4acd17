"""Check a recipe and its `--set` keys by reading it, not running it: submissions stay fast.

    typed = check_recipe("recipes/mnist.py", None, {"lr": "0.01"})   # Overrides, or None
    # None: only an import can tell (then `load_recipe` + `resolve_overrides`)

Importing a recipe imports torch and whatever the recipe imports: seconds before a SLURM or
Ray submission could say "submitted", in a process that never trains. Here the recipe's
source is parsed (`ast`): its top-level classes whose bases lead to `launcher.Module` /
`DataModule` (through the recipe's own imports and classes), their `__init__` keyword
parameters with literal defaults and plain annotations (int, float, bool, str, None, list,
dict, tuple, `X | Y`, Optional, Union, Literal, Any), and the Trainer's own from
`launcher/train/trainer.py`. The checks and messages are `recipe.py`'s (`resolve_for`).

Whenever the reading is not sure, `check_recipe` returns None and the caller imports: a base
class from another file, a class made in an `if`, a decorated class or `__init__`, a default
that is not a literal, an annotation naming another type for a key that is set, a TRAINER
that is not a dict display. The worker checks again after its own import, so nothing a
reading misses goes unchecked.
"""

from __future__ import annotations

import ast
import inspect
import typing
from pathlib import Path
from typing import Any

from launcher.cli.recipe import (
    UNKNOWN,
    CannotTell,
    Overrides,
    Receiver,
    check_syntax,
    needs_trainer,
    recipe_file,
    resolve_for,
)
from launcher.errors import UserError

_MODULE_BASES = {"launcher.Module", "launcher.LightningModule", "launcher.train.module.Module"}
_DATAMODULE_BASES = {"launcher.DataModule", "launcher.LightningDataModule",
                     "launcher.train.datamodule.DataModule"}  # fmt: skip
# Bases known not to be a Module or DataModule (the recipe's own helpers extend these).
_OTHER_ROOTS = ("torch.", "builtins.", "typing.", "dataclasses.", "abc.", "enum.")
_PLAIN = {"int": int, "float": float, "bool": bool, "str": str, "list": list, "dict": dict,
          "tuple": tuple, "object": object}  # fmt: skip
_TYPING = {"Optional", "Union", "Literal", "Any", "List", "Dict", "Tuple"}
_TRAINER_FILE = Path(__file__).resolve().parents[1] / "train" / "trainer.py"


class _Unsure(Exception):
    """The reading cannot say what an import would: the caller imports."""


def check_recipe(path: str, module_name: str | None, overrides: dict[str, str]) -> Overrides | None:
    """`resolve_overrides(load_recipe(path, module_name), overrides)` without importing the
    recipe (or torch): its `UserError`s, or the typed overrides; None when unsure."""
    file = recipe_file(path)
    source = file.read_text()
    check_syntax(file, source)
    try:
        module, datamodule = _receivers(ast.parse(source), file, module_name)
        trainer = _trainer() if needs_trainer(overrides) else None
        return resolve_for({"model": module, "data": datamodule, "trainer": trainer}, overrides)
    except (_Unsure, CannotTell):
        return None


def _receivers(
    tree: ast.Module, file: Path, module_name: str | None
) -> tuple[Receiver, Receiver | None]:
    """The Module and DataModule the recipe defines, with the errors `load_recipe` raises."""
    names = _imported_names(tree)
    classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}
    _check_plain_layout(tree, set(classes))
    kinds = {name: _kind(node, classes, names, set()) for name, node in classes.items()}
    modules = [name for name, kind in kinds.items() if kind == "module"]
    if not modules:
        raise UserError(
            f"{file} defines no Module: add a class that subclasses launcher.Module "
            "(e.g. `class MyModel(launcher.Module):`) to the recipe"
        )
    if module_name is not None:
        if module_name not in modules:
            raise UserError(
                f"--module {module_name}: no Module class of that name in {file}; "
                f"it defines: {', '.join(modules)}"
            )
        chosen = module_name
    elif len(modules) > 1:
        raise UserError(
            f"{file} defines several Modules ({', '.join(modules)}); "
            f"pick one with --module NAME, e.g. --module {modules[0]}"
        )
    else:
        chosen = modules[0]
    datamodules = [name for name, kind in kinds.items() if kind == "datamodule"]
    if len(datamodules) > 1:
        raise UserError(
            f"{file} defines several DataModules ({', '.join(datamodules)}); keep one per recipe"
        )
    _check_trainer_dict(tree, file)
    module = Receiver(chosen, _init_params(classes[chosen], classes, names))
    datamodule = None
    if datamodules:
        datamodule = Receiver(datamodules[0], _init_params(classes[datamodules[0]], classes, names))
    return module, datamodule


def _check_plain_layout(tree: ast.Module, classes: set[str]) -> None:
    """`_Unsure` unless the classes an import would find are the top-level `class` statements:
    none made in an `if`/`try`/loop or by a call, none bound to a second name, TRAINER not
    imported or set in a block."""
    functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
    for node in tree.body:
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        if _is_main_block(node):  # never runs on import: the recipe has its own module name
            continue
        for inner in ast.walk(node):
            if isinstance(inner, ast.ClassDef):
                raise _Unsure
            if isinstance(inner, ast.Name) and inner.id in classes | functions:
                raise _Unsure  # `Alias = Model`, `Model = make_model()`
            if isinstance(inner, ast.Name) and inner.id == "TRAINER":
                if not isinstance(node, ast.Assign | ast.AnnAssign):
                    raise _Unsure
            if isinstance(inner, ast.alias) and (inner.asname or inner.name) == "TRAINER":
                raise _Unsure


def _is_main_block(node: ast.stmt) -> bool:
    """`if __name__ == "__main__":`."""
    if not isinstance(node, ast.If) or not isinstance(node.test, ast.Compare):
        return False
    test = node.test
    sides = [test.left, *test.comparators]
    return (
        len(sides) == 2
        and isinstance(test.ops[0], ast.Eq)
        and any(isinstance(n, ast.Name) and n.id == "__name__" for n in sides)
        and any(isinstance(n, ast.Constant) and n.value == "__main__" for n in sides)
    )


def _imported_names(tree: ast.Module) -> dict[str, str]:
    """Names the recipe binds by its imports -> their dotted origin (`nn` -> `torch.nn`)."""
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    names[alias.asname] = alias.name
                else:
                    top = alias.name.split(".")[0]
                    names[top] = top
        elif isinstance(node, ast.ImportFrom):
            origin = "." * node.level + (node.module or "")
            for alias in node.names:
                names[alias.asname or alias.name] = f"{origin}.{alias.name}"
    return names


def _dotted(node: ast.expr, names: dict[str, str]) -> str | None:
    """`nn.Module` -> "torch.nn.Module" through the recipe's imports; None for other forms."""
    if isinstance(node, ast.Name):
        return names.get(node.id, f"builtins.{node.id}" if node.id in _PLAIN else node.id)
    if isinstance(node, ast.Attribute):
        head = _dotted(node.value, names)
        return f"{head}.{node.attr}" if head else None
    return None


def _kind(
    node: ast.ClassDef, classes: dict[str, ast.ClassDef], names: dict[str, str], seen: set[str]
) -> str | None:
    """What `issubclass` would say: "module", "datamodule" or None (neither); else `_Unsure`."""
    if node.decorator_list or node.keywords:  # a decorator or metaclass may make anything
        raise _Unsure
    seen = seen | {node.name}
    kinds: set[str] = set()
    for base in node.bases:
        dotted = _dotted(base, names)
        if dotted is None:
            raise _Unsure
        if dotted in _MODULE_BASES:
            kinds.add("module")
        elif dotted in _DATAMODULE_BASES:
            kinds.add("datamodule")
        elif dotted in classes and dotted not in names and dotted not in seen:
            kinds.add(_kind(classes[dotted], classes, names, seen) or "")
        elif not dotted.startswith(_OTHER_ROOTS) and not dotted.startswith("launcher."):
            raise _Unsure  # a base from another file: it may be a Module
    kinds.discard("")
    if len(kinds) > 1:
        raise _Unsure
    return kinds.pop() if kinds else None


def _init_params(
    node: ast.ClassDef, classes: dict[str, ast.ClassDef], names: dict[str, str]
) -> dict[str, tuple[inspect.Parameter, Any]]:
    """As `recipe._init_params`: keyword parameters of the `__init__` the class would use."""
    init = next((item for item in node.body if isinstance(item, ast.FunctionDef)
                 and item.name == "__init__"), None)  # fmt: skip
    if init is None:
        if any(isinstance(item, ast.AsyncFunctionDef | ast.Assign) and _binds_init(item)
               for item in node.body):  # fmt: skip
            raise _Unsure
        local = [b for b in node.bases if isinstance(b, ast.Name) and b.id in classes]
        if len(node.bases) == 1 and local:  # inherited from the recipe's own base class
            return _init_params(classes[local[0].id], classes, names)
        if len(node.bases) == 1 and _dotted(node.bases[0], names) in (
            _MODULE_BASES | _DATAMODULE_BASES
        ):
            return {}  # Module.__init__(self) and DataModule.__init__(self) take nothing
        raise _Unsure
    if init.decorator_list:
        raise _Unsure
    params = function_params(init, names)
    if any(hint is UNKNOWN for _, hint in params.values()):
        # `typing.get_type_hints` fails on one unresolvable name and then `_init_params`
        # goes by the defaults alone: whether it would, only the import knows.
        return {name: (param, UNKNOWN) for name, (param, _) in params.items()}
    return params


def _binds_init(item: ast.stmt) -> bool:
    if isinstance(item, ast.AsyncFunctionDef):
        return item.name == "__init__"
    return isinstance(item, ast.Assign) and any(
        isinstance(t, ast.Name) and t.id == "__init__" for t in item.targets
    )


def function_params(
    init: ast.FunctionDef, names: dict[str, str]
) -> dict[str, tuple[inspect.Parameter, Any]]:
    """name -> (parameter, annotation) of an `__init__`'s keyword parameters (not `self`);
    `UNKNOWN` where a default is not a literal or an annotation names another type."""
    args = init.args
    positional = args.posonlyargs + args.args
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults))
    defaults += args.defaults
    kinds: list[Any] = [inspect.Parameter.POSITIONAL_ONLY] * len(args.posonlyargs)
    kinds += [inspect.Parameter.POSITIONAL_OR_KEYWORD] * len(args.args)
    every = list(zip(positional, defaults, kinds, strict=True))[1:]  # drop self
    every += [(a, d, inspect.Parameter.KEYWORD_ONLY)
              for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True)]  # fmt: skip
    params = {}
    for arg, default, kind in every:
        if kind == inspect.Parameter.POSITIONAL_ONLY:
            continue
        value = inspect.Parameter.empty if default is None else _literal(default)
        hint = inspect.Parameter.empty if arg.annotation is None else _hint(arg.annotation, names)
        params[arg.arg] = (inspect.Parameter(arg.arg, kind, default=value), hint)
    return params


def _literal(node: ast.expr) -> Any:
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return UNKNOWN


def _hint(node: ast.expr, names: dict[str, str]) -> Any:
    """The annotation as `typing.get_type_hints` resolves it, for plain types; else UNKNOWN."""
    try:
        return _evaluate(node, names)
    except _Unsure:
        return UNKNOWN


def _evaluate(node: ast.expr, names: dict[str, str]) -> Any:
    if isinstance(node, ast.Constant):
        if node.value is None:
            return type(None)
        if isinstance(node.value, str):  # a string annotation: what it says
            try:
                inner = ast.parse(node.value, mode="eval").body
            except SyntaxError:
                raise _Unsure from None
            return _evaluate(inner, names)
        raise _Unsure
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return _evaluate(node.left, names) | _evaluate(node.right, names)
    if isinstance(node, ast.Subscript):
        base = _evaluate(node.value, names)
        items = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        if base is typing.Literal:
            values = tuple(_literal(item) for item in items)
            if any(v is UNKNOWN for v in values):
                raise _Unsure
            return typing.Literal[values]
        args = tuple(_evaluate(item, names) for item in items)
        return base[args if len(args) > 1 else args[0]]
    dotted = _dotted(node, names) if isinstance(node, ast.Name | ast.Attribute) else None
    if dotted is None:
        raise _Unsure
    if dotted.startswith("builtins.") and dotted[len("builtins.") :] in _PLAIN:
        return _PLAIN[dotted[len("builtins.") :]]
    for prefix in ("typing.", "typing_extensions."):
        if dotted.startswith(prefix) and dotted[len(prefix) :] in _TYPING:
            return getattr(typing, dotted[len(prefix) :])
    raise _Unsure


def _check_trainer_dict(tree: ast.Module, file: Path) -> None:
    """`TRAINER` must be a dict: a dict display or `dict(...)`; a literal of another type is
    `load_recipe`'s error; anything else only an import can tell."""
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        if not any(isinstance(t, ast.Name) and t.id == "TRAINER" for t in targets):
            continue
        is_dict_call = (isinstance(value, ast.Call) and isinstance(value.func, ast.Name)
                        and value.func.id == "dict")  # fmt: skip
        if isinstance(value, ast.Dict) or is_dict_call:
            continue
        literal = _literal(value)
        if literal is UNKNOWN:
            raise _Unsure
        if not isinstance(literal, dict):
            raise UserError(
                f"{file}: TRAINER must be a dict of Trainer arguments (e.g. TRAINER = "
                f"{{'max_epochs': 5}}), got {type(literal).__name__}"
            )


def _trainer() -> Receiver:
    """The Trainer's keyword parameters, read from launcher/train/trainer.py (no torch)."""
    tree = ast.parse(_TRAINER_FILE.read_text())
    names = _imported_names(tree)
    trainer = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Trainer")
    init = next(n for n in trainer.body if isinstance(n, ast.FunctionDef) and n.name == "__init__")
    return Receiver("Trainer", function_params(init, names))
