"""The training runtime: everything that runs inside a worker process to train a `Module`.

    trainer.py           `Trainer`: fit / validate / test, the loop read top to bottom
    module.py            `Module` (LightningModule), `datamodule.py` `DataModule`
    resolve.py           device, dataloaders, callbacks, loggers resolved before the loops
    eval_loop.py         validation/test: one no-grad pass, epoch means
    state.py             the checkpoint as a dict of the parts' states; exact resume
    checkpoint_store.py  checkpoint files: atomic writes, manifest, async saves, safe loads
    distributed.py       process group, DDP, collectives     precision.py  autocast, scaler
    sampler.py           resumable data order                optim.py      configure_optimizers
    results.py           `self.log` bookkeeping              seed.py       RNG seeding and state
    preemption.py        SIGTERM/SIGUSR2 -> a flag           run_record.py what loggers hear

Imports `launcher.common`, `launcher.callbacks`, `launcher.loggers`, `launcher.cluster_env`;
never `launcher.cli` or `backends`.
"""
