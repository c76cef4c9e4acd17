"""Sharded checkpoints (torch.distributed.checkpoint): async staging, verification and
fallback, safe loading, exact resume, and resumes at another world size."""

from __future__ import annotations

import json
import pickle
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import nn

from launcher import Callback, Trainer
from launcher.errors import REQUEUE_EXIT_CODE, UserError
from launcher.train import sharded_checkpoint
from launcher.train.checkpoint_store import CheckpointManager
from launcher.train.sampler import ResumableSampler
from launcher.train.sharded_checkpoint import ShardedCheckpointManager, load_full
from tests.resume_harness import (
    assert_bitwise_equal,
    make_spec,
    run_worker,
    start_backend,
)

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
sys.path.insert(0, str(RECIPES))
from blocks import TRAINER, BlocksModel  # noqa: E402


@pytest.fixture(autouse=True)
def _no_group_left() -> Iterator[None]:
    yield
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def _state(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    from torch.distributed.checkpoint.state_dict import (
        get_model_state_dict,
        get_optimizer_state_dict,
    )

    return {"state_dict": get_model_state_dict(model),
            "optimizer_states": [get_optimizer_state_dict(model, optimizer)],
            "launcher_format": 2, "loops": {"step": 1}}  # fmt: skip


def _trained() -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.Linear(16, 4))
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.randn(3, 8)).square().mean().backward()
    optimizer.step()
    return model, optimizer


def _clone(state: dict) -> dict:
    return {k: v.detach().clone() for k, v in state.items()}


def test_async_save_stages_the_shards_before_returning(tmp_path: Path, monkeypatch) -> None:
    """An optimizer step right after `save()` returns must not reach the checkpoint. The
    write is held until the step is done, so without the staging copy (the second half:
    DCP's stager skipped) the checkpoint does hold the later values: this test catches it."""
    import torch.distributed.checkpoint.state_dict_saver as saver

    release = threading.Event()
    original = saver.save

    def held_save(*args, **kwargs):
        release.wait(30)
        return original(*args, **kwargs)

    monkeypatch.setattr(saver, "save", held_save)
    for skip_staging in (False, True):
        if skip_staging:
            monkeypatch.setattr(sharded_checkpoint._Stager, "stage", lambda self, s: s)
        model, optimizer = _trained()
        before = _clone(model.state_dict())
        manager = ShardedCheckpointManager(str(tmp_path / f"skip{skip_staging}"), async_save=True)
        release.clear()
        manager.save(_state(model, optimizer), step=1)
        model(torch.randn(3, 8)).square().mean().backward()
        optimizer.step()  # in place, as training goes on
        release.set()
        manager.close()
        _, state = manager.load_latest()
        saved = load_full(state["state_dict"].dirpath)["state_dict"]
        changed = [k for k in before if not torch.equal(saved[k], before[k])]
        assert changed == ([] if not skip_staging else list(before)), skip_staging


def test_broken_newest_falls_back_and_a_lost_manifest_is_rebuilt(tmp_path: Path) -> None:
    model, optimizer = _trained()
    manager = ShardedCheckpointManager(str(tmp_path), async_save=True)
    manager.save(_state(model, optimizer), step=1)
    first = _clone(model.state_dict())
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1)
    manager.save(_state(model, optimizer), step=2)
    manager.close()
    entries = manager.entries()
    assert [e["dir"] for e in entries] == ["step-000000001", "step-000000002"]
    # Every file of both is listed with its size and checksum; one shard file per rank.
    assert set(entries[1]["files"]) == {"__0_0.distcp", ".metadata", "trainer.pt"}
    (tmp_path / MANIFEST_NAME).unlink()  # lost: rebuilt from the directories' own copies
    ShardedCheckpointManager(str(tmp_path)).recover()
    assert [e["dir"] for e in manager.entries()] == ["step-000000001", "step-000000002"]
    shard = tmp_path / "step-000000002" / "__0_0.distcp"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte, same size
    shard.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match=r"step-000000002: CRC mismatch in __0_0.distcp"):
        path, state = CheckpointManager(str(tmp_path)).load_latest()
    assert path.endswith("step-000000001")
    assert_bitwise_equal(first, load_full(state["state_dict"].dirpath)["state_dict"])
    (tmp_path / "step-000000003").mkdir()  # a write that died: not listed, removed
    (tmp_path / "step-000000003" / "__0_0.distcp").write_bytes(b"partial")
    ShardedCheckpointManager(str(tmp_path)).recover()
    assert not (tmp_path / "step-000000003").exists()


MANIFEST_NAME = "manifest.json"


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_pickled_code_in_metadata_or_trainer_file_is_refused(tmp_path: Path) -> None:
    model, optimizer = _trained()
    manager = ShardedCheckpointManager(str(tmp_path))
    manager.save(_state(model, optimizer), step=1)
    step = tmp_path / "step-000000001"
    metadata = step / ".metadata"
    good = metadata.read_bytes()
    metadata.write_bytes(pickle.dumps(_Evil()))
    with pytest.raises(UserError, match="refusing to load .*builtins.print"):
        sharded_checkpoint.read_metadata(step)
    # Listed with its checksums as written by us: still refused, not run.
    entries = manager.entries()
    record = sharded_checkpoint._file_record(metadata)
    entries[0]["files"][".metadata"] = record
    (tmp_path / MANIFEST_NAME).write_text(json.dumps({"checkpoints": entries}))
    with pytest.raises(UserError, match="unusable.*pickled code"):
        manager.load_latest()
    metadata.write_bytes(good)
    torch.save({"x": _Evil()}, step / "trainer.pt")
    entries[0]["files"][".metadata"] = sharded_checkpoint._file_record(metadata)
    entries[0]["files"]["trainer.pt"] = sharded_checkpoint._file_record(step / "trainer.pt")
    (tmp_path / MANIFEST_NAME).write_text(json.dumps({"checkpoints": entries}))
    with pytest.raises(UserError, match="unusable.*pickled code"):
        manager.load_latest()


class _Crash(Callback):
    def __init__(self, at: int) -> None:
        self.at = at

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.at:
            raise RuntimeError("crash")


def _fit(run_dir: Path, ckpt_path: str | None = None, crash_at: int | None = None,
         **kwargs) -> BlocksModel:  # fmt: skip
    torch.manual_seed(0)
    model = BlocksModel(**kwargs.pop("hparams", {}))
    callbacks = [_Crash(crash_at)] if crash_at else []
    trainer = Trainer(**{**TRAINER, "max_epochs": 1}, logger=False, seed=1, run_dir=str(run_dir),
                      checkpoint_every_n_steps=4, callbacks=callbacks, limit_val_batches=0,
                      **kwargs)  # fmt: skip
    trainer.fit(model, ckpt_path=ckpt_path)
    return model


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["fsdp", "auto"])
def test_crash_after_async_sharded_checkpoint_resumes_bitwise(tmp_path: Path, strategy) -> None:
    """One process: 12 steps a run, an async sharded checkpoint at step 4 (mid-epoch), a
    crash at step 6; resuming from step 4 ends where the uninterrupted run does. Four fits
    in one process (the last refused before training): ~10-20 s under load."""
    kwargs = {"strategy": strategy, "checkpoint_format": "sharded"}
    expected = _full(_fit(tmp_path / "whole", **kwargs).state_dict())
    with pytest.raises(RuntimeError, match="crash"):
        _fit(tmp_path / "crashed", crash_at=6, **kwargs)
    entries = ShardedCheckpointManager(str(tmp_path / "crashed/checkpoints/resume")).entries()
    assert [e["step"] for e in entries] == [4]
    got = _full(_fit(tmp_path / "crashed", ckpt_path="last", **kwargs).state_dict())
    assert_bitwise_equal(expected, got, "model")
    # Another model's checkpoint: a clear error before anything loads.
    with pytest.raises(UserError, match=r"no longer matches.*blocks.0.mlp.0.weight: \(32, 16\)"):
        _fit(tmp_path / "crashed", ckpt_path=str(tmp_path / "whole"), hparams={"width": 8},
             **kwargs)  # fmt: skip


def _full(state: dict) -> dict:
    from torch.distributed.tensor import DTensor

    return {k: (v.full_tensor() if isinstance(v, DTensor) else v).detach().clone()
            for k, v in state.items()}  # fmt: skip


def test_sampler_deals_the_rest_of_an_epoch_to_another_world_size() -> None:
    def shares(world: int, consumed: int = 0, start: int = 0) -> list[list[int]]:
        out = []
        for rank in range(world):
            sampler = ResumableSampler(48, True, seed=3, rank=rank, world_size=world)
            sampler.set_epoch(2)
            sampler.set_global_start(consumed)
            sampler.set_start(start)
            out.append(list(sampler))
        return out

    first = [ids[:8] for ids in shares(2)]  # 2 ranks, 2 batches of 4 each: 16 seen
    rest = shares(3, consumed=16)  # 3 ranks deal the other 32 (one padded from the start)
    assert ResumableSampler(48, True, 3, 0, 3).remaining_per_rank(16) == 11
    seen = sorted(i for ids in first + rest for i in ids)
    assert sorted(set(seen)) == list(range(48)) and len(seen) == 49
    again = shares(1, consumed=24)  # 1 rank after 24: exactly the rest
    order = shares(1)[0]
    assert again[0] == order[24:]
    assert shares(3, consumed=16, start=4)[1] == rest[1][4:]  # then a same-size resume


def _samples(run_dir: Path) -> list[dict]:
    return [json.loads(line) for path in sorted(run_dir.glob("samples_rank*.jsonl"))
            for line in path.read_text().splitlines()]  # fmt: skip


# (strategy, [(processes, stop at step)], what each resume says, (processes, step) of epoch 0)
_PLANS = {
    "fsdp": ([(2, 2), (1, 4), (3, None)],
             ["world size 2 -> 1: epoch 0 continues after 16 samples, 8 batches",
              "world size 1 -> 3: epoch 0 continues after 24 samples, 2 batches"],
             [(1, 2), (1, 3), (2, 0), (2, 1), (3, 4), (3, 5)]),
    "ddp": ([(1, 4), (2, None)],
            ["world size 1 -> 2: epoch 0 continues after 16 samples, 4 batches"],
            [(1, 0), (1, 1), (1, 2), (1, 3), (2, 4), (2, 5), (2, 6), (2, 7)]),
}  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["fsdp", "ddp"])
def test_resume_at_another_world_size_sees_every_sample_once(tmp_path: Path, strategy) -> None:
    """48 samples, 4 per batch, 2 epochs. FSDP: 2 processes stop at step 2 (16 seen), 1
    process takes 2 steps (8 more), 3 processes finish the epoch (8 each) and the next. DDP
    (sharded format): 1 process stops at step 4, 2 finish. Each resume loads the model and
    optimizer the last attempt saved, resharded; every sample of both epochs is trained on
    once. A launch costs ~20-40 s on 2 shared cores: FSDP 60-115 s, DDP 30-55 s (the
    fewest launches that change the world size both ways, for both strategies)."""
    attempts, said, steps = _PLANS[strategy]
    stops = ",".join(str(stop) for _, stop in attempts if stop is not None)
    overrides = {"stop_steps": stops, "trainer.max_epochs": "2",
                 "trainer.strategy": strategy, "trainer.checkpoint_format": "sharded",
                 "trainer.signal_sync_every_n_steps": "1", "trainer.logger": "false",
                 "trainer.limit_val_batches": "0"}  # fmt: skip
    recipe = str(RECIPES / "sample_ids.py")
    log = tmp_path / "run.log"
    resume_dir = tmp_path / "tiny" / "run" / "checkpoints" / "resume"
    saved = []
    for world, stop in attempts:
        spec = make_spec(tmp_path, "run", recipe=recipe, devices_per_node=world,
                         accelerator="cpu", overrides=overrides)  # fmt: skip
        got = run_worker(spec, log, 300) if world == 1 else start_backend(spec, log).wait(300)
        assert got == (REQUEUE_EXIT_CODE if stop else 0), log.read_text()[-4000:]
        if stop:
            _, state = CheckpointManager(str(resume_dir)).load_latest()
            saved.append(load_full(state["state_dict"].dirpath))
    text = log.read_text()
    for line in said:
        assert line in text, text[-3000:]
    lines = _samples(Path(spec.run_dir))
    for epoch in (0, 1):
        ids = sorted(i for line in lines if line["epoch"] == epoch for i in line["ids"])
        assert ids == list(range(48)), (epoch, ids)
    assert sorted({(ln["world"], ln["step"]) for ln in lines if ln["epoch"] == 0}) == steps
    for attempt, state in enumerate(saved, start=1):
        start = torch.load(Path(spec.run_dir) / f"start_{attempt}.pt", weights_only=True)
        assert_bitwise_equal(state["state_dict"], start["model"], f"model {attempt}")
        (optim,) = state["optimizer_states"]
        assert_bitwise_equal(optim["state"], start["optim"]["state"], f"optimizer {attempt}")
