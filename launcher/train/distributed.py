"""The distributed strategy: process group, DDP wrapping and collectives.

    dist = Distributed(env, device, timeout_seconds=120)
    dist.setup()                      # init_process_group (gloo on CPU, NCCL on GPU)
    model = dist.shard(model)         # strategy="fsdp": FSDP2 in place (train/fsdp.py)
    model = dist.wrap(model)          # DistributedDataParallel when world_size > 1 (not fsdp)
    with dist.no_sync(model, not last_micro_step): loss.backward()

With one process every method is a cheap no-op, so the trainer never branches on it.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from typing import Any

import torch
import torch.distributed as torch_dist
from torch import nn

from launcher.cluster_env import ClusterEnvironment
from launcher.train import fsdp as fsdp_strategy

_NO_OP = contextlib.nullcontext()  # reusable and reentrant

_OPS = {
    "sum": torch_dist.ReduceOp.SUM,
    "max": torch_dist.ReduceOp.MAX,
    "min": torch_dist.ReduceOp.MIN,
    "mean": torch_dist.ReduceOp.SUM,  # divided by world size below
}


class Distributed:
    """DDP (or FSDP2 with `fsdp` settings) over the processes `ClusterEnvironment` describes."""

    def __init__(
        self,
        env: ClusterEnvironment,
        device: torch.device,
        timeout_seconds: float = 120.0,
        find_unused_parameters: bool = False,
        fsdp: fsdp_strategy.FSDPSettings | None = None,
    ) -> None:
        self.env = env
        self.device = device
        self.timeout_seconds = timeout_seconds
        self.find_unused_parameters = find_unused_parameters
        self.fsdp = fsdp
        self._fsdp_root: nn.Module | None = None  # the sharded model (fsdp)
        self._device_mesh: Any = None  # made in setup (fsdp)
        self._owns_group = False

    @property
    def strategy(self) -> str:
        """The strategy: "fsdp" or "ddp" (a resumed run must share the checkpoint's)."""
        return "fsdp" if self.fsdp is not None else "ddp"

    @property
    def device_mesh(self) -> Any:
        """strategy="fsdp": the ("data_parallel", "tensor_parallel") `DeviceMesh`, from
        `setup()` on (`Module.device_mesh`, as Lightning's ModelParallelStrategy); else None."""
        return self._device_mesh

    @property
    def world_size(self) -> int:
        return self.env.world_size

    @property
    def is_distributed(self) -> bool:
        return self.env.world_size > 1

    def setup(self) -> None:
        """Join the process group (unless Ray Train or the caller already made one).

        One process under FSDP joins a group of one (its device mesh needs a group); like any
        group this one owns, it lasts until `teardown()` (the worker's last call)."""
        self._join_group()
        if self.fsdp is not None and self._device_mesh is None:
            self._device_mesh = fsdp_strategy.data_parallel_mesh(self.device)

    def _join_group(self) -> None:
        if torch_dist.is_initialized():
            return
        if not self.is_distributed:
            if self.fsdp is not None:  # FSDP's device mesh needs a group, of one process here
                backend = "nccl" if self.device.type == "cuda" else "gloo"
                torch_dist.init_process_group(backend, store=torch_dist.HashStore(), rank=0,
                                              world_size=1)  # fmt: skip
                self._owns_group = True
            return
        backend = "nccl" if self.device.type == "cuda" else "gloo"
        # A dead peer must fail the job, not hang it until a 30-minute default timeout.
        os.environ.setdefault("TORCH_NCCL_ASYNC_ERROR_HANDLING", "1")
        timeout = datetime.timedelta(seconds=self.timeout_seconds)
        env = self.env
        tcp_store = torch_dist.TCPStore(
            env.main_address,
            env.main_port,
            env.world_size,
            is_master=env.global_rank == 0 and not env.agent_store,
            timeout=timeout,
        )
        # A restarted group shares torchrun's store with the dead one: namespace its keys by
        # restart round, or ranks would dial the dead processes' addresses.
        store = torch_dist.PrefixStore(f"launcher/attempt_{env.restart_count}", tcp_store)
        torch_dist.init_process_group(
            backend=backend, store=store, rank=env.global_rank, world_size=env.world_size,
            timeout=timeout,
        )  # fmt: skip
        self._owns_group = True

    def teardown(self) -> None:
        if self._owns_group and torch_dist.is_initialized():
            torch_dist.destroy_process_group()
            self._owns_group = False
        self._device_mesh = None  # its groups went with the process group

    def shard(self, model: Any, precision: str) -> Any:
        """strategy="fsdp": `fully_shard` the blocks and the root, in place; else `model`."""
        if self.fsdp is None:
            return model
        mesh = self._device_mesh["data_parallel"] if self._device_mesh is not None else None
        self._fsdp_root = fsdp_strategy.shard(model, self.fsdp, precision, self.device, mesh)
        return self._fsdp_root

    def wrap(self, model: nn.Module) -> nn.Module:
        if not self.is_distributed or self.fsdp is not None:  # FSDP shards in place instead
            return model
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(
            model, device_ids=device_ids, find_unused_parameters=self.find_unused_parameters
        )

    def no_sync(self, model: nn.Module, skip_sync: bool) -> contextlib.AbstractContextManager:
        """Skip the gradient all-reduce on non-final accumulation micro-steps."""
        if skip_sync and isinstance(model, nn.parallel.DistributedDataParallel):
            return model.no_sync()
        if skip_sync and self._fsdp_root is not None:
            return fsdp_strategy.no_sync(self._fsdp_root, skip_sync)
        return _NO_OP  # shared: entered every step

    def barrier(self) -> None:
        if self.is_distributed:
            torch_dist.barrier()

    def broadcast(self, obj: Any, src: int = 0) -> Any:
        """Every rank gets rank `src`'s `obj` (any picklable value)."""
        if not self.is_distributed:
            return obj
        box = [obj]
        torch_dist.broadcast_object_list(box, src=src)
        return box[0]

    def all_reduce(self, tensor: torch.Tensor, op: str = "sum", group: Any = None) -> torch.Tensor:
        """Reduce `tensor` across ranks ("sum", "mean", "max", "min"), or across the ranks of
        process `group`; returns it."""
        if not self.is_distributed:
            return tensor
        moved = tensor.to(self.device) if self.device.type == "cuda" else tensor
        torch_dist.all_reduce(moved, op=_OPS[op], group=group)
        if op == "mean":
            moved = moved / (self.world_size if group is None else torch_dist.get_world_size(group))
        return moved.to(tensor.device)

    def average_gradients(self, params: list[nn.Parameter]) -> None:
        """Average `params`' gradients over the ranks in place (manual optimization's
        backward); one all-reduce per device and dtype. Every rank passes the same list."""
        if not self.is_distributed or not params:
            return
        groups: dict[tuple[torch.device, torch.dtype], list[torch.Tensor]] = {}
        for p in params:
            if p.grad is not None:
                groups.setdefault((p.grad.device, p.grad.dtype), []).append(p.grad)
        for grads in groups.values():
            flat = torch.cat([g.reshape(-1) for g in grads])
            torch_dist.all_reduce(flat, op=torch_dist.ReduceOp.SUM)
            flat /= self.world_size
            offset = 0
            for g in grads:
                g.copy_(flat[offset : offset + g.numel()].view_as(g))
                offset += g.numel()

    def all_gather(
        self, tensor: torch.Tensor, group: Any = None, sync_grads: bool = False
    ) -> torch.Tensor:
        """Every rank's `tensor` stacked along a new first dimension (world size); one
        process gets `tensor` back unchanged, as Lightning's single-device strategy does."""
        if not self.is_distributed:
            return tensor
        tensor = tensor.contiguous()
        if sync_grads:
            from torch.distributed.nn.functional import all_gather

            return torch.stack(all_gather(tensor, group=group or torch_dist.group.WORLD))
        size = torch_dist.get_world_size(group)
        gathered = [torch.empty_like(tensor) for _ in range(size)]
        torch_dist.all_gather(gathered, tensor, group=group)
        return torch.stack(gathered)

    def all_gather_object(self, obj: Any) -> list[Any]:
        """Every rank's `obj` (any picklable value), indexed by global rank."""
        if not self.is_distributed:
            return [obj]
        gathered: list[Any] = [None] * self.world_size
        torch_dist.all_gather_object(gathered, obj)
        return gathered
