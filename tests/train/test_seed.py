"""Seeding and RNG capture: a restored state draws the same numbers, in every library."""

from __future__ import annotations

import io
import random

import numpy as np
import torch

from launcher.train.seed import load_rng_state, rng_state, seed_everything


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
