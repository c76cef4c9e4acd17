"""README.md's "Lightning -> launcher" table lists every public name of the installed Lightning,
and the names it says are not supported raise errors that say why."""

from __future__ import annotations

import importlib
import json
import re
import subprocess
from pathlib import Path

import pytest

from launcher import Trainer
from launcher.errors import NotSupportedError, UserError

REPO = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).parent / "scripts" / "public_api.py"
ROW = re.compile(r"^\| (?P<kind>[^|]+?) \| `(?P<name>[^`]+)` \| (?P<status>.+?) \|$", re.M)


def readme_table() -> dict[tuple[str, str], str]:
    text = (REPO / "README.md").read_text()
    section = text.split("## Lightning -> launcher", 1)[1].split("\n## ", 1)[0]
    return {(m["kind"], m["name"]): m["status"] for m in ROW.finditer(section)}


@pytest.fixture(scope="module")
def lightning_names(lightning_python) -> dict[str, list[str]]:
    done = subprocess.run([lightning_python, str(SCRIPT)], capture_output=True, text=True,
                          timeout=300, check=True)  # fmt: skip
    return json.loads(done.stdout)


@pytest.mark.slow  # starts Lightning's interpreter
def test_the_table_lists_every_public_lightning_name(lightning_names):
    table = readme_table()
    missing = [(kind, name) for kind, names in lightning_names.items() for name in names
               if (kind, name) not in table]  # fmt: skip
    assert not missing, f"add these to README.md's Lightning -> launcher table: {missing}"
    statuses = {status.split(" ", 1)[0].rstrip(":;,") for status in table.values()}
    assert statuses <= {"supported", "renamed", "different", "not"}, statuses


def _not_supported(kind: str) -> list[str]:
    return sorted(n for (k, n), s in readme_table().items() if k == kind and s.startswith("not"))


@pytest.mark.parametrize(("kind", "module"), [("callback", "launcher.callbacks"),
                                              ("logger", "launcher.loggers"),
                                              ("utility", "launcher.utilities")])  # fmt: skip
def test_names_the_table_says_we_lack_raise_an_import_error_with_the_reason(kind, module):
    names = _not_supported(kind)
    assert names
    package = importlib.import_module(module)
    for name in names:
        with pytest.raises(NotSupportedError, match=f"{name}.*not supported: "):
            getattr(package, name)


def test_trainer_arguments_and_attributes_the_table_says_we_lack_say_why():
    trainer = Trainer(logger=False, enable_progress_bar=False)
    for name in _not_supported("Trainer attribute"):
        with pytest.raises(AttributeError, match=f"Trainer.{name} .*not supported: "):
            getattr(trainer, name)
    for name in _not_supported("Trainer argument"):
        with pytest.raises(UserError, match=f"Trainer\\({name}=.*not supported"):
            Trainer(logger=False, **{name: "surely not the default"})


def test_precisions_the_table_says_we_lack_are_refused():
    from launcher.train.names import normalize_precision

    for name in _not_supported("precision"):
        with pytest.raises(UserError, match="not supported"):
            normalize_precision(name)
