"""How long a training step is blocked by an async checkpoint, against a synchronous `torch.save`.

    python bench/checkpoint.py             # ~1-2 minutes on 2 cores: ~100M params + Adam, 5 rounds
    python bench/checkpoint.py --quick     # < 60 s: ~34M params + Adam, 3 rounds
    python bench/checkpoint.py --sharded 2 [--quick]   # FSDP2 over 2 gloo processes, DCP

The state (issue 3): a stack of `Linear(4096, 4096)` layers (6 layers: 100.7M parameters)
after one real Adam step, so the optimizer holds both moments: 1.2 GB of float32 state,
arranged the way the Trainer checkpoints it (`{"state_dict": ..., "optimizer_states": [...],
"loops"}`).

Per round, interleaved:
- **sync**: `torch.save(state, path)`, what a hand-written loop does (returns once the bytes
  are in the page cache).
- **async**: `CheckpointManager(async_save=True).save(state, step)`; the blocked time is
  what `save()` takes to return: the copy of the state (`launcher.train.checkpoint_store.to_cpu`) plus
  starting the writer thread. Then `wait()` until the file, its fsync and the manifest are
  durable ("until durable", not blocking training).
- **resume**: `load_latest()`: SHA-256 verification plus `torch.load(weights_only=True)`.

Also measured, to see what the blocked time is made of: `to_cpu` alone, and copying into
buffers allocated once and reused (`copy_`), which avoids faulting in fresh pages on every
checkpoint. Target: blocked time <= 10% of the synchronous save.

`--sharded N`: the same layers sharded by FSDP2 (`fully_shard` per layer) over N CPU
processes (gloo), saved as the Trainer's sharded checkpoints are. Per round: **sync**: a
blocking `dcp.save` of the same shards (every rank writes its own); **async**:
`ShardedCheckpointManager(async_save=True).save()` on every rank, the blocked time being
rank 0's wait for `save()` to return (staging the shards into reused CPU buffers, the
async save's start), then until the manifest lists it. Also reported: the bytes each rank
wrote against the whole checkpoint (target ~1/N each). Target: blocked <= 10% of sync.

Needs about 5 GB of free memory (state, snapshot, reused buffers, a loaded copy) and 3 GB of
disk under `--dir` (default: the system temp dir).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from bench.common import fmt_spread, interleave, machine_line, paired_ratios, summary_line  # noqa: E402
from launcher.train.checkpoint_store import CheckpointManager, file_sha256, safe_load, to_cpu  # noqa: E402

WIDTH = 4096
TARGET = 0.10


def make_state(layers: int) -> dict:
    """Model + Adam state after one step, as the Trainer's checkpoint holds them."""
    torch.manual_seed(0)
    model = nn.Sequential(*[nn.Linear(WIDTH, WIDTH) for _ in range(layers)])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    model(torch.randn(4, WIDTH)).square().mean().backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return {
        "state_dict": model.state_dict(),
        "optimizer_states": [optimizer.state_dict()],
        "loops": {"fit_loop": {"epoch": 0, "global_step": 1, "batch_idx": 1}},
    }


def state_bytes(state) -> int:
    if isinstance(state, torch.Tensor):
        return state.numel() * state.element_size()
    if isinstance(state, dict):
        return sum(state_bytes(v) for v in state.values())
    if isinstance(state, (list, tuple)):
        return sum(state_bytes(v) for v in state)
    return 0


def tensors(state) -> list[torch.Tensor]:
    if isinstance(state, torch.Tensor):
        return [state]
    if isinstance(state, dict):
        return [t for v in state.values() for t in tensors(v)]
    if isinstance(state, (list, tuple)):
        return [t for v in state for t in tensors(v)]
    return []


def _sharded_worker(rank: int, world: int, port: int, layers: int, rounds: int,
                    tmp: str, out: dict) -> None:  # fmt: skip
    """One rank of `--sharded`: FSDP2 layers after an Adam step, sync vs async DCP saves."""
    import os

    import torch.distributed as dist
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint import FileSystemWriter
    from torch.distributed.fsdp import fully_shard

    from launcher.train.sharded_checkpoint import (
        ModelShards,
        OptimizerShards,
        ShardedCheckpointManager,
    )

    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(0)
    model = nn.Sequential(*[nn.Linear(WIDTH, WIDTH) for _ in range(layers)])
    for layer in model:
        fully_shard(layer)
    fully_shard(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    model(torch.randn(4, WIDTH)).square().mean().backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    model_part, optim_part = ModelShards(model), OptimizerShards(model, [optimizer])

    def state() -> dict:
        parts = {"state_dict": model_part.state_dict(), "optimizer_states": optim_part.state_dict()}
        if rank == 0:
            parts["loops"] = {"epoch": 0, "global_step": 1, "batch_idx": 1}
        return parts

    manager = ShardedCheckpointManager(f"{tmp}/resume", keep_last=1, async_save=True)
    step, durable, cpu = [0], [], {"sync": [], "async": []}

    def sync_save() -> float:
        dist.barrier()
        start, start_cpu = time.perf_counter(), time.thread_time()
        dcp.save(state(), storage_writer=FileSystemWriter(f"{tmp}/sync"))
        cpu["sync"].append(time.thread_time() - start_cpu)
        return time.perf_counter() - start

    def async_save() -> float:
        step[0] += 1
        dist.barrier()
        start, start_cpu = time.perf_counter(), time.thread_time()
        manager.save(state(), step[0])
        blocked = time.perf_counter() - start
        cpu["async"].append(time.thread_time() - start_cpu)
        manager.wait()
        dist.barrier()  # rank 0's manifest entry is written
        durable.append(time.perf_counter() - start)
        return blocked

    times = interleave({"sync": sync_save, "async": async_save}, reps=rounds, verbose=rank == 0)
    if rank == 0:
        files = manager.entries()[-1]["files"]
        out.update(times, durable=durable[1:], files=files, cpu_sync=cpu["sync"][1:],
                   cpu_async=cpu["async"][1:])  # fmt: skip
    manager.close()
    dist.destroy_process_group()


def sharded_main(world: int, layers: int, rounds: int, where: str | None) -> int:
    import torch.multiprocessing as mp

    from launcher.common.net import free_port

    print(machine_line())
    print(f"state: {layers} x Linear({WIDTH}, {WIDTH}) + Adam, FSDP2 over {world} gloo "
          f"processes; {rounds} interleaved rounds after 1 warm-up")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-dcp-", dir=where) as tmp:
        out = mp.Manager().dict()
        mp.spawn(_sharded_worker, args=(world, free_port(), layers, rounds, tmp, out),
                 nprocs=world)  # fmt: skip
        result = dict(out)
    shards = {
        name: rec["size"] for name, rec in result["files"].items() if name.endswith(".distcp")
    }
    whole = sum(shards.values())
    blocked = paired_ratios(result["async"], result["sync"])
    print()
    print(f"synchronous dcp.save            {fmt_spread(result['sync'])}")
    print(f"async save(): blocked (rank 0)  {fmt_spread(result['async'])}")
    cpu = paired_ratios(result["cpu_async"], result["cpu_sync"])
    print(f"calling thread's CPU time: sync {fmt_spread(result['cpu_sync'])}, async blocked "
          f"{fmt_spread(result['cpu_async'])}: ratio {cpu.describe()} (what load does not move)")  # fmt: skip
    print(f"async save(): until listed      {fmt_spread(result['durable'])}  "
          "(DCP write + fsync, CRCs gathered, trainer.pt, manifest)")  # fmt: skip
    print("bytes per rank: " + ", ".join(
        f"{name} {size / 1e6:.1f} MB ({size / whole:.3f})" for name, size in sorted(shards.items())
    ) + f"; whole {whole / 1e6:.1f} MB, 1/{world} = {1 / world:.3f}")  # fmt: skip
    print()
    print(summary_line(f"checkpoint.py --sharded {world}", "async blocked/sync dcp.save",
                       blocked, TARGET))  # fmt: skip
    spread = max(abs(size / whole - 1 / world) for size in shards.values())
    print(f"checkpoint.py --sharded {world}: per-rank bytes within {spread:.3f} of 1/{world}")
    print(machine_line())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 layers, 3 rounds (< 60 s)")
    parser.add_argument("--layers", type=int, help="Linear(4096, 4096) layers (default 6)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 5, quick 3)")
    parser.add_argument("--dir", help="where to write (default: a temp dir under /tmp)")
    parser.add_argument("--sharded", type=int, metavar="N",
                        help="FSDP2 over N gloo processes, sharded DCP checkpoints")  # fmt: skip
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    layers = args.layers or (2 if args.quick else 6)
    rounds = args.rounds or (3 if args.quick else 5)
    if args.sharded:
        return sharded_main(args.sharded, layers, rounds, args.dir)

    print(machine_line())
    state = make_state(layers)
    params = sum(t.numel() for t in state["state_dict"].values())
    size_gb = state_bytes(state) / 1e9
    print(f"state: {layers} x Linear({WIDTH}, {WIDTH}) = {params / 1e6:.1f}M parameters + Adam "
          f"moments = {size_gb:.2f} GB; {rounds} interleaved rounds after 1 warm-up")  # fmt: skip

    with tempfile.TemporaryDirectory(prefix="bench-ckpt-", dir=args.dir) as tmp:
        manager = CheckpointManager(f"{tmp}/resume", keep_last=1, async_save=True)
        sync_path = Path(tmp) / "sync.ckpt"
        extra: dict[str, list[float]] = {"durable": [], "resume": [], "sha256": [],
                                         "load": [], "to_cpu": [], "copy_into": []}  # fmt: skip
        step = [0]
        buffers = [torch.empty_like(t) for t in tensors(state)]

        def sync_save() -> float:
            start = time.perf_counter()
            torch.save(state, sync_path)
            return time.perf_counter() - start

        def async_save() -> float:
            step[0] += 1
            start = time.perf_counter()
            manager.save(state, step[0])
            blocked = time.perf_counter() - start
            manager.wait()
            extra["durable"].append(time.perf_counter() - start)
            return blocked

        def resume() -> float:
            path = Path(manager.dirpath) / manager.entries()[-1]["file"]
            start = time.perf_counter()
            manager.load_latest()
            elapsed = time.perf_counter() - start
            start = time.perf_counter()
            file_sha256(path)
            extra["sha256"].append(time.perf_counter() - start)
            start = time.perf_counter()
            safe_load(path)
            extra["load"].append(time.perf_counter() - start)
            return elapsed

        def copies() -> float:
            start = time.perf_counter()
            snapshot = to_cpu(state)
            extra["to_cpu"].append(time.perf_counter() - start)
            del snapshot
            start = time.perf_counter()
            for buffer, tensor in zip(buffers, tensors(state), strict=True):
                buffer.copy_(tensor)
            extra["copy_into"].append(time.perf_counter() - start)
            return extra["to_cpu"][-1]

        times = interleave(
            {"sync": sync_save, "async": async_save, "resume": resume, "copies": copies},
            reps=rounds,
        )
        for values in extra.values():
            del values[: len(values) - rounds]  # drop the warm-up round
        file_gb = sync_path.stat().st_size / 1e9

    blocked = paired_ratios(times["async"], times["sync"])
    print()
    print(
        f"synchronous torch.save          {fmt_spread(times['sync'])}  "
        f"({file_gb / statistics.median(times['sync']):.2f} GB/s into the page cache)"
    )
    print(f"async save(): blocked           {fmt_spread(times['async'])}")
    print(
        f"async save(): until durable     {fmt_spread(extra['durable'])}  "
        "(write + fsync + manifest, on the writer thread)"
    )
    print(
        f"  of which to_cpu (fresh copy)  {fmt_spread(extra['to_cpu'])}  "
        f"({size_gb / statistics.median(extra['to_cpu']):.2f} GB/s)"
    )
    print(
        f"  copy_ into reused buffers     {fmt_spread(extra['copy_into'])}  "
        f"({size_gb / statistics.median(extra['copy_into']):.2f} GB/s)"
    )
    print(f"resume: load_latest()           {fmt_spread(times['resume'])}")
    print(
        f"  of which SHA-256 of the file  {fmt_spread(extra['sha256'])}  "
        f"({file_gb / statistics.median(extra['sha256']):.2f} GB/s)"
    )
    print(f"  torch.load(weights_only=True) {fmt_spread(extra['load'])}")
    reuse = paired_ratios(extra["copy_into"], times["sync"])
    print(f"blocked with reused buffers would be ~{reuse.describe()} of the synchronous save")
    print()
    print(summary_line("checkpoint.py", "async blocked/sync torch.save", blocked, TARGET))
    print(
        f"checkpoint.py: resume (load_latest, {size_gb:.2f} GB) median "
        f"{statistics.median(times['resume']):.3f}s"
    )
    print(machine_line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
