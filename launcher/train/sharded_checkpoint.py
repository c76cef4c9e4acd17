"""Sharded resume checkpoints through `torch.distributed.checkpoint` (DCP).

    Trainer(strategy="fsdp")                               # sharded by default under FSDP
    Trainer(strategy="ddp", checkpoint_format="sharded")   # DDP too: every rank writes a part
    manager = ShardedCheckpointManager("run/checkpoints/resume", keep_last=3, async_save=True)
    manager.save(state, step=120)    # every rank; returns once its shards are copied (staged)
    path, state = manager.load_latest()   # state["state_dict"] is a ShardedRef: parts load it

A checkpoint is a directory `step-XXXXXXXXX/`: DCP's files (`__<rank>_0.distcp`, one per
rank, and `.metadata`) hold the model and optimizer states, each rank its own shards (no
gather to rank 0; under DDP DCP spreads the replicated tensors over the ranks); rank 0 adds
`trainer.pt`, the rest of the checkpoint (loop, callbacks, loggers, per-rank RNG...) as the
single-file format holds it. The manifest (`manifest.json`, shared with the file format)
lists a directory only once every rank's shards landed: rank 0 writes the entry with every
file's size and CRC-32 after DCP's collective finish and a gather of the ranks' own CRCs.
Loading verifies every file of the newest entry and falls back to the previous one (each
rank verifies every file: it may read a piece of any of them when resharding, and the
ranks must agree on the checkpoint without a collective; that reads the whole checkpoint
once per rank).

Nothing in a checkpoint can run code on load: `.metadata` (a pickle) is read by an
unpickler that knows only DCP's metadata classes, `torch.Size`, dtypes and paths; the
non-tensor values DCP stores (optimizer hyperparameters) and `trainer.pt` load with
`torch.load(weights_only=True)`.

Async saves stage the shards into CPU buffers of our own (reused from the previous save) in
the training thread before `dcp.async_save` returns: DCP's default stager would keep CPU
tensors by reference, so an optimizer step after the call would leak into the checkpoint.
The background write's collectives run on a gloo group of their own, so they never
interleave with the training thread's.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import shutil
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as torch_dist
from torch import nn

from launcher.common.files import atomic_write_text
from launcher.common.threads import start_thread
from launcher.errors import UserError
from launcher.train.checkpoint_store import (
    MANIFEST,
    CheckpointManager,
    atomic_torch_save,
    file_sha256,
    register_open_manager,
    remove_entry,
    safe_load,
    say,
    to_cpu,
)

FORMATS = ("sharded", "full")
SHARDED_KEYS = ("state_dict", "optimizer_states")  # the parts DCP holds; the rest: trainer.pt
TRAINER_FILE = "trainer.pt"
ENTRY_FILE = "entry.json"  # the manifest entry's copy
METADATA_FILE = ".metadata"
_CHUNK = 1 << 22


def resolve_format(checkpoint_format: str | None, strategy: str) -> str:
    """`checkpoint_format`: "sharded" or "full"; unset: sharded under FSDP, full otherwise."""
    if checkpoint_format is None:
        return "sharded" if strategy == "fsdp" else "full"
    if checkpoint_format not in FORMATS:
        raise UserError(f"checkpoint_format must be 'sharded' (every rank writes its shards, "
                        f"torch.distributed.checkpoint) or 'full' (one file written by rank 0), "
                        f"got {checkpoint_format!r}")  # fmt: skip
    return checkpoint_format


@dataclass(frozen=True)
class ShardedRef:
    """A sharded part of a loaded checkpoint: which directory, and what DCP's metadata says
    each saved tensor's global shape is (flattened key -> shape; None for non-tensors)."""

    dirpath: str
    shapes: dict[str, tuple[int, ...] | None] = field(repr=False)


# -- safe reading -----------------------------------------------------------------------------
_METADATA_CLASSES = {
    "torch.distributed.checkpoint.metadata": {
        "Metadata", "MetadataIndex", "StorageMeta", "TensorProperties", "TensorStorageMetadata",
        "BytesStorageMetadata", "ChunkStorageMetadata", "_MEM_FORMAT_ENCODING",
    },
    "torch.distributed.checkpoint.filesystem": {"_StorageInfo"},
    "torch.serialization": {"_get_layout"},
    "pathlib": {"PosixPath", "PurePosixPath", "WindowsPath", "PureWindowsPath"},
    "torch": {"Size"},
}  # fmt: skip


class _MetadataUnpickler(pickle.Unpickler):
    """Only DCP's metadata classes; anything else (a callable, another class) is refused."""

    def find_class(self, module: str, name: str) -> Any:
        if name in _METADATA_CLASSES.get(module, ()):
            return super().find_class(module, name)
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        raise pickle.UnpicklingError(f"refused global {module}.{name}")


def read_metadata(dirpath: str | os.PathLike[str]) -> Any:
    """DCP's `.metadata` of `dirpath`, unpickled without running code (`UserError` if it
    names anything but DCP's metadata classes)."""
    path = Path(dirpath) / METADATA_FILE
    try:
        with open(path, "rb") as f:
            return _MetadataUnpickler(f).load()
    except pickle.UnpicklingError as exc:
        raise UserError(f"refusing to load {path}: it contains pickled code or objects ({exc}). "
                        "Checkpoints may hold only tensors and plain data.") from exc  # fmt: skip


def _reader(dirpath: str) -> Any:
    from torch.distributed.checkpoint import FileSystemReader
    from torch.distributed.checkpoint.metadata import StorageMeta

    class SafeReader(FileSystemReader):
        def read_metadata(self, *args: Any, **kwargs: Any) -> Any:
            metadata = read_metadata(self.path)
            if getattr(metadata, "storage_meta", None) is None:
                metadata.storage_meta = StorageMeta()
            metadata.storage_meta.load_id = self.load_id
            return metadata

    return SafeReader(dirpath)


def _planner(empty: bool = False) -> Any:
    from torch.distributed.checkpoint._traverse import set_element  # DCP's own helper
    from torch.distributed.checkpoint.default_planner import (
        DefaultLoadPlanner,
        _EmptyStateDictLoadPlanner,
    )

    base: Any = _EmptyStateDictLoadPlanner if empty else DefaultLoadPlanner

    class SafeLoadPlanner(base):
        """DCP's planner, its non-tensor values loaded with weights_only=True."""

        def load_bytes(self, read_item: Any, value: io.BytesIO) -> None:
            loaded = torch.load(value, weights_only=True)
            if self.flatten_state_dict:
                set_element(self.original_state_dict, self.mappings[read_item.dest_index.fqn],
                            loaded)  # fmt: skip
            else:
                self.state_dict[read_item.dest_index.fqn] = loaded

    return SafeLoadPlanner()


def _dcp_load(state: dict[str, Any], dirpath: str) -> None:
    import torch.distributed.checkpoint as dcp

    dcp.load(state, storage_reader=_reader(dirpath), planner=_planner(),
             no_dist=not torch_dist.is_initialized())  # fmt: skip


def load_full(dirpath: str | os.PathLike[str]) -> dict[str, Any]:
    """Every sharded part of a checkpoint directory as plain, whole tensors (one process;
    tools and tests). `trainer.pt` holds the rest (`safe_load`)."""
    # What torch's own dcp_to_torch_save calls: `dcp.load` would fill a copy of `state`.
    from torch.distributed.checkpoint.state_dict_loader import _load_state_dict

    state: dict[str, Any] = {}
    _load_state_dict(state, storage_reader=_reader(str(dirpath)), planner=_planner(empty=True),
                     no_dist=True)  # fmt: skip
    return state


# -- the parts --------------------------------------------------------------------------------
def _options() -> Any:
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=False, cpu_offload=False)


def _mismatch(template: dict[str, Any], ref: ShardedRef, prefix: str) -> list[str]:
    saved = {k[len(prefix) :]: v for k, v in ref.shapes.items() if k.startswith(prefix)}
    mine = {k: tuple(v.shape) for k, v in template.items() if isinstance(v, torch.Tensor)}
    out = [f"missing {k}" for k in sorted(set(mine) - set(saved))]
    out += [f"unexpected {k}" for k in sorted(set(saved) - set(mine))]
    out += [f"{k}: {saved[k]} in the checkpoint, {mine[k]} now"
            for k in sorted(set(mine) & set(saved)) if saved[k] != mine[k]]  # fmt: skip
    return out


class ModelShards:
    """The model's part of a sharded checkpoint: every rank's own shards (DTensors under
    FSDP, DDP's replicated tensors), resharded on load to this run's world size."""

    def __init__(self, module: nn.Module, source: str = "") -> None:
        self.module, self.source = module, source

    def state_dict(self) -> dict[str, Any]:
        from torch.distributed.checkpoint.state_dict import get_model_state_dict

        return get_model_state_dict(self.module, options=_options())

    def load_state_dict(self, ref: ShardedRef, /) -> None:
        from torch.distributed.checkpoint.state_dict import set_model_state_dict

        template = self.state_dict()
        problems = _mismatch(template, ref, "state_dict.")
        if problems:
            shown = "; ".join(problems[:5]) + ("; ..." if len(problems) > 5 else "")
            raise UserError(
                f"the model no longer matches checkpoint {self.source}: it holds the weights of "
                f"another model or of other hyperparameters ({shown}). Resume with the recipe "
                "and hyperparameters that wrote it, or start fresh with --no-resume (and a new "
                "--name)."
            )
        _dcp_load({"state_dict": template}, ref.dirpath)
        set_model_state_dict(self.module, template, options=_options())


class OptimizerShards:
    """The optimizers' part: their states keyed by parameter name, sharded like the model."""

    def __init__(self, module: nn.Module, optimizers: list[torch.optim.Optimizer],
                 source: str = "") -> None:  # fmt: skip
        self.module, self.optimizers, self.source = module, optimizers, source

    def state_dict(self) -> list[Any]:
        from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

        return [get_optimizer_state_dict(self.module, opt, options=_options())
                for opt in self.optimizers]  # fmt: skip

    def load_state_dict(self, ref: ShardedRef, /) -> None:
        from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict

        saved = {k.split(".")[1] for k in ref.shapes if k.startswith("optimizer_states.")}
        if len(saved) != len(self.optimizers):
            raise UserError(
                f"the checkpoint holds {len(saved)} optimizers, this run has "
                f"{len(self.optimizers)}; resume with the configure_optimizers() that wrote it"
            )
        template = self.state_dict()
        _dcp_load({"optimizer_states": template}, ref.dirpath)
        for opt, state in zip(self.optimizers, template, strict=True):
            set_optimizer_state_dict(self.module, opt, state, options=_options())


# -- the manager ------------------------------------------------------------------------------
class _Stager:
    """DCP's stager: a copy of the shards into buffers of our own (reused save to save), made
    before `async_save` returns. DCP's default one would keep CPU tensors by reference."""

    def __init__(self) -> None:
        self.cache: Any = None

    def stage(self, state: dict[str, Any]) -> dict[str, Any]:
        self.cache = to_cpu(state, self.cache)
        return self.cache

    should_synchronize_after_execute = False

    def synchronize_staging(self) -> None:
        """Nothing to wait for: `stage` copies before it returns."""

    def close(self) -> None:
        """The buffers are reused by the next save."""


@dataclass
class _Pending:
    """One save in flight: DCP's future, then what rank 0 finishes with."""

    future: Any
    name: str
    step: int
    rest: dict[str, Any] | None
    before_write: Callable[[], Callable[[], None]] | None
    final: bool


class ShardedCheckpointManager(CheckpointManager):
    """Rolling sharded checkpoints: `step-XXXXXXXXX/` directories in one manifest."""

    sharded = True

    def __init__(self, dirpath: str, keep_last: int = 3, async_save: bool = False) -> None:
        super().__init__(dirpath, keep_last, async_save)
        self.stager = _Stager()
        self._group: Any = None

    def _process_group(self) -> Any:
        """A gloo group for the background write's collectives (made once, on every rank)."""
        if not torch_dist.is_initialized():
            return None
        if self._group is None:
            self._group = torch_dist.new_group(backend="gloo")
        return self._group

    def save(
        self,
        state: dict[str, Any],
        step: int,
        blocking: bool | None = None,
        before_write: Callable[[], Callable[[], None]] | None = None,
        final: bool = False,
    ) -> str:
        """Every rank: write its shards of `state` into `step-XXXXXXXXX/`; rank 0's `state`
        also holds the rest, written as `trainer.pt`. Async unless `blocking`: returns once
        the shards are staged; the directory enters the manifest when every rank's landed."""
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint import FileSystemWriter

        self.wait()  # at most one save in flight (and the stager's buffers are free again)
        name = f"step-{step:09d}"
        path = self.dirpath / name
        shards = {k: state[k] for k in SHARDED_KEYS}
        rest = {k: v for k, v in state.items() if k not in SHARDED_KEYS} or None
        group = self._process_group()
        self.dirpath.mkdir(parents=True, exist_ok=True)
        writer = FileSystemWriter(str(path), sync_files=True)
        if blocking or not self.async_save:
            dcp.save(shards, storage_writer=writer, process_group=group, no_dist=group is None)
            self._finish(_Pending(None, name, step, rest, before_write, final))
            return str(path)
        future = dcp.async_save(
            shards, storage_writer=writer, process_group=group, no_dist=group is None,
            async_stager=self.stager,  # type: ignore[arg-type]
        )  # fmt: skip
        rest = to_cpu(rest) if rest is not None else None
        self._idle.clear()
        self._jobs.put(_Pending(future, name, step, rest, before_write, final))  # type: ignore[arg-type]
        if self._writer is None:
            self._writer = start_thread(self._serve, "sharded-checkpoint-writer")
            register_open_manager(self)
        return str(path)

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            try:
                self._finish(job)  # type: ignore[arg-type]
            except BaseException as exc:  # noqa: BLE001 - handed to the training thread
                self._error = exc
            finally:
                job = None
                self._idle.set()

    def _finish(self, job: _Pending) -> None:
        """After DCP's write: every rank's CRCs to rank 0, which adds `trainer.pt` and the
        manifest entry (after the loggers' flush), then drops the checkpoints beyond keep_last."""
        if job.future is not None:
            job.future.result()  # DCP's collective finish: every rank's files are written
        path = self.dirpath / job.name
        rank = torch_dist.get_rank() if torch_dist.is_initialized() else 0
        mine = {p.name: _file_record(p) for p in path.glob(f"__{rank}_*.distcp")}
        group = self._group
        gathered: list[Any] = [mine]
        if group is not None and torch_dist.get_world_size(group) > 1:
            gathered = [None] * torch_dist.get_world_size(group)
            torch_dist.all_gather_object(gathered, mine, group=group)
        if rank != 0:
            return
        wait = job.before_write() if job.before_write is not None else None
        files: dict[str, Any] = {k: v for part in gathered for k, v in part.items()}
        files[METADATA_FILE] = _file_record(path / METADATA_FILE)
        if job.rest is not None:
            sha = atomic_torch_save(job.rest, path / TRAINER_FILE, sync_dir=False)
            files[TRAINER_FILE] = {"size": (path / TRAINER_FILE).stat().st_size, "sha256": sha}
        if wait is not None:
            wait()
        entry = {"dir": job.name, "step": job.step, "time": time.time(), "final": job.final,
                 "files": files}  # fmt: skip
        # A copy in the directory: `recover` rebuilds a lost manifest from it.
        atomic_write_text(path / ENTRY_FILE, json.dumps(entry), durable=True)
        entries = [e for e in self.entries() if e.get("dir", e.get("file")) != job.name]
        entries.append(entry)
        stale, entries = entries[: -self.keep_last], entries[-self.keep_last :]
        self._write_manifest(entries)
        for entry in stale:  # only after the manifest no longer points at them
            remove_entry(self.dirpath, entry)

    def recover(self) -> None:
        """Also for step directories the manifest does not list: one whose own copy of its
        entry verifies (the manifest was lost, or a crash came just before it) is listed
        again; any other (a write that died) is removed."""
        super().recover()
        if not self.dirpath.is_dir():
            return
        entries = self.entries() if self._read_manifest() is not None else []
        listed, added = {e.get("dir") for e in entries}, []
        for path in sorted(self.dirpath.glob("step-*")):
            if not path.is_dir() or path.name in listed:
                continue
            entry = _read_json(path / ENTRY_FILE)
            if entry is not None and verify_entry(self.dirpath, entry) is None:
                added.append(entry)
            else:
                shutil.rmtree(path, ignore_errors=True)
        if added:
            self._write_manifest(sorted(entries + added, key=lambda e: e["step"]))
            say(f"listed {len(added)} verified sharded checkpoint(s) again in "
                 f"{self.dirpath / MANIFEST}")  # fmt: skip

    def close(self) -> None:
        super().close()
        if self._group is not None and torch_dist.is_initialized():
            torch_dist.destroy_process_group(self._group)
        self._group = None


def _file_record(path: Path) -> dict[str, Any]:
    crc = 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            crc = zlib.crc32(chunk, crc)
    return {"size": path.stat().st_size, "crc32": crc}


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        with open(path) as f:
            value = json.load(f)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) and "dir" in value else None


def verify_entry(dirpath: Path, entry: dict[str, Any]) -> str | None:
    """Why the sharded checkpoint `entry` names is not complete and intact, or None."""
    path = dirpath / entry["dir"]
    for name, record in entry.get("files", {}).items():
        file = path / name
        if not file.is_file():
            return f"{name} is missing"
        if file.stat().st_size != record["size"]:
            return f"{name} has {file.stat().st_size} bytes, {record['size']} were written"
        if "sha256" in record and file_sha256(file) != record["sha256"]:
            return f"checksum mismatch in {name} (truncated or modified)"
        if "crc32" in record and _file_record(file)["crc32"] != record["crc32"]:
            return f"CRC mismatch in {name} (truncated or modified)"
    missing = [n for n in (METADATA_FILE, TRAINER_FILE) if n not in entry.get("files", {})]
    return f"incomplete: no {', '.join(missing)}" if missing else None


def load_entry(dirpath: Path, entry: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint `entry` names: `trainer.pt`'s dict, with a `ShardedRef` for each
    sharded part. Raises ValueError (unusable) or UserError (refused: pickled code)."""
    problem = verify_entry(dirpath, entry)
    if problem is not None:
        raise ValueError(problem)
    path = dirpath / entry["dir"]
    metadata = read_metadata(path)
    shapes = {
        key: tuple(meta.size) if hasattr(meta, "size") else None
        for key, meta in metadata.state_dict_metadata.items()
    }
    state = safe_load(path / TRAINER_FILE)
    ref = ShardedRef(str(path), shapes)
    return {**state, **dict.fromkeys(SHARDED_KEYS, ref)}


__all__ = ["FORMATS", "MANIFEST", "ModelShards", "OptimizerShards", "ShardedCheckpointManager",
           "ShardedRef", "load_entry", "load_full", "read_metadata", "resolve_format"]  # fmt: skip
