"""`BaseFinetuning`: freeze, then unfreeze with a new param group; its state resumes exactly."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from launcher import Trainer
from launcher.callbacks import BaseFinetuning, Callback
from tests.resume_harness import SaveAt, assert_bitwise_equal
from tests.train.test_trainer import QUIET, Regressor


class WithBackbone(Regressor):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.backbone = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4))

    def forward(self, x):
        return self.net(self.backbone(x)).squeeze(-1)

    def configure_optimizers(self):
        # Lightning's recipe: only what trains at first goes to the optimizer
        return torch.optim.Adam(filter(lambda p: p.requires_grad, self.parameters()), lr=0.01)


class UnfreezeAt(BaseFinetuning):
    def __init__(self, epoch: int = 1) -> None:
        super().__init__()
        self.epoch = epoch

    def freeze_before_training(self, pl_module):
        self.freeze(pl_module.backbone)  # train_bn=True: the BatchNorm keeps training

    def finetune_function(self, pl_module, epoch, optimizer):
        if epoch == self.epoch:
            self.unfreeze_and_add_param_group(pl_module.backbone, optimizer)


class Watch(Callback):
    def __init__(self) -> None:
        self.seen: list[tuple[int, int, float, bool]] = []

    def on_train_epoch_end(self, trainer, module):
        opt = trainer.optimizers[0]
        linear = module.backbone[0]
        self.seen.append((trainer.current_epoch, len(opt.param_groups), opt.param_groups[-1]["lr"],
                          linear.weight.requires_grad))  # fmt: skip


def test_frozen_until_the_epoch_then_a_param_group_at_a_tenth_of_the_lr(tmp_path):
    model, watch = WithBackbone(), Watch()
    before = model.backbone[0].weight.detach().clone()
    trainer = Trainer(max_epochs=3, callbacks=[UnfreezeAt(1), watch], default_root_dir=tmp_path,
                      **QUIET)  # fmt: skip
    trainer.fit(model)
    assert watch.seen == [(0, 1, 0.01, False), (1, 2, 0.001, True), (2, 2, 0.001, True)]
    assert not torch.equal(model.backbone[0].weight, before)
    assert model.backbone[1].weight.requires_grad  # BatchNorm trained throughout


def test_frozen_weights_do_not_move():
    model = WithBackbone()
    BaseFinetuning.freeze(model.backbone, train_bn=False)
    assert not any(p.requires_grad for p in model.backbone.parameters())
    assert not model.backbone[1].track_running_stats
    BaseFinetuning.make_trainable(model.backbone)
    assert all(p.requires_grad for p in model.backbone.parameters())
    assert [type(m).__name__ for m in BaseFinetuning.flatten_modules(model)] == [
        "Linear", "Linear", "BatchNorm1d",
    ]  # fmt: skip
    opt = torch.optim.SGD(model.net.parameters(), lr=1.0)
    BaseFinetuning.unfreeze_and_add_param_group(model.backbone, opt, lr=0.5)
    assert len(opt.param_groups) == 2 and opt.param_groups[1]["lr"] == 0.5
    F.mse_loss(model(torch.randn(4, 4)), torch.zeros(4)).backward()
    assert model.backbone[0].weight.grad is not None


def test_resume_after_the_unfreeze_restores_the_param_groups_exactly(tmp_path):
    def run(root, model, *extra, ckpt=None):
        trainer = Trainer(max_epochs=3, callbacks=[UnfreezeAt(1), *extra], seed=0,
                          default_root_dir=root, **QUIET)  # fmt: skip
        trainer.fit(model, ckpt_path=ckpt)
        return trainer

    straight = WithBackbone()
    run(tmp_path / "straight", straight)
    ckpt = tmp_path / "mid.ckpt"
    run(tmp_path / "first", WithBackbone(), SaveAt(12, ckpt))  # epoch 1, after the unfreeze
    saved = torch.load(ckpt, weights_only=True)
    assert len(saved["optimizer_states"][0]["param_groups"]) == 2
    resumed = WithBackbone()
    trainer = run(tmp_path / "resumed", resumed, ckpt=str(ckpt))
    assert len(trainer.optimizers[0].param_groups) == 2
    assert_bitwise_equal(resumed.state_dict(), straight.state_dict())
