"""Lightning's public names, by kind, as JSON on stdout: run with Lightning's interpreter.

    .venv-lightning/bin/python tests/lightning_compat/scripts/public_api.py

The kinds are the "kind" column of README.md's "Lightning -> launcher" table; the
LightningModule's names leave out those of torch.nn.Module, which it inherits.
"""

from __future__ import annotations

import inspect
import json
import typing
from collections.abc import Iterator
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.fabric.connector import _PRECISION_INPUT
from lightning.pytorch import callbacks, loggers, profilers, utilities


def public(obj: Any, leave_out: frozenset[str] = frozenset()) -> list[str]:
    return sorted(n for n in dir(obj) if not n.startswith("_") and n not in leave_out)


def literals(hint: Any) -> Iterator[str]:
    for arg in typing.get_args(hint):
        if typing.get_origin(arg) is typing.Literal:
            yield from (str(v) for v in typing.get_args(arg))
        else:
            yield from literals(arg)


print(json.dumps({
    "package": sorted(pl.__all__),
    "Trainer argument": list(inspect.signature(pl.Trainer.__init__).parameters)[1:],
    "Trainer attribute": public(pl.Trainer),
    "LightningModule": public(pl.LightningModule, frozenset(dir(torch.nn.Module))),
    "LightningDataModule": public(pl.LightningDataModule),
    "Callback": public(pl.Callback),
    "callback": sorted(callbacks.__all__),
    "logger": sorted(loggers.__all__),
    "utility": sorted(utilities.__all__),
    "profiler": sorted(profilers.__all__),
    "precision": sorted(set(literals(_PRECISION_INPUT))),
}))  # fmt: skip
