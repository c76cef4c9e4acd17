"""The training runtime: everything that runs inside a worker process to train a `Module`.

    trainer.py           `Trainer`: fit / validate / test, the loop read top to bottom
    loop.py              `LoopState` (`trainer.loop`): epoch, step, batch; saved, restored
    module.py            `Module` (LightningModule), `datamodule.py` `DataModule`
    resolve.py           device, dataloaders, callbacks, loggers, hooks resolved before the loops
    eval_loop.py         validation/test: one no-grad pass; returns metrics and their names
    state.py             the checkpoint as a mapping name -> part; exact resume
    checkpoint_store.py  checkpoint files: atomic writes, manifest, async saves, safe loads
    names.py             precision and accelerator names (torch-free; the CLI reads them too)
    distributed.py       process group, DDP, collectives     precision.py  autocast, scaler
    sampler.py           resumable data order                optim.py      configure_optimizers
    results.py           `self.log` bookkeeping              seed.py       RNG seeding and state
    preemption.py        SIGTERM/SIGUSR2 -> a flag           run_record.py what loggers hear

Imports `launcher.common`, `launcher.callbacks`, `launcher.loggers`, `launcher.cluster_env`,
`launcher.tracking.run_info`; never `launcher.cli` or `backends`. Only trainer.py touches the
Trainer's private attributes; the other modules use its public, typed surface.
"""
