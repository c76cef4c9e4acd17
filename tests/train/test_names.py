"""The one table of precision and accelerator names (launcher/train/names.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from launcher.errors import UserError
from launcher.train.names import (
    ACCELERATORS,
    CANONICAL_PRECISIONS,
    PRECISIONS,
    normalize_accelerator,
    normalize_precision,
)
from launcher.train.precision import build_precision


def test_every_listed_precision_builds_a_policy() -> None:
    """The CLI validates against PRECISIONS; each of them must also work in the Trainer."""
    assert {"fp16", "fp32", "8-mixed"} <= set(PRECISIONS)  # once missing from the CLI's list
    for name in PRECISIONS:
        canonical = normalize_precision(name)
        assert canonical in CANONICAL_PRECISIONS
        if canonical == "16-mixed":  # on a CPU: bf16, with Lightning's warning
            with pytest.warns(UserWarning, match="Using `precision='bf16-mixed'` instead"):
                assert build_precision(name, torch.device("cpu")).name == "bf16-mixed"
        elif canonical != "fp8":  # fp8 needs a Hopper-class GPU
            assert build_precision(name, torch.device("cpu")).name == canonical


def test_accelerators_and_their_aliases() -> None:
    assert [normalize_accelerator(a) for a in (*ACCELERATORS, "cuda", "GPU", None)] == [
        "auto", "cpu", "gpu", "gpu", "gpu", "auto",
    ]  # fmt: skip
    with pytest.raises(UserError, match="use auto, cpu, gpu or cuda"):
        normalize_accelerator("tpu")
    with pytest.raises(UserError, match="32-true, 16-mixed, bf16-mixed, fp8"):
        normalize_precision("fp4")


def test_the_cli_reads_the_same_table_without_torch() -> None:
    code = (
        "import sys; from launcher.cli import spec_builder; from launcher.train import names;"
        "assert spec_builder.PRECISIONS is names.PRECISIONS;"
        "assert spec_builder.ACCELERATORS is names.ACCELERATORS;"
        "assert 'torch' not in sys.modules, 'names.py imported torch'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
