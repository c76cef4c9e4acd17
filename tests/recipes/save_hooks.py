"""The tiny recipe, whose `on_save_checkpoint` records on which rank and how often it runs.

Each call appends a line to RUN_DIR/saves_rank<N>.txt and stores the call count in the
checkpoint (`saves`), which `on_load_checkpoint` reads back.
"""

from pathlib import Path

from tests.recipes.tiny import TRAINER, TinyModel  # noqa: F401


class SaveHooksModel(TinyModel):
    saves = 0

    def on_save_checkpoint(self, checkpoint):
        self.saves += 1
        checkpoint["saves"] = self.saves
        with open(Path(self.trainer.run_dir) / f"saves_rank{self.global_rank}.txt", "a") as f:
            f.write(f"{self.global_step}\n")

    def on_load_checkpoint(self, checkpoint):
        self.saves = checkpoint["saves"]
