"""`launcher.utilities`: Lightning's rank-zero helpers act on global rank 0 only."""

from __future__ import annotations

import logging
import subprocess
import sys
import warnings

import pytest

from launcher.utilities import (
    AttributeDict,
    rank_zero_debug,
    rank_zero_info,
    rank_zero_only,
    rank_zero_warn,
)


@pytest.fixture
def rank():
    saved = rank_zero_only.rank

    def set_rank(value: int) -> None:
        rank_zero_only.rank = value

    yield set_rank
    rank_zero_only.rank = saved


def test_rank_zero_only_runs_on_rank_zero_and_returns_the_default_elsewhere(rank):
    calls = []

    @rank_zero_only
    def record(x):
        calls.append(x)
        return x * 2

    rank(0)
    assert record(3) == 6
    rank(1)
    assert record(4) is None
    assert calls == [3]
    assert rank_zero_only(lambda: "yes", default="no")() == "no"


def test_warn_info_debug_only_on_rank_zero(rank, caplog):
    caplog.set_level(logging.DEBUG, logger="launcher.utilities.rank_zero")
    rank(1)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        rank_zero_warn("quiet")
    rank_zero_info("quiet info")
    assert seen == [] and caplog.records == []
    rank(0)
    with pytest.warns(UserWarning, match="loud"):
        rank_zero_warn("loud")
    rank_zero_info("loud info %d", 7)
    rank_zero_debug("loud debug")
    assert [r.getMessage() for r in caplog.records] == ["loud info 7", "loud debug"]


def test_rank_comes_from_the_cluster_environment():
    code = "from launcher.utilities import rank_zero_only; print(rank_zero_only.rank)"
    env = {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "3", out.stderr


def test_attribute_dict_is_the_hparams_type():
    hp = AttributeDict(lr=0.1)
    hp.batch_size = 32
    assert hp.lr == 0.1 and hp["batch_size"] == 32
