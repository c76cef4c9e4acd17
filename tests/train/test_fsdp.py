"""strategy="fsdp" (FSDP2): one process in-process, two gloo processes through the local backend."""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from launcher import Trainer
from launcher.errors import REQUEUE_EXIT_CODE, UserError
from launcher.train import fsdp
from launcher.train.fsdp import FSDPSettings
from tests.resume_harness import (
    assert_bitwise_equal,
    final_state,
    made_progress,
    make_spec,
    start_backend,
    worker_pids,
)

BLOCKS = str(Path(__file__).resolve().parents[1] / "recipes" / "blocks.py")
sys.path.insert(0, str(Path(BLOCKS).parent))
from blocks import TRAINER, BlocksModel  # noqa: E402

# 96 samples, a global batch of 16: 6 steps an epoch, 2 epochs.
BASE = {"n_train": "96", "trainer.max_epochs": "2", "trainer.gradient_clip_val": "0.5"}


@pytest.fixture(autouse=True)
def _no_group_left() -> Iterator[None]:
    """One process under FSDP joins a group of one (its device mesh needs it), which lives as
    long as the process, as the worker's does until `dist.teardown()`: later tests need none."""
    yield
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def _full(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    from torch.distributed.tensor import DTensor

    return {k: (v.full_tensor() if isinstance(v, DTensor) else v).detach().clone()
            for k, v in state.items()}  # fmt: skip


def _fit(tmp_path: Path, name: str, **kwargs) -> BlocksModel:
    torch.manual_seed(0)
    model = BlocksModel(**kwargs.pop("hparams", {}))
    trainer = Trainer(**{**TRAINER, "max_epochs": 1}, logger=False, seed=1,
                      default_root_dir=str(tmp_path / name), gradient_clip_val=0.5,
                      **kwargs)  # fmt: skip
    trainer.fit(model)
    return model


@pytest.mark.slow
def test_one_process_fsdp_matches_plain_training(tmp_path: Path) -> None:
    from torch.distributed.tensor import DTensor

    plain = _full(_fit(tmp_path, "plain", accumulate_grad_batches=2).state_dict())
    for offload in (False, True):  # on the CPU, offloading changes where nothing lives
        model = _fit(tmp_path, f"fsdp{offload}", strategy="fsdp", accumulate_grad_batches=2,
                     fsdp_cpu_offload=offload)  # fmt: skip
        assert all(isinstance(p, DTensor) for p in model.parameters())  # really sharded
        sharded = _full(model.state_dict())
        assert sharded.keys() == plain.keys()
        for key in plain:
            torch.testing.assert_close(sharded[key], plain[key], rtol=1e-5, atol=1e-6)


def test_unknown_block_name_is_a_user_error_naming_the_classes(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"TransformerBlock.*Block, BlocksModel, Embedding"):
        _fit(tmp_path, "typo", strategy="fsdp", fsdp_blocks=["TransformerBlock"])


def test_fsdp_settings_without_fsdp_and_unsupported_combinations_are_user_errors(
    tmp_path: Path,
) -> None:
    with pytest.raises(
        UserError, match="fsdp_blocks, fsdp_cpu_offload: settings of strategy='fsdp'"
    ):
        Trainer(fsdp_blocks=["Block"], fsdp_cpu_offload=True, logger=False)
    settings = FSDPSettings.parse("fsdp", None, True)
    assert settings is not None
    with pytest.raises(UserError, match="precision='bf16-mixed'"):  # fp16 needs a GPU here
        fsdp.shard(BlocksModel(), settings, "16-mixed", torch.device("cpu"))
    with pytest.raises(UserError, match="manual optimization"):
        _fit(tmp_path, "manual", strategy="fsdp", hparams={"manual": True})


def test_blocks_named_or_sharded_in_configure_model_are_the_fsdp_units(tmp_path: Path) -> None:
    from torch.distributed.fsdp import FSDPModule

    for kwargs in ({"fsdp_blocks": ["Block"], "fsdp_reshard_after_forward": False},
                   {"hparams": {"shard_in_configure_model": True}}):  # fmt: skip
        model = _fit(tmp_path, "named", strategy="fsdp", max_steps=2, **kwargs)
        units = [name for name, m in model.named_modules() if isinstance(m, FSDPModule)]
        assert units == ["", "blocks.0", "blocks.1", "blocks.2"], kwargs
        group = model.blocks[0]._get_fsdp_state()._fsdp_param_group  # noqa: SLF001 (torch's)
        # reshard_after_forward=False keeps a block's parameters gathered until backward.
        assert (group.post_forward_mesh_info is None) == ("fsdp_blocks" in kwargs)


def test_bf16_mixed_gathers_bf16_parameters_and_reduces_in_fp32(tmp_path: Path) -> None:
    model = _fit(tmp_path, "bf16", strategy="fsdp", precision="bf16-mixed", max_steps=2)
    policy = model.blocks[0]._get_fsdp_state()._mp_policy  # noqa: SLF001 (torch's own state)
    assert (policy.param_dtype, policy.reduce_dtype) == (torch.bfloat16, torch.float32)
    assert all(p.dtype == torch.float32 for p in model.parameters())  # the shards stay fp32


def _run(spec, log: Path) -> int:
    proc = start_backend(spec, log)
    return proc.wait(timeout=300)


def _two(tmp_path: Path, name: str, overrides: dict[str, str]):
    spec = make_spec(tmp_path, name, recipe=BLOCKS, devices_per_node=2, accelerator="cpu",
                     overrides=overrides)  # fmt: skip
    log = tmp_path / f"{name}.log"
    assert _run(spec, log) == 0, log.read_text()[-3000:]
    return spec


@pytest.mark.slow
def test_two_process_fsdp_matches_ddp_and_holds_half_the_parameters(tmp_path: Path) -> None:
    for accumulate in ("1", "2"):
        overrides = {**BASE, "trainer.accumulate_grad_batches": accumulate}
        ddp = final_state(_two(tmp_path, f"ddp{accumulate}", overrides))
        spec = _two(tmp_path, f"fsdp{accumulate}", {**overrides, "trainer.strategy": "fsdp"})
        fsdp = final_state(spec)
        assert fsdp["global_step"] == ddp["global_step"] == 12 // int(accumulate)
        assert fsdp["state_dict"].keys() == ddp["state_dict"].keys()
        for key, value in ddp["state_dict"].items():
            torch.testing.assert_close(fsdp["state_dict"][key], value, rtol=1e-5, atol=1e-5)
    shards = [json.loads((Path(spec.run_dir) / f"params_rank{r}.json").read_text())
              for r in (0, 1)]  # fmt: skip
    total = shards[0]["total"]
    assert sum(s["local"] for s in shards) == total
    assert all(abs(s["local"] - total / 2) <= 0.02 * total for s in shards), shards


@pytest.mark.slow
def test_sigterm_mid_epoch_resumes_fsdp_bitwise(tmp_path: Path) -> None:
    overrides = {**BASE, "n_train": "320", "step_sleep": "0.05", "trainer.max_epochs": "1",
                 "trainer.checkpoint_every_n_steps": "2", "trainer.strategy": "fsdp",
                 "trainer.signal_sync_every_n_steps": "2"}  # fmt: skip
    expected = final_state(_two(tmp_path, "reference", overrides))
    spec = make_spec(tmp_path, "interrupted", recipe=BLOCKS, devices_per_node=2,
                     accelerator="cpu", overrides=overrides)  # fmt: skip
    log = tmp_path / "interrupted.log"
    proc = start_backend(spec, log)
    assert made_progress(spec, proc), log.read_text()[-3000:]
    for pid in worker_pids(proc).values():  # like SLURM: every task gets the signal
        os.kill(pid, signal.SIGTERM)
    assert proc.wait(timeout=120) == REQUEUE_EXIT_CODE, log.read_text()[-3000:]
    assert _run(spec, log) == 0, log.read_text()[-3000:]
    text = log.read_text()
    assert "resumed from" in text and "batch 0)" not in text.split("resumed from")[1][:200]
    got = final_state(spec)
    assert_bitwise_equal(expected["state_dict"], got["state_dict"], "model")
    assert_bitwise_equal(expected["optimizer_states"], got["optimizer_states"], "optimizers")


def test_model_checkpoint_file_holds_the_full_weights_and_loads_back(tmp_path: Path) -> None:
    from torch.distributed.tensor import DTensor

    torch.manual_seed(0)
    model = BlocksModel()
    trainer = Trainer(**{**TRAINER, "max_epochs": 1}, logger=False, seed=1, strategy="fsdp",
                      default_root_dir=str(tmp_path))  # fmt: skip
    trainer.fit(model)
    expected = _full(model.state_dict())
    (before,) = trainer.validate(model)
    path = trainer.checkpoint_callback.best_model_path
    saved = torch.load(path, weights_only=True)["state_dict"]
    assert saved.keys() == expected.keys()
    assert not any(isinstance(v, DTensor) for v in saved.values())  # one plain file
    assert_bitwise_equal(expected, saved)
    with torch.no_grad():  # spoil the weights: the checkpoint must bring them back
        for p in model.parameters():
            p.zero_()
    (after,) = trainer.validate(model, ckpt_path=path)
    assert after == before
    assert_bitwise_equal(expected, _full(model.state_dict()))
    # predict_step gathers the root's parameters too: the same outputs as the plain model.
    tokens = torch.randint(0, 32, (20, 8), generator=torch.Generator().manual_seed(3))
    preds = trainer.predict(model, DataLoader(tokens, batch_size=16))
    plain = BlocksModel()
    plain.load_state_dict(expected)
    with torch.no_grad():
        torch.testing.assert_close(torch.cat(preds), plain(tokens), rtol=1e-5, atol=1e-6)


def test_a_ddp_checkpoint_does_not_resume_under_fsdp(tmp_path: Path) -> None:
    run_dir = str(tmp_path / "run")
    Trainer(**TRAINER, max_steps=2, logger=False, run_dir=run_dir).fit(BlocksModel())
    trainer = Trainer(**TRAINER, logger=False, run_dir=run_dir, strategy="fsdp")
    with pytest.raises(UserError, match="strategy changed from ddp to fsdp"):
        trainer.fit(BlocksModel(), ckpt_path="last")


@pytest.mark.slow
def test_two_process_bf16_mixed_keeps_fp32_shards_and_learns(tmp_path: Path) -> None:
    overrides = {**BASE, "trainer.strategy": "fsdp", "trainer.precision": "bf16-mixed",
                 "trainer.fsdp_blocks": "['Block']"}  # fmt: skip
    bf16 = final_state(_two(tmp_path, "bf16", overrides))
    fp32 = final_state(_two(tmp_path, "fp32", {**overrides, "trainer.precision": "32-true"}))
    assert {v.dtype for v in bf16["state_dict"].values()} == {torch.float32}
    for key, value in fp32["state_dict"].items():  # bf16 rounding, not another model
        torch.testing.assert_close(bf16["state_dict"][key], value, rtol=0.05, atol=0.05)


class MetaBlocks(BlocksModel):
    """Builds its blocks on the meta device in configure_model (Lightning's
    ModelParallelStrategy way), sharding them by hand over `self.device_mesh`."""

    def configure_model(self) -> None:
        from blocks import Block
        from torch.distributed.fsdp import fully_shard

        mesh = self.device_mesh
        self.mesh_seen = (mesh.mesh_dim_names, tuple(mesh.shape))
        with torch.device("meta"):
            self.blocks = torch.nn.ModuleList(Block(self.hparams.width) for _ in range(3))
        if self.hparams.shard_in_configure_model:
            for block in self.blocks:
                fully_shard(block, mesh=mesh["data_parallel"])


def test_meta_device_blocks_from_configure_model_are_materialized_after_sharding(
    tmp_path: Path,
) -> None:
    from torch.distributed.fsdp import FSDPModule
    from torch.distributed.tensor import DTensor

    for by_hand in (False, True):
        torch.manual_seed(0)
        model = MetaBlocks(shard_in_configure_model=by_hand)
        trainer = Trainer(**{**TRAINER, "max_epochs": 1}, logger=False, seed=1, strategy="fsdp",
                          max_steps=4, default_root_dir=str(tmp_path / str(by_hand)))  # fmt: skip
        trainer.fit(model)
        assert model.mesh_seen == (("data_parallel", "tensor_parallel"), (1, 1))
        assert all(isinstance(p, DTensor) and not p.is_meta for p in model.parameters())
        units = [name for name, m in model.named_modules() if isinstance(m, FSDPModule)]
        assert units == ["", "blocks.0", "blocks.1", "blocks.2"]
        assert trainer.callback_metrics["train_loss"].isfinite()
        # reset_parameters() ran: LayerNorm's weight is ones, and the Linears are not empty.
        mlp = _full(model.blocks[0].state_dict())
        assert mlp["norm.bias"].abs().sum() > 0  # trained away from reset's zeros
        assert 0 < mlp["mlp.0.weight"].abs().max() < 1  # an init, not to_empty's garbage


class NoReset(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(16))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


def test_a_meta_module_without_reset_parameters_is_a_user_error(tmp_path: Path) -> None:
    class MetaScale(BlocksModel):
        def configure_model(self) -> None:
            with torch.device("meta"):
                self.blocks = torch.nn.ModuleList([NoReset()])

    with pytest.raises(UserError, match="NoReset cannot initialise itself"):
        _fit_model(tmp_path, MetaScale(), strategy="fsdp")
    with pytest.raises(UserError, match="NoReset cannot initialise itself"):  # and under DDP
        _fit_model(tmp_path, MetaScale())


def _fit_model(tmp_path: Path, model, **kwargs) -> None:
    Trainer(**TRAINER, logger=False, max_steps=1, default_root_dir=str(tmp_path),
            **kwargs).fit(model)  # fmt: skip


def test_device_mesh_is_none_outside_fsdp(tmp_path: Path) -> None:
    model = BlocksModel()
    assert model.device_mesh is None  # no trainer
    _fit_model(tmp_path, model)
    assert model.device_mesh is None  # DDP (one process): no mesh, as Lightning's


@pytest.mark.slow
def test_compiled_blocks_under_fsdp_match_eager_fsdp(tmp_path: Path) -> None:
    """Two short one-process FSDP fits; ~10 s on a warm inductor cache, ~75 s cold."""
    from launcher.train.compile import compiled_modules

    eager = _full(_fit(tmp_path, "eager", strategy="fsdp", max_steps=4).state_dict())
    torch._dynamo.reset()
    model = _fit(tmp_path, "compiled", strategy="fsdp", max_steps=4, compile="blocks")
    assert compiled_modules(model) == ["blocks.0", "blocks.1", "blocks.2"]
    compiled = _full(model.state_dict())
    assert list(compiled) == list(eager)  # no `_orig_mod.`
    for key in eager:
        torch.testing.assert_close(compiled[key], eager[key], rtol=1e-4, atol=1e-5)
