"""`GradientAccumulationScheduler`: the trainer's accumulation changes per epoch."""

from __future__ import annotations

import pytest
import torch

from launcher import Trainer
from launcher.callbacks import Callback, GradientAccumulationScheduler
from launcher.errors import UserError
from tests.resume_harness import SaveAt, assert_bitwise_equal
from tests.train.test_trainer import QUIET, Regressor


class StepsPerEpoch(Callback):
    def __init__(self) -> None:
        self.steps: list[tuple[int, int, int]] = []  # (epoch, accumulate, steps that epoch)
        self._start = 0

    def on_train_epoch_start(self, trainer, module):
        self._start = trainer.global_step

    def on_train_epoch_end(self, trainer, module):
        steps = trainer.global_step - self._start
        self.steps.append((trainer.current_epoch, trainer.accumulate_grad_batches, steps))


def test_the_schedule_sets_accumulation_each_epoch(tmp_path):
    schedule = GradientAccumulationScheduler(scheduling={2: 2, 3: 4})  # epochs 0-1: 1 (default)
    watch = StepsPerEpoch()
    trainer = Trainer(max_epochs=4, callbacks=[schedule, watch], default_root_dir=tmp_path,
                      **QUIET)  # fmt: skip
    trainer.fit(Regressor())  # 8 batches an epoch
    assert watch.steps == [(0, 1, 8), (1, 1, 8), (2, 2, 4), (3, 4, 2)]
    assert schedule.get_accumulate_grad_batches(10) == 4


def test_epoch_with_accumulation_two_equals_batches_of_double_size(tmp_path):
    accumulated, whole = Regressor(batch_size=8), Regressor(batch_size=16)
    sched = GradientAccumulationScheduler(scheduling={0: 2})
    Trainer(max_epochs=1, callbacks=[sched], default_root_dir=tmp_path / "a", **QUIET).fit(
        accumulated
    )
    Trainer(max_epochs=1, default_root_dir=tmp_path / "b", **QUIET).fit(whole)
    torch.testing.assert_close(accumulated.net.weight, whole.net.weight)


def test_resuming_mid_epoch_under_the_schedule_is_exact(tmp_path):
    def trainer(root, *extra):
        sched = GradientAccumulationScheduler(scheduling={1: 2})
        return Trainer(max_epochs=2, callbacks=[sched, *extra], default_root_dir=root,
                       seed=3, **QUIET)  # fmt: skip

    straight = Regressor()
    trainer(tmp_path / "straight").fit(straight)
    ckpt = tmp_path / "mid.ckpt"
    first = Regressor()
    trainer(tmp_path / "first", SaveAt(10, ckpt)).fit(first)  # step 10: 2 steps into epoch 1
    resumed = Regressor()
    trainer(tmp_path / "resumed").fit(resumed, ckpt_path=str(ckpt))
    assert_bitwise_equal(resumed.state_dict(), straight.state_dict())


def test_schedule_and_trainer_accumulation_together_is_an_error(tmp_path):
    sched = GradientAccumulationScheduler(scheduling={0: 2})
    with pytest.raises(UserError, match="Either remove `accumulate_grad_batches`"):
        Trainer(max_epochs=1, accumulate_grad_batches=2, callbacks=[sched],
                default_root_dir=tmp_path, **QUIET).fit(Regressor())  # fmt: skip


@pytest.mark.parametrize("scheduling", [{}, {-1: 2}, {0: 0}])
def test_bad_schedules_are_refused(scheduling):
    with pytest.raises((TypeError, IndexError)):
        GradientAccumulationScheduler(scheduling=scheduling)
