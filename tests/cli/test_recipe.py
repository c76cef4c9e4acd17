"""Recipe loading (`load_recipe`) and `--set` typing (`resolve_overrides`)."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from launcher.cli.recipe import load_recipe, resolve_overrides
from launcher.errors import UserError

RECIPE = """
from torch import nn
import launcher
from launcher.train.module import Module as ImportedBase  # imported names are not candidates


class TinyModel(launcher.Module):
    def __init__(self, hidden_dim: int = 8, lr=1e-3, dropout: float | None = None,
                 activation="relu", tag=None, mode: int | str = 1, use_bias=True, *args,
                 **kwargs):
        super().__init__()
        self.net = nn.Linear(4, hidden_dim)


class TinyData(launcher.DataModule):
    def __init__(self, batch_size: int = 16, data_dir: str = "./data", hidden_dim: int = 3):
        super().__init__()


TRAINER = {"max_epochs": 2}
"""


class FakeTrainer:
    """Stands in for launcher.train.trainer.Trainer: only its __init__ signature matters here."""

    def __init__(self, max_epochs: int | None = None, precision: str | int = "32-true",
                 fast_dev_run: int | bool = False, callbacks: list | None = None,
                 gradient_clip_val: float | None = None, lr: float = 0.0):  # fmt: skip
        pass


def write(tmp_path: Path, source: str, name: str = "recipe.py") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return str(path)


@pytest.fixture
def recipe(tmp_path: Path):
    return load_recipe(write(tmp_path, RECIPE, "tiny.py"))


def test_load_finds_classes_defined_in_the_file(recipe) -> None:
    assert recipe.module_cls.__name__ == "TinyModel"
    assert recipe.datamodule_cls.__name__ == "TinyData"
    assert recipe.trainer_defaults == {"max_epochs": 2}
    assert recipe.name == "tiny"
    assert recipe.module_cls.__module__ == recipe.python_module.__name__
    assert recipe.python_module.__name__ in sys.modules
    assert str(Path(recipe.path).parent) in sys.path


def test_each_load_gets_its_own_module(tmp_path: Path) -> None:
    path = write(tmp_path, RECIPE, "random.py")  # named like a stdlib module
    first, second = load_recipe(path), load_recipe(path)
    assert first.python_module is not second.python_module
    assert first.python_module.__name__ != second.python_module.__name__
    import random

    assert hasattr(random, "shuffle")  # the stdlib module was not shadowed


def test_recipe_may_import_its_neighbours(tmp_path: Path) -> None:
    (tmp_path / "helpers_for_recipe.py").write_text("WIDTH = 5\n")
    source = RECIPE + "\nfrom helpers_for_recipe import WIDTH\n"
    assert load_recipe(write(tmp_path, source)).python_module.WIDTH == 5


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        (lambda d: str(d / "missing.py"), "not found"),
        (lambda d: write(d, "x = 1", "recipe.txt"), "not a Python file"),
        (lambda d: str(d), "not a Python file"),
    ],
)
def test_bad_paths(tmp_path: Path, setup, expected: str) -> None:
    with pytest.raises(UserError, match=expected):
        load_recipe(setup(tmp_path))


def test_syntax_error_shows_file_line_and_code(tmp_path: Path) -> None:
    path = write(tmp_path, "import torch\n\ndef broken(:\n    pass\n")
    with pytest.raises(UserError) as info:
        load_recipe(path)
    assert f"{path}:3" in str(info.value)
    assert "def broken(:" in str(info.value)


def test_import_error_shows_the_exception(tmp_path: Path) -> None:
    path = write(tmp_path, "import torch\nimport not_a_real_package_xyz\n")
    with pytest.raises(UserError) as info:
        load_recipe(path)
    message = str(info.value)
    assert "No module named 'not_a_real_package_xyz'" in message
    assert f"{path}:2" in message


def test_no_module_class(tmp_path: Path) -> None:
    path = write(tmp_path, "from launcher.train.module import Module\nX = 1\n")
    with pytest.raises(UserError, match="defines no Module"):
        load_recipe(path)


def test_several_modules_need_module_flag(tmp_path: Path) -> None:
    source = RECIPE + "\nclass OtherModel(launcher.Module):\n    pass\n"
    path = write(tmp_path, source)
    with pytest.raises(UserError) as info:
        load_recipe(path)
    assert "TinyModel" in str(info.value) and "OtherModel" in str(info.value)
    assert "--module NAME" in str(info.value)
    assert load_recipe(path, "OtherModel").module_cls.__name__ == "OtherModel"
    with pytest.raises(UserError, match="no Module class of that name.*TinyModel"):
        load_recipe(path, "Nope")


def test_trainer_must_be_a_dict(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="TRAINER must be a dict"):
        load_recipe(write(tmp_path, RECIPE + "\nTRAINER = 3\n"))


def resolve(recipe, **overrides: str):
    return resolve_overrides(recipe, overrides, trainer_cls=FakeTrainer)


def test_overrides_are_typed_and_routed(recipe) -> None:
    result = resolve(
        recipe,
        dropout="0.5",
        activation="gelu",
        use_bias="no",
        batch_size="64",
        max_epochs="3",
        **{
            "model.hidden_dim": "32",
            "model.lr": "0.01",
            "data.hidden_dim": "7",
            "trainer.precision": "bf16-mixed",
        },
    )
    assert result.model == {
        "dropout": 0.5,
        "activation": "gelu",
        "use_bias": False,
        "hidden_dim": 32,
        "lr": 0.01,
    }
    assert result.data == {"batch_size": 64, "hidden_dim": 7}
    assert result.trainer == {"max_epochs": 3, "precision": "bf16-mixed"}
    assert isinstance(result.model["hidden_dim"], int)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("5", 5), ("2.5", 2.5), ("word", "word"), ("none", None)],
)
def test_untyped_none_default_tries_int_then_float_then_str(recipe, raw, expected) -> None:
    assert resolve(recipe, tag=raw).model == {"tag": expected}


@pytest.mark.parametrize(("raw", "expected"), [("3", 3), ("auto", "auto")])
def test_union_tries_each_type(recipe, raw, expected) -> None:
    assert resolve(recipe, mode=raw).model == {"mode": expected}


@pytest.mark.parametrize(("raw", "expected"), [("true", True), ("5", 5), ("0", False)])
def test_fast_dev_run_int_or_bool(recipe, raw, expected) -> None:
    # `int | bool`: "0" and "5" read as ints first; Trainer treats 0 as off either way.
    value = resolve(recipe, fast_dev_run=raw).trainer["fast_dev_run"]
    assert value == expected and (value is not True or expected is True)


def test_wrong_type_names_the_default(recipe) -> None:
    with pytest.raises(UserError) as info:
        resolve(recipe, **{"model.lr": "abc"})
    assert str(info.value) == (
        "--set model.lr=abc: expected a float (the default of TinyModel.lr is 0.001)"
    )
    with pytest.raises(UserError, match="hidden_dim=1.5: expected an int"):
        resolve(recipe, **{"model.hidden_dim": "1.5"})
    with pytest.raises(UserError, match="use_bias=maybe: expected a bool"):
        resolve(recipe, use_bias="maybe")


def test_ambiguous_bare_key_asks_for_a_prefix(recipe) -> None:
    with pytest.raises(UserError) as info:
        resolve(recipe, hidden_dim="4", lr="0.1")
    assert "--set model.hidden_dim=4 or --set data.hidden_dim=4" in str(info.value)
    with pytest.raises(UserError, match="prefix it"):
        resolve(recipe, lr="0.1")  # lr is a TinyModel and a FakeTrainer parameter
    assert resolve(recipe, **{"trainer.lr": "0.1"}).trainer == {"lr": 0.1}


def test_unknown_key_lists_valid_keys_by_group(recipe) -> None:
    with pytest.raises(UserError) as info:
        resolve(recipe, hiden_dim="4")
    message = str(info.value)
    assert "unknown key 'hiden_dim'; did you mean 'hidden_dim'?" in message
    assert "model (TinyModel): hidden_dim, lr, dropout" in message
    assert "data (TinyData): batch_size, data_dir, hidden_dim" in message
    assert "trainer (FakeTrainer): max_epochs, precision" in message
    assert "args" not in message.split("model (TinyModel):")[1].split("\n")[0]
    with pytest.raises(UserError, match="unknown key 'batch_size'"):
        resolve(recipe, **{"model.batch_size": "4"})


def test_unexpressible_type(recipe) -> None:
    with pytest.raises(UserError, match="callbacks=x: expected a list"):
        resolve(recipe, callbacks="x")
    assert resolve(recipe, callbacks="[1, 2]").trainer == {"callbacks": [1, 2]}


def test_data_key_without_datamodule(tmp_path: Path) -> None:
    only_model = RECIPE.split("class TinyData")[0]
    recipe = load_recipe(write(tmp_path, only_model))
    assert recipe.datamodule_cls is None
    with pytest.raises(UserError, match="no DataModule"):
        resolve(recipe, **{"data.batch_size": "4"})
