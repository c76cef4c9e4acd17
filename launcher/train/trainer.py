"""`Trainer`: runs a `Module`'s fit / validate / test / predict loops.

    trainer = Trainer(max_epochs=5, precision="bf16-mixed", accumulate_grad_batches=4)
    trainer.fit(model, datamodule=dm)            # resumes with ckpt_path="last"
    trainer.test(model, datamodule=dm)
    predictions = trainer.predict(datamodule=dm)  # the fitted model, its best checkpoint

The fit loop (`_fit_loop` / `_train_epoch`) reads top to bottom: forward under the
precision's autocast, `no_sync` on non-final micro-steps, backward, unscale, clip, step,
schedulers, logging, checkpoints. Everything else is a small object it calls:
`ClusterEnvironment`, `Distributed`, `Precision`, `CheckpointManager`, `Results`, callbacks and
loggers. Where the rest lives (all in `launcher/train/`): the loop position in `loop.py`
(`trainer.loop`), the checkpoint as a dict of parts in `state.py`, the validation/test epoch in
`eval_loop.py`, prediction in `predict_loop.py` (`trainer.predict_loop`), what loggers are
told about the run in `run_record.py` (`trainer.run_record`), what is resolved before the
loops (device, loaders, callbacks, loggers, hooks) in `resolve.py`.
On SIGTERM/SIGUSR2 `fit` checkpoints and raises `RequeueRequested`; the worker exits with 3.
"""

from __future__ import annotations

import functools
import inspect
import time
import warnings
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.utils.data import DataLoader, RandomSampler

# Runtime imports (not only for type checking): `--set trainer.*` reads the __init__'s hints.
from launcher.callbacks.base import Callback
from launcher.callbacks.early_stopping import EarlyStopping
from launcher.callbacks.model_checkpoint import ModelCheckpoint
from launcher.callbacks.progress import ProgressBar
from launcher.callbacks.timer import Timer
from launcher.cluster_env import ClusterEnvironment
from launcher.errors import REQUEUE_EXIT_CODE, OutOfSpace, RequeueRequested, RunStopped, UserError
from launcher.loggers.base import Logger
from launcher.train import eval_loop, stepping
from launcher.train import state as trainer_state
from launcher.train.checkpoint_store import BackgroundSaver, CheckpointManager
from launcher.train.compile import compile_module, parse_compile, unwrap_compiled
from launcher.train.distributed import Distributed
from launcher.train.eval_loop import EvalOutcome
from launcher.train.fsdp import FSDPSettings
from launcher.train.input_checks import LossWatch, check_epoch_yielded, check_train_loader
from launcher.train.lightning_args import (
    check_trainer_kwargs,
    check_weights_only,
    unsupported_trainer_attribute,
)
from launcher.train.limits import FitLimits
from launcher.train.loop import LoopState
from launcher.train.manual import (
    ManualOptimization,
    check_config,
    step_function,
    training_step_output,
    warn_ignored_scheduler_keys,
)
from launcher.train.meta_init import materialize, to_device
from launcher.train.optim import SchedulerConfig, parse_optimizers
from launcher.train.precision import build_precision
from launcher.train.predict_loop import PredictLoop, as_loader_list, prepare_predict_loader
from launcher.train.preemption import PreemptionSignals
from launcher.train.profiler import PassThroughProfiler, build_profiler
from launcher.train.resolve import (
    build_callbacks,
    build_loggers,
    collect_hooks,
    dataloader_from,
    limit_batches,
    move_to_device,
    overrides,
    prepare_data,
    refuse_uncalled_overrides,
    resolve_device,
    resolve_loaders,
    set_cudnn_benchmark,
    split_datamodule,
    warn_unknown_hooks,
)
from launcher.train.results import Results
from launcher.train.run_record import RunRecord
from launcher.train.sampler import make_resumable, start_epoch
from launcher.train.seed import global_seed, load_rng_state, rng_state
from launcher.train.sharded_checkpoint import ShardedCheckpointManager, resolve_format
from launcher.train.val_schedule import ValSchedule, check_interval_setting

if TYPE_CHECKING:
    from launcher.train.datamodule import DataModule
    from launcher.train.module import Module

_STRATEGIES = (
    "auto",
    "ddp",
    "ddp_find_unused_parameters_false",
    "ddp_find_unused_parameters_true",
    "fsdp",
)


class _StepWrapper(nn.Module):
    """Routes DDP's forward into `training_step`, so DDP sees every training forward."""

    module: Module

    def __init__(self, module: Module) -> None:
        super().__init__()
        self.module = module
        self.training_step = step_function(module.training_step)  # with or without batch_idx

    def forward(self, batch: Any, batch_idx: int) -> Any:
        return self.training_step(batch, batch_idx)


class Trainer:
    """Lightning's Trainer arguments, plus checkpoint/resume settings of our own.

    Our own: `seed` (seeds everything and the data order), `checkpoint_every_n_steps` and
    `checkpoint_every_seconds` (periodic resume checkpoints; steps here and in
    `signal_sync_every_n_steps` count batches that stepped, which under manual optimization
    may differ from `global_step`), `keep_last_checkpoints`,
    `async_checkpointing`, `run_dir` (where checkpoints and logs go), `experiment_name`,
    `run_name`, `tracking_uri`, `process_group_timeout` (seconds), `launch_settings` (recorded
    as params and checked on resume); under `strategy="fsdp"` (FSDP2, `train/fsdp.py`):
    `fsdp_blocks` (the class names of the blocks to shard one by one),
    `fsdp_reshard_after_forward` and `fsdp_cpu_offload`; `checkpoint_format` ("sharded":
    every rank writes its shards through torch.distributed.checkpoint, the default under
    FSDP; "full": one file by rank 0, the default otherwise; `train/sharded_checkpoint.py`);
    `compile` (True: `torch.compile` the model's forward; "blocks": each repeated block's,
    `train/compile.py`).

    What callbacks, loggers and models may read or call is listed in ARCHITECTURE.md
    (Contracts); besides: `loop` (the loop position, `LoopState`), `results` (the current
    stage's `Results`, where `Module.log` records), `call_hook(name, *args)`, `run_record`.
    """

    def __init__(
        self,
        max_epochs: int | None = None,
        max_steps: int = -1,
        min_epochs: int | None = None,
        min_steps: int | None = None,
        max_time: str | timedelta | dict[str, int] | None = None,
        accelerator: str = "auto",
        devices: int | str = "auto",
        num_nodes: int = 1,
        strategy: str = "auto",
        precision: str | int = "32-true",
        callbacks: list[Callback] | Callback | None = None,
        logger: Logger | list[Logger] | bool | None = True,
        accumulate_grad_batches: int = 1,
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str = "norm",
        fast_dev_run: bool | int = False,
        limit_train_batches: int | float | None = None,
        limit_val_batches: int | float | None = None,
        limit_test_batches: int | float | None = None,
        limit_predict_batches: int | float | None = None,
        check_val_every_n_epoch: int | None = 1,
        val_check_interval: int | float | None = None,
        overfit_batches: int | float = 0.0,
        reload_dataloaders_every_n_epochs: int = 0,
        num_sanity_val_steps: int | None = None,
        enable_model_summary: bool | None = None,
        log_every_n_steps: int = 50,
        enable_progress_bar: bool = True,
        enable_checkpointing: bool = True,
        default_root_dir: str | None = None,
        deterministic: bool = False,
        detect_anomaly: bool = False,
        benchmark: bool | None = None,
        inference_mode: bool = True,
        profiler: str | PassThroughProfiler | None = None,
        seed: int | None = None,
        checkpoint_every_n_steps: int | None = None,
        checkpoint_every_seconds: float | None = None,
        keep_last_checkpoints: int = 3,
        async_checkpointing: bool = True,
        run_dir: str | None = None,
        experiment_name: str | None = None,
        run_name: str | None = None,
        tracking_uri: str | None = None,
        process_group_timeout: float = 120.0,
        signal_sync_every_n_steps: int = 8,
        launch_settings: dict[str, Any] | None = None,
        fsdp_blocks: list[str] | None = None,
        fsdp_reshard_after_forward: bool = True,
        fsdp_cpu_offload: bool = False,
        checkpoint_format: str | None = None,
        compile: bool | str = False,
        **lightning_only: Any,
    ) -> None:
        check_trainer_kwargs(lightning_only, inspect.signature(Trainer).parameters)
        if accumulate_grad_batches < 1:
            raise UserError("accumulate_grad_batches must be >= 1")
        if num_nodes < 1:
            raise UserError(f"num_nodes must be >= 1, got {num_nodes}")
        self.fast_dev_run = int(fast_dev_run) if fast_dev_run is not True else 1
        if self.fast_dev_run:
            max_epochs, max_steps, max_time = 1, -1, None
        user_callbacks = callbacks if isinstance(callbacks, list) else [callbacks]
        has_timer = max_time is not None or any(isinstance(c, Timer) for c in user_callbacks)
        self.limits = FitLimits.parse(max_epochs, max_steps, min_epochs, min_steps, has_timer)
        self.max_epochs, self.max_steps = self.limits.max_epochs, self.limits.max_steps
        self.min_epochs, self.min_steps = self.limits.min_epochs, self.limits.min_steps
        self.max_time = max_time
        self.accelerator, self.devices, self.num_nodes = accelerator, devices, num_nodes
        self.strategy = strategy
        self.accumulate_grad_batches = accumulate_grad_batches  # callbacks may change it per epoch
        self.accumulate_grad_batches_arg = accumulate_grad_batches
        self.gradient_clip_val = gradient_clip_val
        self.gradient_clip_algorithm = gradient_clip_algorithm
        self.overfit_batches = overfit_batches
        if isinstance(overfit_batches, bool) or overfit_batches < 0:
            raise UserError(
                f"overfit_batches must be a count or a fraction >= 0, got {overfit_batches}"
            )
        overfit = overfit_batches or None  # as Lightning: it sets both train and val limits
        self.limit_train_batches = overfit or self.fast_dev_run or limit_train_batches
        self.limit_val_batches = overfit or self.fast_dev_run or limit_val_batches
        self.limit_test_batches = self.fast_dev_run or limit_test_batches
        self.limit_predict_batches = self.fast_dev_run or limit_predict_batches
        if self.fast_dev_run:
            val_check_interval, check_val_every_n_epoch = 1.0, 1
        self.check_val_every_n_epoch = check_val_every_n_epoch
        self.val_check_interval = check_interval_setting(
            val_check_interval, check_val_every_n_epoch
        )
        self.val_schedule = ValSchedule(self.val_check_interval, check_val_every_n_epoch)
        if isinstance(reload_dataloaders_every_n_epochs, bool) or not isinstance(
            reload_dataloaders_every_n_epochs, int
        ) or reload_dataloaders_every_n_epochs < 0:  # fmt: skip
            raise UserError("reload_dataloaders_every_n_epochs must be an int >= 0, got "
                            f"{reload_dataloaders_every_n_epochs!r}")  # fmt: skip
        self.reload_dataloaders_every_n_epochs = reload_dataloaders_every_n_epochs
        # Lightning's defaults: 2 sanity batches (-1 all, 0 none), none under fast_dev_run.
        sanity = 2 if num_sanity_val_steps is None else num_sanity_val_steps
        if sanity < -1:
            raise UserError(f"num_sanity_val_steps must be -1 (all), 0 (off) or more, got {sanity}")
        self.num_sanity_val_steps = 0 if self.fast_dev_run else sanity
        self.enable_model_summary = enable_model_summary is not False and not self.fast_dev_run
        self.log_every_n_steps = max(1, log_every_n_steps)
        self.enable_progress_bar = enable_progress_bar
        self.enable_checkpointing = enable_checkpointing and not self.fast_dev_run
        self.default_root_dir = str(default_root_dir or Path.cwd() / "outputs")
        self.deterministic, self.seed = deterministic, seed
        self.detect_anomaly = detect_anomaly  # Lightning's: autograd anomaly mode during fit
        self.loss_watch = LossWatch(detect_anomaly)
        self.benchmark, self.inference_mode = benchmark, inference_mode
        self.profiler = build_profiler(profiler)
        self.checkpoint_every_n_steps = checkpoint_every_n_steps
        self.checkpoint_every_seconds = checkpoint_every_seconds
        self.keep_last_checkpoints, self.async_checkpointing = (
            keep_last_checkpoints,
            async_checkpointing,
        )
        self.run_dir: str | None = run_dir  # agreed on by every rank when a stage starts
        self.experiment_name, self.run_name = experiment_name, run_name
        self.tracking_uri = tracking_uri
        self.signal_sync_every_n_steps = max(1, signal_sync_every_n_steps)
        self.launch_settings = dict(launch_settings or {})
        self._logger_arg = logger
        self.default_logger = logger is True  # launcher's own MLflow run (resolve.build_loggers)
        self._user_callbacks: list[Callback] = (
            list(callbacks)  # a copy: the default checkpoint below must not join the user's list
            if isinstance(callbacks, list)
            else ([callbacks] if callbacks is not None else [])
        )
        if max_time is not None:  # Lightning adds a Timer; a user's own Timer wins
            if not any(isinstance(c, Timer) for c in self._user_callbacks):
                self._user_callbacks.append(Timer(duration=max_time, interval="step"))
        if self.enable_checkpointing and not any(
            isinstance(c, ModelCheckpoint) for c in self._user_callbacks
        ):  # Lightning's default: the last epoch's weights, epoch=N-step=M.ckpt
            self._user_callbacks.append(ModelCheckpoint())

        self.env = ClusterEnvironment.detect()
        self.device = resolve_device(accelerator, devices, num_nodes, self.env)
        if strategy not in _STRATEGIES:
            raise UserError(
                f"unknown strategy {strategy!r}; this trainer supports {', '.join(_STRATEGIES)}"
            )
        find_unused = strategy == "ddp_find_unused_parameters_true"
        fsdp = FSDPSettings.parse(
            strategy, fsdp_blocks, fsdp_reshard_after_forward, fsdp_cpu_offload
        )
        self.dist = Distributed(self.env, self.device, process_group_timeout, find_unused, fsdp)
        self.checkpoint_format = resolve_format(checkpoint_format, self.dist.strategy)
        self.precision_plugin = build_precision(precision, self.device)
        self.compile = parse_compile(compile)  # "model" | "blocks" | None
        if deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        set_cudnn_benchmark(benchmark, deterministic)
        if seed is not None:
            from launcher.train.seed import seed_everything

            seed_everything(seed)

        self.loop = LoopState(accumulate_grad_batches=accumulate_grad_batches)
        self.should_stop = False
        self.stage = "fit"
        self.sanity_checking = False  # True while the sanity check's validation runs
        self.is_last_batch = False  # True during the last batch of a training epoch
        self.datamodule: DataModule | None = None
        # batch -> batch on the device, through the model's transfer hooks if it has any
        self.transfer_batch: Callable[[Any], Any] = functools.partial(
            move_to_device, device=self.device
        )
        self.callbacks: list[Callback] = []
        self.loggers: list[Logger] = []
        self.optimizers: list[torch.optim.Optimizer] = []
        self.lr_scheduler_configs: list[SchedulerConfig] = []
        self.manual_optimization = ManualOptimization(self)  # self.optimizers(), manual_backward
        self.callback_metrics: dict[str, torch.Tensor] = {}
        self.logged_metrics: dict[str, float] = {}
        self.num_training_batches: int | float = 0
        self.num_val_batches: int | float = 0
        self.num_test_batches: int | float = 0
        self.num_predict_batches: list[int | float] = []
        self.predict_loop = PredictLoop(self)
        self.train_loader: DataLoader | None = None
        self.val_loader: DataLoader | None = None
        self.checkpoints: CheckpointManager | None = None
        self.checkpoint_files = BackgroundSaver()  # ModelCheckpoint's files, off this thread
        self.run_record = RunRecord(self)
        self.signals = PreemptionSignals()
        self.train_results = Results("train", self.dist.all_reduce)
        self.results: Results | None = None  # the current stage's: where Module.log records
        self.current_hook: str | None = None  # the hook call_hook is running (None: a step)
        self._module: Module | None = None
        self._hooks: dict[str, list[Callable[..., Any]]] = {}
        self._step_wrapper: _StepWrapper | None = None
        self._ddp_model: nn.Module | None = None
        self._periodic = False  # any periodic (step/time) checkpoints configured (set in fit)
        self._last_periodic_save = time.monotonic()
        self._last_eval = EvalOutcome()  # the last validation/test: what it logs, shows
        # Where fit's loaders come from, and the epochs they were loaded in (for reloading).
        self._loader_source: tuple[Any, ...] = (None, None, None, None)
        self._train_loaded_epoch = self._val_loaded_epoch = 0

    # -- what callbacks and models read ----------------------------------------------------
    @property
    def current_epoch(self) -> int:
        return self.loop.epoch

    @property
    def global_step(self) -> int:
        """Optimizer steps taken (one per `accumulate_grad_batches` batches; under manual
        optimization, one per `opt.step()` of the optimizers `Module.optimizers()` returns)."""
        return self.loop.global_step

    @property
    def module(self) -> Module:
        """The model being trained or evaluated (set by fit/validate/test)."""
        if self._module is None:
            raise RuntimeError("the Trainer has no model yet: call fit, validate or test")
        return self._module

    @property
    def lightning_module(self) -> Module:
        """Lightning's name for `module`."""
        return self.module

    @property
    def estimated_stepping_batches(self) -> int | float:
        """Optimizer steps `fit` will take (accumulation, limits, max_epochs/max_steps)."""
        return stepping.estimated_stepping_batches(self)

    @property
    def precision(self) -> str:
        """The precision in Lightning's words ("32-true", "bf16-mixed", "16-mixed"; "fp8").

        The object that applies it (autocast, the fp16 GradScaler) is `precision_plugin`.
        """
        return self.precision_plugin.name

    @property
    def global_rank(self) -> int:
        return self.env.global_rank

    @property
    def local_rank(self) -> int:
        return self.env.local_rank

    @property
    def world_size(self) -> int:
        return self.env.world_size

    @property
    def is_global_zero(self) -> bool:
        return self.env.global_rank == 0

    @property
    def logger(self) -> Logger | None:
        return self.loggers[0] if self.loggers else None

    @property
    def checkpoint_callback(self) -> ModelCheckpoint | None:
        """The first `ModelCheckpoint` callback, or None."""
        return next((c for c in self.callbacks if isinstance(c, ModelCheckpoint)), None)

    # Lightning's other read-only names for the same facts.
    @property
    def model(self) -> Module:
        return self.module

    @property
    def node_rank(self) -> int:
        return self.env.node_rank

    @property
    def num_devices(self) -> int:
        """Processes (devices) per node."""
        return self.env.local_world_size

    @property
    def checkpoint_callbacks(self) -> list[ModelCheckpoint]:
        return [c for c in self.callbacks if isinstance(c, ModelCheckpoint)]

    @property
    def early_stopping_callbacks(self) -> list[EarlyStopping]:
        return [c for c in self.callbacks if isinstance(c, EarlyStopping)]

    @property
    def early_stopping_callback(self) -> EarlyStopping | None:
        return next(iter(self.early_stopping_callbacks), None)

    @property
    def progress_bar_callback(self) -> ProgressBar | None:
        return next((c for c in self.callbacks if isinstance(c, ProgressBar)), None)

    @property
    def train_dataloader(self) -> DataLoader | None:
        return self.train_loader

    @property
    def val_dataloaders(self) -> DataLoader | None:
        return self.val_loader

    @property
    def received_sigterm(self) -> bool:
        return self.signals.received is not None

    def __getattr__(self, name: str) -> Any:
        # Only reached for names the Trainer lacks: Lightning's get a reason, not a bare miss.
        raise AttributeError(unsupported_trainer_attribute(name))

    @property
    def log_dir(self) -> str | None:
        """Lightning's: the first logger's `log_dir` (CSV, TensorBoard) or `save_dir`, else
        `default_root_dir`. Call it on every rank (rank 0's answer is broadcast)."""
        from launcher.loggers import CSVLogger, TensorBoardLogger

        dirpath: str | None = self.default_root_dir
        if self.loggers:
            first = self.loggers[0]
            versioned = isinstance(first, (CSVLogger, TensorBoardLogger))
            dirpath = first.log_dir if versioned else first.save_dir
        return self.broadcast(dirpath)

    @property
    def checkpoint_dir(self) -> str:
        return str(Path(self.run_dir or self.default_root_dir) / "checkpoints")

    @property
    def progress_bar_metrics(self) -> dict[str, float]:
        names = self._prog_bar_names()
        return {k: float(v) for k, v in self.callback_metrics.items() if k in names}

    def barrier(self) -> None:
        self.dist.barrier()

    def broadcast(self, obj: Any, src: int = 0) -> Any:
        return self.dist.broadcast(obj, src)

    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        """Send `metrics` to every logger (rank 0 only), at `step`; as Lightning, without a
        step: at the batches that stepped (the global step unless under manual optimization),
        with the `epoch` added. Ints (the epoch) stay ints."""
        if not self.loggers or not metrics:
            return
        if step is None:
            step, metrics = self.loop.batches_stepped, {"epoch": self.current_epoch, **metrics}
        values = {k: v if type(v) is int else float(v.detach() if isinstance(v, torch.Tensor) else v)
                  for k, v in metrics.items()}  # fmt: skip
        self.logged_metrics.update(values)
        for lg in self.loggers:
            lg.log_metrics(values, step)
            lg.save()  # as Lightning's logger connector (CSVLogger writes its rows here)

    def save_checkpoint(
        self, filepath: str, weights_only: bool = False, *, background: bool = False
    ) -> None:
        """Write a full checkpoint to `filepath` (call on every rank; rank 0 writes).

        `background=True` (ModelCheckpoint's saves) returns once the state is copied; the
        file is written by `checkpoint_files`, whose `wait()` anything reading it calls first.
        """
        trainer_state.save_to(self, filepath, weights_only, background)

    def call_hook(self, hook: str, *args: Any) -> None:
        """Call `hook` on every callback that defines it, then on the model.

        trainer.call_hook("on_train_epoch_end")
        trainer.call_hook("on_train_batch_end", outputs, batch, batch_idx)

        Callbacks get `(trainer, model, *args)`, model hooks `(*args)`; the names are the
        `Callback` base's hooks.
        """
        fns = self._hooks.get(hook)
        if not fns:
            return
        previous, self.current_hook = self.current_hook, hook  # `Module.log` reads where it is
        try:
            for fn in fns:
                fn(*args)
        finally:
            self.current_hook = previous

    # -- entry points ---------------------------------------------------------------------
    def fit(
        self,
        model: Module,
        train_dataloaders: Any = None,
        val_dataloaders: Any = None,
        datamodule: DataModule | None = None,
        ckpt_path: str | None = None,
        weights_only: bool | None = None,
    ) -> None:
        """Train `model`; `ckpt_path` ("last", a file or a run dir) resumes exactly.

        Raises `RequeueRequested` after checkpointing on SIGTERM/SIGUSR2.
        """
        check_weights_only(weights_only)
        model = unwrap_compiled(model)  # torch.compile(model): the model, its forward compiled
        train_dataloaders, datamodule = split_datamodule(
            "fit", train_dataloaders, datamodule, val_dataloaders
        )
        check_config(self, model)  # settings manual optimization cannot honour, as Lightning
        self._start("fit", model, datamodule)
        try:
            train_loader, val_loader = resolve_loaders(
                self, model, datamodule, train_dataloaders, val_dataloaders
            )
            self._agree_on_seed()
            self.limits.warn_if_defaulted()
            self._loader_source = (model, datamodule, train_dataloaders, val_dataloaders)
            self._set_train_loader(train_loader)
            check_train_loader(self)
            self._set_val_loader(val_loader)
            self.optimizers, self.lr_scheduler_configs = parse_optimizers(
                model.configure_optimizers()
            )
            self.manual_optimization.setup()
            warn_ignored_scheduler_keys(self, model)
            self.train_results = Results("train", self.dist.all_reduce)
            self.results = self.train_results  # on_train_start may log epoch values
            self.loop.finished = False
            if ckpt_path and trainer_state.restore(self, ckpt_path):
                return  # the run had already finished
            self._reload_dataloaders_if_due(resumed=True)
            self.run_record.start()
            self.call_hook("on_fit_start")
            self._sanity_check()
            self.signals.install()
            if not self._fit_done():  # as Lightning: max_epochs=0 trains nothing, no train hooks
                self.call_hook("on_train_start")
                with torch.autograd.set_detect_anomaly(self.detect_anomaly):
                    self._fit_loop()
                self.call_hook("on_train_end")
            self.call_hook("on_fit_end")
            self.loop.finished = True
            if self.enable_checkpointing:
                trainer_state.save_resume_checkpoint(self)
            self.checkpoint_files.wait()  # ModelCheckpoint's last files are on disk
            self.run_record.upload_best()
            self.run_record.end("FINISHED")
            self.profiler.report("fit", self.run_dir, self.is_global_zero)
        except BaseException as exc:
            self._fail(exc)
            raise
        finally:
            self._end("fit")

    def validate(self, model: Module | None = None, dataloaders: Any = None,
                 datamodule: DataModule | None = None,
                 ckpt_path: str | None = None,
                 weights_only: bool | None = None) -> list[dict[str, float]]:  # fmt: skip
        """Run one validation epoch; returns `[{metric: value}]` like Lightning.

        Without `model`, the fitted one with `ckpt_path` ("best" by default, "last", a file).
        """
        check_weights_only(weights_only)
        return self._evaluate("validate", model, dataloaders, datamodule, ckpt_path)

    def test(self, model: Module | None = None, dataloaders: Any = None,
             datamodule: DataModule | None = None,
             ckpt_path: str | None = None,
             weights_only: bool | None = None) -> list[dict[str, float]]:  # fmt: skip
        """Run one test epoch; returns `[{metric: value}]` like Lightning (`validate`'s args)."""
        check_weights_only(weights_only)
        return self._evaluate("test", model, dataloaders, datamodule, ckpt_path)

    def predict(self, model: Module | None = None, dataloaders: Any = None,
                datamodule: DataModule | None = None, return_predictions: bool | None = None,
                ckpt_path: str | None = None,
                weights_only: bool | None = None) -> list[Any] | None:  # fmt: skip
        """`predict_step` over `predict_dataloader()` (or `dataloaders`); the predictions.

        preds = trainer.predict(model, dm)   # [step output, ...]; [[...], [...]] for 2 loaders

        Under DDP each rank predicts and returns its own shard. `return_predictions=False`
        keeps nothing (use a `BasePredictionWriter`); `model` and `ckpt_path` as in `validate`.
        """
        check_weights_only(weights_only)
        dataloaders, datamodule = split_datamodule("predict", dataloaders, datamodule)
        model, model_provided = self._model_for("predict", model)
        self._start("predict", model, datamodule)
        try:
            source = dataloaders
            if source is None:
                source = resolve_loaders(self, model, datamodule, None, None, "predict")[1]
            if source is None:
                raise UserError("predict: no dataloader; define predict_dataloader() or pass "
                                "dataloaders to trainer.predict")  # fmt: skip
            loaders = [prepare_predict_loader(dl, self.global_rank, self.world_size)
                       for dl in as_loader_list(source)]  # fmt: skip
            ckpt_path = trainer_state.select_ckpt_path(self, ckpt_path, model_provided, 3)
            if ckpt_path:
                trainer_state.load_weights(self, ckpt_path)
            keep = True if return_predictions is None else return_predictions
            return self.predict_loop.run(loaders, keep)
        except BaseException as exc:
            self.call_hook("on_exception", exc)
            raise
        finally:
            self._end("predict")

    # -- the fit loop ---------------------------------------------------------------------
    def _fit_loop(self) -> None:
        loop = self.loop
        while not self._fit_done():
            if not loop.epoch_done:
                self._reload_dataloaders_if_due()
                with self.profiler.profile("run_training_epoch"):
                    self._train_epoch()
            # Also after a stop mid-epoch (max_steps, should_stop): Lightning ends the epoch.
            self._end_of_epoch()

    def _train_epoch(self) -> None:
        model, ddp_model, loop = self.module, self._ddp_model, self.loop
        precision = self.precision_plugin
        loader = self.train_loader
        assert loader is not None and ddp_model is not None  # set in fit before the loop
        # One process: call training_step directly (the wrapper exists for DDP's forward hooks).
        step = (
            ddp_model if ddp_model is not self._step_wrapper else self._step_wrapper.training_step
        )
        manual = not model.automatic_optimization  # training_step steps: see manual.py
        profiler = self.profiler  # a no-op unless Trainer(profiler="simple")
        step = profiler.wrap(f"[LightningModule]{type(model).__name__}.training_step", step)
        optimizer_step = profiler.wrap("optimizer_step", self._optimizer_step)
        transfer = profiler.wrap("transfer_batch_to_device", self.transfer_batch)
        batch_start = self._hooks.get("on_train_batch_start")
        before_backward = self._hooks.get("on_before_backward")
        after_backward = self._hooks.get("on_after_backward")
        results = self.results = self.train_results
        # offset_batch/sample_offset: the epoch was resumed at another world size (reshard.py)
        start_epoch(loader, loop.epoch, loop.seed, loop.batch_idx - loop.offset_batch,
                    loop.sample_offset)  # fmt: skip
        if loop.batch_idx == 0:
            self.call_hook("on_train_epoch_start")
        # Read after the epoch-start hook: GradientAccumulationScheduler changes it per epoch.
        accumulate = loop.accumulate_grad_batches = self.accumulate_grad_batches
        model.train()
        total = self.num_training_batches
        batch_idx = first_batch = loop.batch_idx
        watch, detect = self.loss_watch, self.detect_anomaly
        for batch in loader:
            if batch_idx >= total:
                break
            batch = transfer(batch)
            results.batch = batch  # sized only if an epoch mean needs it
            self.is_last_batch = batch_idx + 1 == total
            if batch_start:
                self.call_hook("on_train_batch_start", batch, batch_idx)
            last_micro = batch_idx % accumulate == accumulate - 1 or batch_idx + 1 == total
            with self.dist.no_sync(ddp_model, skip_sync=manual or not last_micro):
                with precision.forward_context():
                    output = step(batch, batch_idx)
                if manual:  # it did its own backward and steps; manual_backward syncs DDP
                    output, loss = training_step_output(output), None
                else:
                    loss = output["loss"] if isinstance(output, dict) else output
                # As Lightning: gradients are zeroed after the first micro-batch's forward.
                if batch_idx % accumulate == 0 and not manual:
                    self._zero_grad()
                if loss is not None:
                    if accumulate > 1:
                        loss = loss / accumulate
                    if before_backward:
                        self.call_hook("on_before_backward", loss)
                    precision.backward(loss)
                    if after_backward:
                        self.call_hook("on_after_backward")
                elif not manual:  # manual optimization returns None by design
                    watch.no_loss()
            if last_micro and not manual:
                optimizer_step()
            loop.batches_stepped += last_micro
            step_metrics = results.step_metrics()
            if step_metrics:
                self.callback_metrics.update(results.with_plain_names(step_metrics))
            batch_idx += 1
            loop.batch_idx = batch_idx
            loop.total_batch_idx += 1
            if last_micro and self.loggers and loop.batches_stepped % self.log_every_n_steps == 0:
                logged = self._logger_step_metrics(step_metrics)
                self.log_metrics(logged and logged | {"epoch": loop.epoch}, self._log_step())
                watch.check(loss, self)  # on the host already: the logging synced
            elif detect:
                watch.check(loss, self)
            self.call_hook("on_train_batch_end", output, batch, batch_idx - 1)
            if batch_idx < total and self._validation_due(last_micro, last_batch=False):
                self._validate_in_fit(last_micro)
            if last_micro and self._after_optimizer_step():
                return
        loop.epoch_done = True
        watch.end_epoch(self, batch_idx - first_batch)
        check_epoch_yielded(self, batch_idx - first_batch)

    def _optimizer_step(self) -> None:
        precision, clip, loop = self.precision_plugin, self.gradient_clip_val, self.loop
        stepped = True
        for optimizer in self.optimizers:
            precision.unscale(optimizer)  # hooks and clipping see true gradients (no-op off fp16)
            self.call_hook("on_before_optimizer_step", optimizer)
            if clip:
                params = [p for g in optimizer.param_groups for p in g["params"]]
                if self.gradient_clip_algorithm == "value":
                    nn.utils.clip_grad_value_(params, clip)
                else:
                    nn.utils.clip_grad_norm_(params, clip)
            stepped = precision.optimizer_step(optimizer) and stepped
        loop.global_step += 1
        if stepped:  # fp16 skipped steps (inf/NaN) must not advance the schedule
            for config in self.lr_scheduler_configs:
                if config.interval == "step" and loop.global_step % config.frequency == 0:
                    self._step_scheduler(config)

    def _zero_grad(self) -> None:
        for optimizer in self.optimizers:
            self.call_hook("on_before_zero_grad", optimizer)
            optimizer.zero_grad(set_to_none=True)

    def _after_optimizer_step(self) -> bool:
        """Periodic checkpoints, preemption signals, max_steps. True ends the epoch early."""
        stepped = self.loop.batches_stepped  # = global_step unless manual optimization
        single = self.env.world_size == 1
        if single and self.signals.received is None and not self._periodic:
            return self._stop_now()  # the common case, every step: nothing to decide
        if single or stepped % self.signal_sync_every_n_steps == 0:
            due = self._periodic_checkpoint_due()
            signalled = self.signals.received is not None
            if not single:  # every rank must agree on the same step boundary
                flags = self.dist.all_reduce(torch.tensor([int(due), int(signalled)]), "max")
                due, signalled = bool(flags[0]), bool(flags[1])
            if signalled:
                self._checkpoint_and_requeue()
            if due and not self._stop_now():
                trainer_state.save_resume_checkpoint(self)
                self._last_periodic_save = time.monotonic()
        return self._stop_now()

    def _stop_now(self) -> bool:
        """max_steps reached, or should_stop once min_epochs/min_steps are met."""
        return self.limits.max_reached(self.loop) or (
            self.should_stop and self.limits.can_stop_early(self.loop)
        )

    def _periodic_checkpoint_due(self) -> bool:
        if not self.enable_checkpointing:
            return False
        every = self.checkpoint_every_n_steps
        if every and self.loop.batches_stepped % every == 0:
            return True
        seconds = self.checkpoint_every_seconds
        if not seconds:
            return False
        return time.monotonic() - self._last_periodic_save >= seconds

    def _end_of_epoch(self) -> None:
        results, loop, epoch = self.train_results, self.loop, self.loop.epoch
        last_batch = loop.epoch_done or loop.batch_idx >= self.num_training_batches
        loop.epoch_done = True  # also after a stop mid-epoch: the epoch counts as done
        due = [c for c in self.lr_scheduler_configs if c.interval == "epoch"
               and (epoch + 1) % c.frequency == 0] if self.module.automatic_optimization else []  # fmt: skip
        # Lightning's order: epoch schedulers right after the last batch, then validation
        # (logged at once), the training epoch's values, the epoch-end hooks (what they log
        # counts for this epoch), the plateau schedulers (they see what those logged), logging.
        for config in due:
            if not config.monitor:
                self._step_scheduler(config)
        if self._validation_due(True, last_batch=last_batch):
            self._validate_in_fit(True)
        epoch_metrics = results.epoch_metrics()
        self.callback_metrics.update(results.with_plain_names(epoch_metrics))
        self.results = results
        self.call_hook("on_train_epoch_end")
        epoch_metrics.update(results.take_epoch_end_values())
        for config in due:
            if config.monitor:
                self._step_scheduler(config)
        self.log_metrics(self._logger_names_only(epoch_metrics) | {"epoch": epoch},
                         step=self._log_step())  # fmt: skip
        self.loop.next_epoch()
        if self.enable_checkpointing and not self._fit_done():
            trainer_state.save_resume_checkpoint(self)
            self._last_periodic_save = time.monotonic()

    def _sanity_check(self) -> None:
        """Lightning's sanity check: a few validation batches before training, which log
        nothing and leave the random state as they found it (it also runs on a resume)."""
        steps, total = self.num_sanity_val_steps, self.num_val_batches
        limit = total if steps < 0 else min(steps, total)
        if self.val_loader is None or not limit or not hasattr(self.module, "validation_step"):
            return
        kept_metrics, kept_eval, kept_rng = (
            dict(self.callback_metrics),
            self._last_eval,
            rng_state(),
        )
        self.sanity_checking = True
        try:
            self.call_hook("on_sanity_check_start")
            eval_loop.run_eval(self, "validate", self.val_loader, limit)
            self.call_hook("on_sanity_check_end")
        finally:
            self.sanity_checking = False
        self.callback_metrics.clear()
        self.callback_metrics.update(kept_metrics)
        self._last_eval = kept_eval
        load_rng_state(kept_rng)

    def _fit_done(self) -> bool:
        if not self.num_training_batches:
            return True  # Lightning: "`Trainer.fit` stopped: No training batches."
        return self._stop_now()

    # -- validation inside fit ----------------------------------------------------------------
    def _validation_due(self, at_step: bool, last_batch: bool) -> bool:
        """Per val_check_interval / check_val_every_n_epoch, or a stop that may now happen."""
        loop = self.loop
        if self.val_loader is None or not self.num_val_batches:
            return False
        if loop.last_val_batch == loop.total_batch_idx:
            return False  # already validated here (a resume at a validation point)
        schedule = self.val_schedule
        if schedule.due(loop, last_batch):
            return True
        # As Lightning: a requested stop that min_epochs/min_steps allow validates first.
        stopping = at_step and self.should_stop and self.limits.can_stop_early(loop)
        return stopping and schedule.epoch_validates(loop.epoch)

    def _validate_in_fit(self, at_step: bool, log: bool = True) -> dict[str, Any]:
        """One validation inside fit; mid-epoch (`log`) its metrics go to the loggers at once."""
        self._reload_val_loader_if_due()
        assert self.val_loader is not None
        if at_step:  # not inside gradient accumulation: the gradients are still needed there
            self.module.on_validation_model_zero_grad()
        self.loop.last_val_batch = self.loop.total_batch_idx
        with self.profiler.profile("run_validation"):
            metrics = self._run_eval("validate", self.val_loader, self.num_val_batches)
        if log:
            names = self._last_eval.logger_names
            logged = {k: v for k, v in metrics.items() if k.removesuffix("_epoch") in names}
            self.log_metrics(logged | {"epoch": self.loop.epoch} if logged else {},
                             step=self._log_step())  # fmt: skip
        return metrics

    def _log_step(self) -> int:
        """Lightning's step for what the loop logs: the batches that stepped before this one."""
        return max(0, self.loop.batches_stepped - 1)

    # -- dataloaders: set, and reloaded every n epochs -----------------------------------------
    def _set_train_loader(self, loader: Any) -> None:
        shuffle = None
        if self.overfit_batches:
            shuffle = False  # as Lightning: the same batches every epoch
            if isinstance(getattr(loader, "sampler", None), RandomSampler):
                warnings.warn(
                    "You requested to overfit but enabled train dataloader shuffling. We are "
                    "turning off the train dataloader shuffling for you.",
                    UserWarning,
                    stacklevel=3,
                )
        self.train_loader = make_resumable(
            loader, self.loop.seed, self.global_rank, self.world_size, shuffle=shuffle
        )
        self.num_training_batches = limit_batches(self.train_loader, self.limit_train_batches)
        self.val_schedule.setup(self.num_training_batches, validates=bool(self.num_val_batches))
        self._train_loaded_epoch = self.loop.epoch

    def _set_val_loader(self, loader: Any) -> None:
        self.val_loader = loader and make_resumable(
            loader, self.loop.seed, self.global_rank, self.world_size, shuffle=False
        )
        self.num_val_batches = limit_batches(self.val_loader, self.limit_val_batches)
        self.val_schedule.setup(self.num_training_batches, validates=bool(self.num_val_batches))
        self._val_loaded_epoch = self.loop.epoch

    def _reload_dataloaders_if_due(self, resumed: bool = False) -> None:
        """At an epoch start, every n epochs; after a resume, for the restored epoch."""
        every, epoch = self.reload_dataloaders_every_n_epochs, self.loop.epoch
        if every and (epoch - self._train_loaded_epoch >= every
                      or resumed and epoch != self._train_loaded_epoch):  # fmt: skip
            model, datamodule, train, _val = self._loader_source
            self._set_train_loader(train or dataloader_from(model, datamodule, "train_dataloader"))
        if resumed:
            self._reload_val_loader_if_due(resumed)

    def _reload_val_loader_if_due(self, resumed: bool = False) -> None:
        every, epoch = self.reload_dataloaders_every_n_epochs, self.loop.epoch
        if every and (epoch - self._val_loaded_epoch >= every
                      or resumed and epoch != self._val_loaded_epoch):  # fmt: skip
            model, datamodule, _train, val = self._loader_source
            self._set_val_loader(val or dataloader_from(model, datamodule, "val_dataloader"))

    def _step_scheduler(self, config: SchedulerConfig) -> None:
        if config.monitor:
            if config.monitor not in self.callback_metrics:
                raise UserError(self._missing_metric_message(config.monitor, "lr_scheduler"))
            config.scheduler.step(self.callback_metrics[config.monitor])
        else:
            config.scheduler.step()

    # -- validation and test ----------------------------------------------------------------
    def _evaluate(self, stage: str, model: Module | None, dataloaders: Any,
                  datamodule: DataModule | None,
                  ckpt_path: str | None) -> list[dict[str, float]]:  # fmt: skip
        """`validate` / `test`: set up, optionally load weights, run one epoch, log, report."""
        dataloaders, datamodule = split_datamodule(stage, dataloaders, datamodule)
        model, model_provided = self._model_for(stage, model)
        self._start(stage, model, datamodule)
        try:
            loader = resolve_loaders(self, model, datamodule, None, dataloaders, stage=stage)[1]
            if loader is None:
                hook = "val_dataloader" if stage == "validate" else "test_dataloader"
                raise UserError(f"{stage}: no dataloader; define {hook}()")
            loader = make_resumable(loader, 0, self.global_rank, self.world_size, shuffle=False)
            ckpt_path = trainer_state.select_ckpt_path(self, ckpt_path, model_provided)
            if ckpt_path:
                trainer_state.load_weights(self, ckpt_path)
            if stage == "validate":
                total = self.num_val_batches = limit_batches(loader, self.limit_val_batches)
            else:
                total = self.num_test_batches = limit_batches(loader, self.limit_test_batches)
            with self.profiler.profile(f"run_{stage}"):
                metrics = self._run_eval(stage, loader, total)
            values = {k: float(v) for k, v in metrics.items()}
            self.log_metrics(values)
            if self.is_global_zero and values and self.enable_progress_bar:
                print(f"{stage}: " + "  ".join(f"{k}={v:.4g}" for k, v in sorted(values.items())))
            self.profiler.report(stage, self.run_dir, self.is_global_zero)
            for lg in self.loggers:  # as Lightning after every stage (a later one logs on)
                lg.finalize("success")
            return [values]
        except BaseException:
            for lg in self.loggers:
                lg.finalize("failed")
            raise
        finally:
            self._end(stage)

    def _run_eval(self, stage: str, loader: DataLoader, limit: int | float) -> dict[str, Any]:
        """One validation/test epoch; keeps which of its metrics to log and to show."""
        self._last_eval = eval_loop.run_eval(self, stage, loader, limit)
        return self._last_eval.metrics

    # -- set-up and tear-down ----------------------------------------------------------------
    def _model_for(self, stage: str, model: Module | None) -> tuple[Module, bool]:
        """(the model to run, whether the caller gave it): without one, the fitted model."""
        if model is not None:
            return unwrap_compiled(model), True
        if self._module is None:
            raise UserError(f"`Trainer.{stage}()` requires a `LightningModule` when it hasn't "
                            "been passed in a previous run")  # fmt: skip
        return self._module, False

    def _start(self, stage: str, model: Module, datamodule: DataModule | None) -> None:
        self.stage = stage
        self.profiler.start()
        self._module = model
        model.trainer = self
        self.dist.setup()
        self.run_dir = trainer_state.agree_on_run_dir(self, model)
        model.to(self.device)
        self.datamodule = datamodule
        if datamodule is not None:
            datamodule.trainer = self
        self.callbacks = build_callbacks(self, model, self._user_callbacks)
        trainer_state.callback_states(self.callbacks)  # a repeated state_key fails, as in Lightning
        warn_unknown_hooks(self.callbacks, model)
        refuse_uncalled_overrides(model)
        self._hooks = collect_hooks(self, self.callbacks, model)
        self.transfer_batch = self._batch_transfer(model)
        prepare_data(self, model, datamodule, stage)
        if stage == "fit":  # before setup: ModelCheckpoint's default dirpath follows the logger
            self.loggers = (
                build_loggers(self, model, self._logger_arg) if self.is_global_zero else []
            )
        self.call_hook("setup", stage)
        if overrides(model, "configure_model"):  # Lightning's place: after setup, before optimizers
            model.configure_model()
            to_device(model, self.device)  # what it built on the meta device waits for shards
        if stage != "fit":  # *-true precisions: the parameters in their dtype here too
            model = self.precision_plugin.convert_eval_module(model)
            self._compile(model)
            model = self.dist.shard(model, self.precision)  # strategy="fsdp": in place
            materialize(model, self.device)
        if stage == "fit":
            model = self.precision_plugin.convert_module(model)
            self._compile(model)  # before DDP/FSDP wrap it (train/compile.py says why)
            model = self.dist.shard(model, self.precision)
            materialize(model, self.device)  # meta-device init: each rank's shards only
            self._step_wrapper = _StepWrapper(model)
            self._periodic = self.enable_checkpointing and bool(
                self.checkpoint_every_n_steps or self.checkpoint_every_seconds
            )
            self._ddp_model = self.dist.wrap(self._step_wrapper)
            manager = ShardedCheckpointManager if self.checkpoint_format == "sharded" else (
                CheckpointManager
            )  # fmt: skip
            self.checkpoints = manager(
                str(Path(self.checkpoint_dir) / "resume"),
                keep_last=self.keep_last_checkpoints,
                async_save=self.async_checkpointing,
            )
            if self.is_global_zero:  # stale temp files, a lost manifest: before "last" is read
                self.checkpoints.recover()
            self.barrier()

    def _compile(self, model: Module) -> None:
        fsdp = self.dist.fsdp
        compile_module(model, self.compile, fsdp.blocks if fsdp else None, fsdp is not None)

    def _end(self, stage: str) -> None:
        self.signals.restore()
        self.checkpoint_files.close()
        if self.checkpoints is not None:
            self.checkpoints.close()
        if self.datamodule is not None:  # Lightning's order: data, callbacks, model
            self.datamodule.teardown(stage)
        self.call_hook("teardown", stage)

    def _batch_transfer(self, model: Module) -> Callable[[Any], Any]:
        """batch -> batch on the device; the transfer hooks only where they are defined (a
        DataModule's win over the model's, as Lightning's datahook selector picks them)."""
        device, datamodule = self.device, self.datamodule

        def owner(name: str) -> Any:
            if datamodule is not None and callable(getattr(datamodule, name, None)):
                return datamodule  # the DataModule base defines none of them
            return model if overrides(model, name) else None

        before, move, after = (owner(name) for name in (
            "on_before_batch_transfer", "transfer_batch_to_device", "on_after_batch_transfer"
        ))  # fmt: skip
        convert = self.precision_plugin.input_converter()  # *-true: float inputs in its dtype
        if not (before or move or after or convert):
            return functools.partial(move_to_device, device=device)

        def transfer(batch: Any) -> Any:
            if convert:  # as Lightning: cast first, then the transfer hooks
                batch = convert(batch)
            if before:
                batch = before.on_before_batch_transfer(batch, 0)
            if move:
                batch = move.transfer_batch_to_device(batch, device, 0)
            else:
                batch = move_to_device(batch, device)
            return after.on_after_batch_transfer(batch, 0) if after else batch

        return transfer

    def _fail(self, exc: BaseException) -> None:
        # A save in flight flushes the loggers before its file takes its name: let it finish
        # before the run's end closes them (it raised "Writer is closed" from TensorBoard).
        if self.checkpoints is not None:
            self.checkpoints.wait_idle()
        self.checkpoint_files.wait_idle()
        if isinstance(exc, RequeueRequested):
            spent = self.signals.no_requeue() if self.signals.no_requeue else None
            if spent:  # the requeue budget is spent: the run ends here
                self.run_record.end("FAILED", reason=f"{spent}; resume with: launch resume "
                                                     f"{self.run_name or ''}")  # fmt: skip
                return
            self.run_record.set_state("waiting for requeue")
            for lg in self.loggers:
                lg.flush()
            return
        self.call_hook("on_exception", exc)
        if isinstance(exc, OutOfSpace) and self.checkpoints is not None:
            exc.keep_too(self.checkpoints.kept())  # a logger's file: the checkpoints stand
        if isinstance(exc, UserError) and not self.run_record.started:
            return  # refused before the run began (a bad resume, bad input): its state stands
        interrupted = isinstance(exc, (KeyboardInterrupt, SystemExit))
        self.run_record.end("KILLED" if interrupted else "FAILED")

    def _checkpoint_and_requeue(self) -> None:
        name = self.signals.name
        path = trainer_state.save_resume_checkpoint(self, blocking=True)
        if self.signals.stopping:  # the user's stop: KILLED (in _fail); the worker says so
            raise RunStopped(name, path or None)
        if self.is_global_zero:
            print(f"[launcher] received {name}: checkpointed step {self.global_step} to {path}; "
                  f"exiting with code {REQUEUE_EXIT_CODE} (requeue me)", flush=True)  # fmt: skip
        raise RequeueRequested(name, path or None)

    # -- small helpers -------------------------------------------------------------------------
    def _agree_on_seed(self) -> int:
        """The data-order seed: `Trainer(seed=)`, else `seed_everything`'s (`PL_GLOBAL_SEED`),
        else one drawn from torch's global generator, as Lightning's RandomSampler draws it
        (so `torch.manual_seed(n)` alone also makes two runs equal). Rank 0's wins."""
        if self.seed is None:
            self.seed = global_seed()
            if self.seed is None:
                self.seed = int(torch.empty((), dtype=torch.int64).random_(0, 2**31 - 1).item())
        self.loop.seed = int(self.broadcast(self.seed))
        return self.loop.seed

    def _prog_bar_names(self) -> set[str]:
        names = self.train_results.names("prog_bar") | self._last_eval.prog_bar_names
        if self.results is not None:  # during validation: what it logs so far
            names |= self.results.names("prog_bar")
        expanded = set(names)
        for n in names:
            expanded.update({f"{n}_step", f"{n}_epoch"})
        return expanded

    def _logger_step_metrics(self, step_metrics: dict[str, Any]) -> dict[str, Any]:
        names = self.train_results.names("logger")
        return {
            k: v for k, v in step_metrics.items()
            if k in names or k.removesuffix("_step") in names and k.endswith("_step")
        }  # fmt: skip

    def _logger_names_only(self, metrics: dict[str, Any]) -> dict[str, Any]:
        names = self.train_results.names("logger") | self._last_eval.logger_names
        return {k: v for k, v in metrics.items() if k.removesuffix("_epoch") in names}

    def _missing_metric_message(self, name: str, who: str) -> str:
        logged = ", ".join(sorted(self.callback_metrics)) or "none"
        return (
            f"{who} monitors {name!r}, which was never logged; logged metrics: {logged}. "
            f'Log it with self.log("{name}", ...) or change the monitor.'
        )
