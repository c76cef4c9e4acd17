"""Reading a recipe instead of importing it (`recipe_static`): the same classes, parameters and
errors as `load_recipe` + `resolve_overrides`, or "cannot tell" (None), never a different answer.

python -m pytest tests/cli/test_recipe_static.py -x -q
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from launcher.cli import recipe_static
from launcher.cli.recipe import UNKNOWN, _init_params, load_recipe, resolve_overrides
from launcher.errors import UserError

REPO = Path(__file__).resolve().parents[2]
RECIPES = sorted([*REPO.glob("recipes/*.py"), *REPO.glob("tests/recipes/*.py"),
                  *REPO.glob("bench/recipes/*.py")])  # fmt: skip


def _same_params(read: dict, imported: dict) -> None:
    assert list(read) == list(imported)
    for name, (param, hint) in read.items():
        if hint is UNKNOWN or param.default is UNKNOWN:
            continue  # a key set here goes to the import
        expected_param, expected_hint = imported[name]
        assert (param.default, param.kind, hint) == (
            expected_param.default, expected_param.kind, expected_hint
        ), name  # fmt: skip


def test_the_trainers_parameters_read_are_the_imported_ones() -> None:
    from launcher.train.trainer import Trainer

    read = recipe_static._trainer().params
    _same_params(read, _init_params(Trainer))
    known = [name for name, (_, hint) in read.items() if hint is not UNKNOWN]
    assert {"max_epochs", "max_steps", "precision", "devices", "log_every_n_steps"} <= set(known)


# Importing torchvision takes ~15 s on these machines: those recipes run with the slow tests.
@pytest.mark.parametrize("path", [
    pytest.param(p, id=str(p.relative_to(REPO)),
                 marks=[pytest.mark.slow] if "torchvision" in p.read_text() else [])
    for p in RECIPES
])  # fmt: skip
def test_every_recipe_in_the_repository_reads_as_it_imports(path: Path) -> None:
    import ast

    try:
        module, datamodule = recipe_static._receivers(ast.parse(path.read_text()), path, None)
    except recipe_static._Unsure:
        return  # the import answers; nothing to compare
    except UserError as exc:
        with pytest.raises(UserError) as imported:
            load_recipe(str(path))
        assert str(exc) == str(imported.value)
        return
    recipe = load_recipe(str(path))
    assert module.name == recipe.module_cls.__name__
    _same_params(module.params, _init_params(recipe.module_cls))
    assert (datamodule.name if datamodule else None) == (
        recipe.datamodule_cls.__name__ if recipe.datamodule_cls else None
    )
    if datamodule is not None:
        _same_params(datamodule.params, _init_params(recipe.datamodule_cls))


HEAD = "from typing import Literal, Optional\nimport launcher\nfrom launcher import DataModule\n"
MODEL = """
class Model(launcher.Module):
    def __init__(self, lr: float = 0.1, width: int = 8, act: Literal["relu", "gelu"] = "relu",
                 drop: Optional[float] = None, name="m", layers: list[int] = [1], *, flag=False):
        super().__init__()
"""
DATA = """
class Data(DataModule):
    def __init__(self, batch_size: int = 32, lr: float = 1.0):
        super().__init__()
"""
CASES = [
    (MODEL, {"lr": "0.5", "act": "GELU", "drop": "none", "name": "x", "layers": "[1, 2]",
             "flag": "yes", "trainer.max_steps": "7", "precision": "bf16-mixed"}),
    (MODEL, {"lrr": "1"}),
    (MODEL, {"width": "wide"}),
    (MODEL, {"act": "tanh"}),
    (MODEL, {"data.batch_size": "4"}),
    (MODEL + DATA, {"lr": "1"}),
    (MODEL + DATA, {"data.lr": "2", "model.lr": "3", "batch_size": "5"}),
    (MODEL + DATA + DATA.replace("class Data(", "class Data2("), {}),
    (MODEL + MODEL.replace("class Model(", "class Model2("), {}),
    ("class Helper:\n    pass\n", {}),
    (MODEL + "TRAINER = [1]\n", {}),
    (MODEL + "TRAINER = dict(max_epochs=1)\n", {"max_epochs": "3"}),
    ("\nclass Base(launcher.Module):\n    pass\n" + MODEL.replace("launcher.Module", "Base"),
     {"lr": "2"}),
    ("class Base(launcher.Module):\n    def __init__(self, k: int = 1):\n        pass\n\n"
     "class Model(Base):\n    pass\n", {"k": "2"}),
]  # fmt: skip


@pytest.mark.parametrize(("body", "overrides"), CASES, ids=[str(i) for i in range(len(CASES))])
def test_answers_and_errors_are_the_imports(tmp_path: Path, body: str, overrides: dict) -> None:
    path = tmp_path / "r.py"
    path.write_text(HEAD + textwrap.dedent(body))

    def imported() -> object:
        return resolve_overrides(load_recipe(str(path)), overrides)

    try:
        expected = imported()
    except UserError as exc:
        with pytest.raises(UserError) as read:
            recipe_static.check_recipe(str(path), None, overrides)
        assert str(read.value) == str(exc)
        return
    assert recipe_static.check_recipe(str(path), None, overrides) == expected


UNSURE = [
    "from helpers import Base\nclass Model(Base):\n    pass\n",
    "if True:\n    class Model(launcher.Module):\n        pass\n",
    "import dataclasses\n@dataclasses.dataclass\nclass Model(launcher.Module):\n    pass\n",
    "class Model(launcher.Module):\n    pass\nAlias = Model\n",
    "class Model(launcher.Module):\n    pass\nfrom conf import TRAINER\n",
    "class Model(launcher.Module):\n    pass\nTRAINER = make()\n",
]


@pytest.mark.parametrize("body", UNSURE, ids=[str(i) for i in range(len(UNSURE))])
def test_what_only_an_import_can_tell_is_left_to_it(tmp_path: Path, body: str) -> None:
    path = tmp_path / "r.py"
    path.write_text(HEAD + body)
    assert recipe_static.check_recipe(str(path), None, {}) is None


def test_a_set_key_whose_type_only_an_import_knows_is_left_to_it(tmp_path: Path) -> None:
    path = tmp_path / "r.py"
    path.write_text(HEAD + "import torch\nclass Model(launcher.Module):\n    def __init__("
                    "self, lr: float = 0.1, t: torch.Tensor = None, n=len('ab')):\n        pass\n")  # fmt: skip
    assert recipe_static.check_recipe(str(path), None, {"lr": "0.2"}) is None  # all-or-nothing
    assert recipe_static.check_recipe(str(path), None, {"trainer.max_time": "1"}) is None
    assert recipe_static.check_recipe(str(path), None, {}) is not None


def test_a_slurm_submission_checks_the_recipe_without_importing_torch(tmp_path: Path) -> None:
    """`launch RECIPE --backend slurm --dry-run`, bad keys included: no torch, no recipe import."""
    code = textwrap.dedent(
        """
        import sys, json
        from launcher.cli.app import main
        code = None
        try:
            main(sys.argv[1:])
        except SystemExit as exc:
            code = exc.code
        print(json.dumps([code, "torch" in sys.modules]))
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "LAUNCHER_HOME": str(tmp_path / "home")}
    recipe = str(REPO / "bench" / "recipes" / "mlp.py")
    base = [recipe, "--backend", "slurm", "--cluster", "local_slurm", "--output-dir",
            str(tmp_path / "out"), "--dry-run"]  # fmt: skip
    for extra, expected_code in (([], 0), (["--set", "lr=0.5", "--set", "max_steps=3"], 0),
                                 (["--set", "lrr=1"], 2), (["--set", "lr=abc"], 2)):  # fmt: skip
        done = subprocess.run([sys.executable, "-c", code, *base, *extra], env=env,
                              capture_output=True, text=True, cwd=tmp_path)  # fmt: skip
        exit_code, torch_imported = json.loads(done.stdout.strip().splitlines()[-1])
        assert (exit_code or 0, torch_imported) == (expected_code, False), done.stderr
        if expected_code == 2:
            assert "Valid keys" in done.stderr or "expected a float" in done.stderr
