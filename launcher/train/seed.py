"""Seeding and RNG state capture, so a resumed run draws the same random numbers.

seed_everything(42)
state = rng_state()        # goes into the checkpoint
load_rng_state(state)      # on resume
"""

from __future__ import annotations

import logging
import os
import random
import warnings
from typing import Any, cast

import numpy as np
import torch

_MAX_SEED = np.iinfo(np.uint32).max


def seed_everything(seed: int | None = None, workers: bool = False, verbose: bool = True) -> int:
    """Seed Python, NumPy and torch (CPU and every CUDA device), as Lightning's does.

    seed_everything(42)                 # two runs now train identically (data order included)
    seed_everything(42, workers=True)   # and dataloader workers seed random/NumPy too

    Sets `PL_GLOBAL_SEED` (the Trainer's data-order seed when `Trainer(seed=)` is not given;
    child processes inherit it) and `PL_SEED_WORKERS`. Without `seed`: `PL_GLOBAL_SEED`'s,
    else 0 (with a warning).
    """
    if seed is None:
        env_seed = os.environ.get("PL_GLOBAL_SEED")
        if env_seed is None:
            seed = 0
            if verbose:
                warnings.warn(f"No seed found, seed set to {seed}", stacklevel=2)
        else:
            try:
                seed = int(env_seed)
            except ValueError:
                raise ValueError(
                    f"Invalid seed specified via PL_GLOBAL_SEED: {env_seed!r}"
                ) from None
    seed = int(seed)
    if not 0 <= seed <= _MAX_SEED:
        raise ValueError(f"{seed} is not in bounds, numpy accepts from 0 to {_MAX_SEED}")
    if verbose:
        logging.getLogger("launcher").info("Seed set to %d", seed)
    os.environ["PL_GLOBAL_SEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    os.environ["PL_SEED_WORKERS"] = str(int(workers))
    return seed


def global_seed() -> int | None:
    """The seed `seed_everything` set in this process or a parent (`PL_GLOBAL_SEED`), if any."""
    value = os.environ.get("PL_GLOBAL_SEED")
    return int(value) if value is not None else None


def seed_worker(worker_id: int, rank: int = 0) -> None:
    """A dataloader worker's `worker_init_fn` after `seed_everything(workers=True)`: seeds
    Python and NumPy too (torch seeds only itself per worker), distinct per worker and rank."""
    base_seed = torch.initial_seed() - worker_id
    seeds = np.random.SeedSequence([base_seed, worker_id, rank]).generate_state(4, np.uint64)
    torch.manual_seed(int(seeds[0]))
    random.seed((int(seeds[1]) << 32) | int(seeds[2]))
    np.random.seed(np.random.SeedSequence([base_seed, worker_id, rank]).generate_state(4))


def seeds_workers() -> bool:
    """Whether `seed_everything(workers=True)` asked for `seed_worker` on dataloaders."""
    return os.environ.get("PL_SEED_WORKERS") == "1"


def rng_state() -> dict[str, Any]:
    """The RNG states of this process, as plain tensors/lists (safe for weights_only loads)."""
    # The legacy tuple (get_state's default); the stub also allows the dict form.
    legacy = cast(tuple[str, np.ndarray, int, int, float], np.random.get_state())
    kind, keys, pos, has_gauss, cached = legacy
    version, internal, gauss = random.getstate()
    state: dict[str, Any] = {
        # One tensor, not 625 ints: a checkpoint's pickling cost is per object, and it is
        # paid on the writer thread while the training thread waits for the GIL. (Through
        # numpy: torch.tensor(tuple) takes 4x as long.)
        "python": [version, torch.from_numpy(np.array(internal, dtype=np.int64)), gauss],
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def load_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state()` captured."""
    version, internal, gauss = state["python"]
    if isinstance(internal, torch.Tensor):
        internal = internal.tolist()
    random.setstate((version, tuple(internal), gauss))  # older checkpoints: a list
    npst = state["numpy"]
    np.random.set_state(
        (
            npst["kind"],
            npst["keys"].numpy().astype(np.uint32),
            npst["pos"],
            npst["has_gauss"],
            npst["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
