"""How many optimizer steps `fit` will take: `Trainer.estimated_stepping_batches`.

def configure_optimizers(self):
    total = self.trainer.estimated_stepping_batches
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1e-3, total_steps=total)
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from launcher.errors import UserError

if TYPE_CHECKING:
    from launcher.train.trainer import Trainer


def estimated_stepping_batches(trainer: Trainer) -> int | float:
    """Lightning's estimate: ceil(batches per epoch / accumulation) x max_epochs, capped by
    max_steps; max_steps (or inf) when training has no epoch limit or no known length."""
    max_epochs, max_steps = trainer.max_epochs, trainer.max_steps
    if max_epochs is None or max_epochs == -1:
        return math.inf if max_steps == -1 else max_steps
    if trainer.train_loader is None:
        raise UserError(
            "estimated_stepping_batches is known once fit has its train dataloader: read it in "
            "configure_optimizers() or later, not before trainer.fit()"
        )
    total = trainer.num_training_batches
    if total == math.inf:
        return max_steps
    steps = math.ceil(total / trainer.accumulate_grad_batches) * max(max_epochs, 1)
    return min(steps, max_steps) if max_steps != -1 else steps
