"""Lightning's loggers driven through their API, run unchanged (imports renamed) by both runtimes.

    python loggers_api.py OUT_DIR      # writes OUT_DIR/report.json

The same sequence goes to a CSVLogger, a TensorBoardLogger and an MLFlowLogger: hparams (a dict
and a Namespace), metrics at several steps with some appearing only later, a prefix, save,
finalize("success"), then a second stage on the same loggers (as `trainer.test()` after `fit`).
The report holds what each left behind: files, the CSV's header and rows, hparams.yaml,
TensorBoard's scalars, the MLflow run's metrics, params and status.
"""

import json
import sys
from argparse import Namespace
from pathlib import Path

import yaml
from lightning.pytorch.loggers import CSVLogger, MLFlowLogger, TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

OUT = Path(sys.argv[1])
LOGS = OUT / "logs"

STAGE_1 = [
    ({"train_loss": 0.5}, 0),
    ({"train_loss": 0.25, "lr": 0.1}, 1),  # a metric that appears later
    ({"val_loss": 0.75, "val_acc": 0.5}, 1),  # a second row at one step
    ({"train_loss": 0.125, "lr": 0.05}, 2),
    ({"epoch": 0}, 2),
]
STAGE_2 = [({"test_acc": 0.875}, 3)]


def drive(logger) -> None:
    logger.log_hyperparams({"lr": 0.1, "batch_size": 32})
    logger.log_hyperparams(Namespace(seed=7, optimizer="adam"))
    for metrics, step in STAGE_1:
        logger.log_metrics(metrics, step)
    logger.save()
    logger.finalize("success")
    for metrics, step in STAGE_2:
        logger.log_metrics(metrics, step)
    logger.finalize("success")


def files(root: Path) -> list[str]:
    return sorted(
        str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and "events" not in p.name
    )


def csv_report() -> dict:
    first = CSVLogger(LOGS, name="csv", flush_logs_every_n_steps=2)
    drive(first)
    second = CSVLogger(LOGS, name="csv", version="named", prefix="fold1")  # a named version
    drive(second)
    third = CSVLogger(LOGS, name="csv")
    lines = (Path(first.log_dir) / "metrics.csv").read_text().splitlines()
    return {
        "versions": [first.version, second.version, third.version],
        "log_dir": str(Path(first.log_dir).relative_to(OUT)),
        "root_dir": str(Path(first.root_dir).relative_to(OUT)),
        "save_dir": str(Path(first.save_dir).relative_to(OUT)),
        "name": first.name,
        "files": files(LOGS / "csv"),
        "lines": lines,
        "named_lines": (Path(second.log_dir) / "metrics.csv").read_text().splitlines(),
        "hparams": yaml.safe_load((Path(first.log_dir) / "hparams.yaml").read_text()),
        "hparams_text": (Path(first.log_dir) / "hparams.yaml").read_text(),
    }


def tensorboard_report() -> dict:
    logger = TensorBoardLogger(LOGS, name="tb", prefix="p", sub_dir="sub")
    drive(logger)
    events = EventAccumulator(logger.log_dir)
    events.Reload()
    scalars = {
        tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]
    }
    return {
        "log_dir": str(Path(logger.log_dir).relative_to(OUT)),
        "version": logger.version,
        "files": files(LOGS / "tb"),
        "scalars": scalars,
        "hparams": yaml.safe_load((Path(logger.log_dir) / "hparams.yaml").read_text()),
    }


def mlflow_report() -> dict:
    uri = f"sqlite:///{OUT}/mlflow-compare.db"
    logger = MLFlowLogger(experiment_name="compare", run_name="r", tracking_uri=uri, prefix="fold1")
    drive(logger)
    client = logger.experiment
    run = client.get_run(logger.run_id)
    keys = sorted(run.data.metrics)
    return {
        "experiment_name": client.get_experiment(run.info.experiment_id).name,
        "name_is_experiment_id": logger.name == run.info.experiment_id,
        "version_is_run_id": logger.version == logger.run_id,
        "status": run.info.status,
        "run_name": run.info.run_name,
        "params": run.data.params,
        "metrics": {
            k: sorted((m.step, m.value) for m in client.get_metric_history(logger.run_id, k))
            for k in keys
        },
    }


report = {"csv": csv_report(), "tensorboard": tensorboard_report(), "mlflow": mlflow_report()}
(OUT / "report.json").write_text(json.dumps(report, indent=1, sort_keys=True))
