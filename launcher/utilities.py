"""The helpers of Lightning's `lightning.pytorch.utilities` that recipes import.

    from launcher.utilities import AttributeDict, rank_zero_info, rank_zero_only, rank_zero_warn

    @rank_zero_only
    def save_samples(images): ...        # runs on global rank 0 only; elsewhere returns None

    rank_zero_warn("the learning rate looks high")     # one warning per job, not per rank

The rank is read through `ClusterEnvironment` (the only reader of rank variables), once, when
first needed; `rank_zero_only.rank` may be set by hand, as in Lightning.
"""

from __future__ import annotations

import functools
import logging
import pickle
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from launcher.errors import module_getattr
from launcher.train.module import AttributeDict

if TYPE_CHECKING:
    import torch

__all__ = [
    "AttributeDict",
    "grad_norm",
    "is_picklable",
    "move_data_to_device",
    "rank_zero_debug",
    "rank_zero_deprecation",
    "rank_zero_info",
    "rank_zero_only",
    "rank_zero_warn",
]

log = logging.getLogger("launcher.utilities.rank_zero")
T = TypeVar("T")


class _RankZeroOnly:
    """`@rank_zero_only`: the decorated callable runs on global rank 0 and returns `default`
    (None) on every other rank. `rank_zero_only.rank` is this process's global rank."""

    def __init__(self) -> None:
        self._rank: int | None = None

    @property
    def rank(self) -> int:
        if self._rank is None:
            from launcher.cluster_env import ClusterEnvironment

            self._rank = ClusterEnvironment.detect().global_rank
        return self._rank

    @rank.setter
    def rank(self, value: int) -> None:
        self._rank = int(value)

    def __call__(self, fn: Callable[..., T], default: T | None = None) -> Callable[..., T | None]:
        @functools.wraps(fn)
        def wrapped(*args: Any, **kwargs: Any) -> T | None:
            return fn(*args, **kwargs) if self.rank == 0 else default

        return wrapped


rank_zero_only = _RankZeroOnly()


def rank_zero_warn(message: str | Warning, stacklevel: int = 4, **kwargs: Any) -> None:
    """`warnings.warn(message)` on global rank 0 only (`category=` as in `warnings.warn`)."""
    if rank_zero_only.rank == 0:
        warnings.warn(message, stacklevel=stacklevel, **kwargs)


def rank_zero_info(*args: Any, stacklevel: int = 4, **kwargs: Any) -> None:
    """`logging.info` on global rank 0 only (logger `launcher.utilities.rank_zero`)."""
    if rank_zero_only.rank == 0:
        log.info(*args, stacklevel=stacklevel, **kwargs)


def rank_zero_debug(*args: Any, stacklevel: int = 4, **kwargs: Any) -> None:
    """`logging.debug` on global rank 0 only."""
    if rank_zero_only.rank == 0:
        log.debug(*args, stacklevel=stacklevel, **kwargs)


def rank_zero_deprecation(message: str | Warning, stacklevel: int = 5, **kwargs: Any) -> None:
    """A `DeprecationWarning` on global rank 0 only."""
    kwargs.setdefault("category", DeprecationWarning)
    rank_zero_warn(message, stacklevel=stacklevel, **kwargs)


def move_data_to_device(batch: Any, device: torch.device | str | int) -> Any:
    """Every tensor of a (nested) batch moved to `device`, as Lightning's helper."""
    import torch

    from launcher.train.resolve import move_to_device

    return move_to_device(batch, torch.device(device))


def is_picklable(obj: object) -> bool:
    """Whether `obj` survives `pickle.dumps`."""
    try:
        pickle.dumps(obj)
    except (pickle.PicklingError, TypeError, AttributeError):
        return False
    return True


def grad_norm(module: torch.nn.Module, norm_type: float | int | str,
              group_separator: str = "/") -> dict[str, torch.Tensor]:  # fmt: skip
    """Each parameter's gradient norm and their total, named as Lightning names them:

    self.log_dict(grad_norm(self, norm_type=2))   # in on_before_optimizer_step
    # {"grad_2.0_norm/net.weight": ..., "grad_2.0_norm_total": ...}
    """
    import torch

    norm = float(norm_type)
    if norm <= 0:
        raise ValueError(
            f"`norm_type` must be a positive number or 'inf' (infinity norm). Got {norm}"
        )
    norms = {f"grad_{norm}_norm{group_separator}{name}": p.grad.data.norm(norm)
             for name, p in module.named_parameters() if p.grad is not None}  # fmt: skip
    if norms:
        norms[f"grad_{norm}_norm_total"] = torch.tensor(list(norms.values())).norm(norm)
    return norms


# Lightning's other utilities, and what to use instead.
NOT_SUPPORTED = {
    "CombinedLoader": "one train loader per fit: combine datasets in the recipe (e.g. "
    "torch.utils.data.ConcatDataset) or return a dict from one Dataset",
    "GradClipAlgorithmType": "pass gradient_clip_algorithm='norm' or 'value' as a string",
    "LightningEnum": "use enum.Enum (str values) in the recipe",
    "disable_possible_user_warnings": "use warnings.filterwarnings('ignore', ...)",
    "find_shared_parameters": "compare parameter identities yourself (id(p))",
    "set_shared_parameters": "tie the weights in Module.configure_model or __init__",
    "is_shared_filesystem": "checkpoints go to the run directory, which every rank can read",
    "measure_flops": "use torch.utils.flop_counter.FlopCounterMode",
    "suggested_max_num_workers": "use len(os.sched_getaffinity(0)) // local world size",
}


__getattr__ = module_getattr("launcher.utilities", NOT_SUPPORTED)
