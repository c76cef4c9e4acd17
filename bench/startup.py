"""What a short run costs beyond its work, in fresh processes as a user runs them.

    python bench/startup.py                 # ~5 minutes on 2 cores: 5 rounds
    python bench/startup.py --quick         # 3 rounds, 300-step epoch
    python bench/startup.py --reps 7

Every measurement is a fresh `python bench/startup.py --child VARIANT` process, its timer from
before the model and optimizer are built to the return of `fit()` (the run's end: final
checkpoint, loggers finalized, MLflow records delivered) or of the hand loop; the variants
interleaved round by round (`bench/common.interleave`), medians of `--reps` (at least 3).
The workload is `bench/common.py`'s 784-128-10 MLP, Adam, batch 64, one torch thread.

- **30 steps, defaults vs all off**: the Trainer's defaults (the MLflow logger into a brand-new
  output folder and sqlite store, progress lines, the epoch-end resume checkpoint,
  ModelCheckpoint) against the same fit with `logger=False, enable_progress_bar=False,
  enable_checkpointing=False`; the difference is the fixed cost (target <= 0.3 s). A hand
  loop is shown beside them. The store's schema comes from the template kept in the user's
  cache (`launcher/tracking/local_store.py`): the first store on a machine (an empty cache:
  MLflow's migrations) is timed once, separately.
- **3000 steps in one epoch, defaults vs the hand loop**: ratio, target <= 1.03.

The MLflow helper process's own CPU runs beside the training process: on 2 cores it overlaps
rather than adds, on 1 core it would add. Load average is printed with each section.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (  # noqa: E402
    BATCH,
    fmt_spread,
    interleave,
    machine_line,
    make_data,
    make_mlp,
    paired_ratios,
    summary_line,
)

_VARIANTS = ("defaults", "all-off", "hand")


def _child(variant: str, steps: int, out: str) -> float:
    """One measurement in this (fresh) process; returns seconds."""
    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader

    torch.set_num_threads(1)
    data = make_data(steps)
    if variant == "hand":
        start = time.perf_counter()
        model = make_mlp()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        for x, y in DataLoader(data, batch_size=BATCH, shuffle=True):
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
        return time.perf_counter() - start

    from launcher import Module, Trainer

    class MLP(Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = make_mlp()

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = F.cross_entropy(self.net(x), y)
            self.log("train_loss", loss, prog_bar=True)
            return loss

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=1e-3)

        def train_dataloader(self):
            return DataLoader(data, batch_size=BATCH, shuffle=True)

    off = variant == "all-off"
    settings = dict(logger=False, enable_progress_bar=False, enable_checkpointing=False)
    start = time.perf_counter()
    model = MLP()
    trainer = Trainer(max_epochs=1, default_root_dir=out, run_dir=os.path.join(out, "run"),
                      accelerator="cpu", **(settings if off else {}))  # fmt: skip
    trainer.fit(model)
    return time.perf_counter() - start


def _fresh(variant: str, steps: int, cache: str | None = None) -> float:
    """Run one child process in a brand-new output folder; its timer's seconds."""
    with tempfile.TemporaryDirectory(prefix="startup-bench-") as out:
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        env.pop("MLFLOW_TRACKING_URI", None)
        if cache is not None:
            env["XDG_CACHE_HOME"] = cache
        done = subprocess.run(
            [sys.executable, __file__, "--child", variant, "--steps", str(steps), "--out", out],
            env=env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"{variant} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])["seconds"]


def _load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--reps", type=int, default=None)
    parser.add_argument("--child", choices=_VARIANTS)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.child:
        print(json.dumps({"seconds": _child(args.child, args.steps, args.out)}))
        return
    reps = max(3, args.reps or (3 if args.quick else 5))
    long_steps = 300 if args.quick else 3000
    print(machine_line())

    print(f"\n30 steps, fresh processes ({_load()}):")
    short = interleave({name: (lambda n=name: _fresh(n, 30)) for name in _VARIANTS}, reps)
    with tempfile.TemporaryDirectory(prefix="startup-cache-") as empty_cache:
        first = _fresh("defaults", 30, cache=empty_cache)
    fixed = [d - o for d, o in zip(short["defaults"], short["all-off"], strict=True)]
    for name in _VARIANTS:
        print(f"  {name:9s} {fmt_spread(short[name])}")
    print(f"  defaults, first store on this machine (empty cache): {first:.3f}s")
    verdict = "met" if statistics.median(fixed) <= 0.3 else "MISSED"
    print(f"startup: 30-step fit fixed cost (defaults - all off) {fmt_spread(fixed)}; "
          f"target <= 0.3 s: {verdict}")  # fmt: skip

    print(f"\n{long_steps} steps in one epoch, fresh processes ({_load()}):")
    long = interleave({name: (lambda n=name: _fresh(n, long_steps)) for name in
                       ("defaults", "hand")}, reps)  # fmt: skip
    stats = paired_ratios(long["defaults"], long["hand"])
    print(summary_line("startup", f"{long_steps}-step fit, defaults vs the hand loop,", stats,
                       target=1.03))  # fmt: skip
    print(f"({_load()})")


if __name__ == "__main__":
    main()
