"""Seeding and RNG capture: a restored state draws the same numbers, in every library."""

from __future__ import annotations

import io
import os
import random

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from launcher import Module, Trainer
from launcher.train.sampler import make_resumable
from launcher.train.seed import load_rng_state, rng_state, seed_everything, seed_worker


def _draws() -> tuple:
    return random.random(), float(np.random.rand()), float(torch.rand(1))


def test_a_restored_state_draws_the_same_numbers() -> None:
    seed_everything(3)
    _draws()
    state = rng_state()
    expected = [_draws() for _ in range(3)]
    seed_everything(99)  # move every generator elsewhere
    load_rng_state(state)
    assert [_draws() for _ in range(3)] == expected


def test_the_state_survives_a_weights_only_checkpoint_round_trip() -> None:
    seed_everything(5)
    buffer = io.BytesIO()
    torch.save(rng_state(), buffer)
    expected = _draws()
    seed_everything(6)
    buffer.seek(0)
    load_rng_state(torch.load(buffer, weights_only=True))
    assert _draws() == expected


def test_python_state_is_one_tensor_and_old_list_states_still_load() -> None:
    """625 ints were 625 pickled objects on the checkpoint writer's (GIL-holding) thread."""
    seed_everything(7)
    state = rng_state()
    version, internal, gauss = state["python"]
    assert isinstance(internal, torch.Tensor) and internal.shape == (625,)
    expected = _draws()
    seed_everything(8)
    state["python"] = [version, internal.tolist(), gauss]  # as checkpoints before held it
    load_rng_state(state)
    assert _draws() == expected


# -- seed_everything makes two runs equal, as Lightning's -------------------------------------
class _Order(Module):
    """Records the order in which training samples arrive."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.seen: list[int] = []

    def training_step(self, batch, batch_idx):
        (x,) = batch
        self.seen.extend(int(v) for v in x)
        return (self.w * x.float()).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)

    def train_dataloader(self):
        return DataLoader(TensorDataset(torch.arange(32)), batch_size=4, shuffle=True)


def _order(tmp_path, name: str, seed_with) -> list[int]:
    seed_with()
    model = _Order()
    Trainer(max_epochs=2, logger=False, enable_progress_bar=False, enable_checkpointing=False,
            default_root_dir=tmp_path / name).fit(model)  # fmt: skip
    return model.seen


def test_seed_everything_makes_two_runs_see_the_same_data_order(tmp_path, monkeypatch):
    monkeypatch.delenv("PL_GLOBAL_SEED", raising=False)
    first = _order(tmp_path, "a", lambda: seed_everything(7))
    assert os.environ["PL_GLOBAL_SEED"] == "7"  # Lightning's variable, children inherit it
    second = _order(tmp_path, "b", lambda: seed_everything(7))
    other = _order(tmp_path, "c", lambda: seed_everything(8))
    assert first == second and sorted(first) == sorted(list(range(32)) * 2)
    assert first != other and first != list(range(32)) * 2  # shuffled, by the seed


def test_torch_manual_seed_alone_also_fixes_the_order(tmp_path, monkeypatch):
    # Lightning's RandomSampler draws its seed from torch's global generator.
    monkeypatch.delenv("PL_GLOBAL_SEED", raising=False)
    assert _order(tmp_path, "a", lambda: torch.manual_seed(3)) == _order(
        tmp_path, "b", lambda: torch.manual_seed(3)
    )


def test_seed_everything_follows_lightnings_rules(monkeypatch):
    monkeypatch.setenv("PL_GLOBAL_SEED", "11")
    assert seed_everything() == 11
    monkeypatch.delenv("PL_GLOBAL_SEED")
    with pytest.warns(UserWarning, match="No seed found, seed set to 0"):
        assert seed_everything() == 0
    with pytest.raises(ValueError, match="not in bounds"):
        seed_everything(-1)
    seed_everything(1, workers=True)
    assert os.environ["PL_SEED_WORKERS"] == "1"
    loader = make_resumable(DataLoader(TensorDataset(torch.arange(4)), num_workers=1), 0, 0, 1)
    assert loader.worker_init_fn is not None and loader.worker_init_fn.func is seed_worker
    seed_everything(1)
    assert os.environ["PL_SEED_WORKERS"] == "0"
