"""launcher.loggers: lazy names, the Logger contract's defaults, Lightning names we lack.

python -m pytest tests/loggers/test_package.py -x -q
"""

from __future__ import annotations

import subprocess
import sys
from argparse import Namespace

import pytest

import launcher.loggers as loggers
from launcher.loggers.base import Logger, add_prefix, params_dict, run_status


def test_importing_the_package_imports_neither_mlflow_nor_torch():
    code = (
        "import sys, launcher.loggers as l; l.Logger; l.CSVLogger; l.TensorBoardLogger;"
        "print(sorted(m for m in ('mlflow', 'torch', 'wandb') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_every_name_resolves_and_lightnings_others_name_the_alternative():
    for name in loggers.__all__:
        assert getattr(loggers, name) is not None
    assert issubclass(loggers.MLFlowLogger, loggers.MLflowLogger)
    for name in ("CometLogger", "NeptuneLogger"):
        with pytest.raises(ImportError, match="not supported: use MLFlowLogger"):
            getattr(loggers, name)
    # `from ... import` keeps the message (an AttributeError would be replaced by Python's)
    with pytest.raises(ImportError, match="CometLogger.*not supported: use MLFlowLogger"):
        from launcher.loggers import CometLogger  # noqa: F401
    with pytest.raises(AttributeError, match="no attribute 'Typo'"):
        loggers.Typo  # noqa: B018


def test_the_contract_defaults():
    class PrintLogger(Logger):
        name = "print"

    logger = PrintLogger()
    assert (logger.version, logger.save_dir, logger.log_dir, logger.experiment) == (None,) * 4
    assert logger.group_separator == "/" and logger.state_key == "print"
    logger.log_graph(object())
    logger.after_save_checkpoint(object())
    logger.save()
    logger.request_flush()()
    assert [run_status(s) for s in ("success", "failed", "finished", "KILLED")] == [
        "FINISHED", "FAILED", "FINISHED", "KILLED",
    ]  # fmt: skip
    assert params_dict(Namespace(a=1)) == {"a": 1} and params_dict(None) == {}
    assert add_prefix({"loss": 1}, "fold1") == {"fold1-loss": 1}
