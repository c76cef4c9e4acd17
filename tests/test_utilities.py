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


def test_grad_norm_names_and_values_as_lightning():
    import torch

    from launcher.utilities import grad_norm

    net = torch.nn.Linear(2, 1)
    assert grad_norm(net, 2) == {}  # no gradients yet
    net(torch.ones(3, 2)).sum().backward()
    norms = grad_norm(net, norm_type=2)
    assert list(norms) == ["grad_2.0_norm/weight", "grad_2.0_norm/bias", "grad_2.0_norm_total"]
    # d(sum)/dw = 3 per weight, d/db = 3: norms sqrt(18), 3, total sqrt(27)
    torch.testing.assert_close(norms["grad_2.0_norm_total"], torch.tensor(27.0).sqrt())
    with pytest.raises(ValueError, match="positive number"):
        grad_norm(net, 0)


def test_move_data_to_device_is_picklable_and_deprecation(rank):
    import torch

    from launcher.utilities import is_picklable, move_data_to_device, rank_zero_deprecation

    batch = {"x": [torch.ones(1)], "n": 1}
    assert move_data_to_device(batch, "cpu")["x"][0].device.type == "cpu"
    assert is_picklable(batch) and not is_picklable(lambda: None)
    rank_zero_only.rank = 0
    with pytest.warns(DeprecationWarning, match="old"):
        rank_zero_deprecation("old")


def test_lightning_utilities_we_lack_name_the_alternative():
    with pytest.raises(ImportError, match="CombinedLoader.*ConcatDataset"):
        from launcher.utilities import CombinedLoader  # noqa: F401
