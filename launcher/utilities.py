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
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

from launcher.train.module import AttributeDict

__all__ = [
    "AttributeDict",
    "rank_zero_debug",
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
