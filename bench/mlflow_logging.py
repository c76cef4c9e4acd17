"""Per-step cost of `MLflowLogger` in a tiny CPU training loop, against the same loop unlogged.

    python bench/mlflow_logging.py                 # ~2 minutes: starts its own mlflow server
    python bench/mlflow_logging.py --steps 8000 --reps 15

The loop: a 784-128-10 MLP, batch 64, SGD, one CPU thread, `loss.item()` every step (as a
trainer does to log it). The logged variant also calls `logger.log_metrics` every step, sending
to a real `mlflow server` on 127.0.0.1 (sqlite store). Repetitions alternate which variant
goes first; each logged repetition is a fresh run, finalized before the next repetition starts
so its sends never overlap an unlogged one. Target: median wall-clock ratio <= 1.03.

Two numbers per repetition: wall-clock per step of the loop (what the target is about; the
sends of the last tick, under a second of data, fall into the untimed finalize), and the
process CPU time of the loop *plus* finalize, which counts every byte the logger sends and is
barely disturbed by other load on the machine (the mlflow server is another process). The
breakdown line splits the logger's cost into the `log_metrics` call on the training thread
(timed in a tight loop) and the CPU of the sender thread per step.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psutil  # noqa: E402
import torch  # noqa: E402

from launcher.loggers.mlflow import MLflowLogger  # noqa: E402
from launcher.mlflow_server import free_port, start_server, stop_server, wait_for_server  # noqa: E402


def make_loop():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(784, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10)
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(64, 784), torch.randint(0, 10, (64,))

    def run(steps: int, logger: MLflowLogger | None) -> dict[str, float]:
        """Per-step wall time of the loop; per-step process CPU and sender CPU incl. the flush."""
        start, cpu = time.perf_counter(), time.process_time()
        for step in range(steps):
            optimizer.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
            value = loss.item()
            if logger is not None:
                logger.log_metrics({"train/loss": value}, step=step)
        result = {"wall": (time.perf_counter() - start) / steps, "sender": 0.0}
        if logger is not None:
            logger.flush()  # everything sent; the sender thread is still alive to be measured
            result["sender"] = thread_cpu(logger._thread.native_id) / steps
            logger.finalize("FINISHED")
        result["cpu"] = (time.process_time() - cpu) / steps
        return result

    return run


def thread_cpu(native_id: int) -> float:
    for thread in psutil.Process().threads():
        if thread.id == native_id:
            return thread.user_time + thread.system_time
    raise RuntimeError("sender thread not found")


def log_metrics_call_cost(uri: str, tmp: str, calls: int = 100_000) -> float:
    """Seconds per `log_metrics` call on the training thread, sender running."""
    logger = MLflowLogger(
        "bench-calls",
        tracking_uri=uri,
        save_dir=tmp,
        spool_dir=f"{tmp}/calls",
        log_system_metrics=False,
    )
    logger.run_id  # noqa: B018 - run created before timing
    start = time.perf_counter()
    for step in range(calls):
        logger.log_metrics({"train/loss": 0.5}, step=step)
    elapsed = (time.perf_counter() - start) / calls
    logger.finalize("FINISHED")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4000, help="steps per repetition")
    parser.add_argument("--reps", type=int, default=9, help="repetitions of each variant")
    args = parser.parse_args()
    torch.set_num_threads(1)
    run = make_loop()
    base, logged = [], []
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        server = start_server(
            f"sqlite:///{tmp}/mlflow.db", port, f"{tmp}/artifacts", log_path=f"{tmp}/server.log"
        )
        try:
            uri = f"http://127.0.0.1:{port}"
            wait_for_server(uri, server)
            run(500, None)  # warm-up: allocator, caches
            for rep in range(args.reps):
                logger = MLflowLogger(
                    "bench",
                    run_name=f"rep{rep}",
                    tracking_uri=uri,
                    save_dir=tmp,
                    spool_dir=f"{tmp}/rep{rep}",
                )
                assert logger.run_id is not None, "the server did not create the run"
                for variant in ("base", "logged") if rep % 2 == 0 else ("logged", "base"):
                    if variant == "base":
                        base.append(run(args.steps, None))
                    else:
                        logged.append(run(args.steps, logger))
            call = log_metrics_call_cost(uri, tmp)
        finally:
            stop_server(server)

    def ratios(key: str) -> list[float]:
        return [lg[key] / b[key] for lg, b in zip(logged, base, strict=True)]

    def median(key: str, rows: list[dict[str, float]]) -> float:
        return statistics.median(r[key] for r in rows)

    print("wall ratio per rep: " + " ".join(f"{r:.3f}" for r in ratios("wall")))
    print("cpu ratio per rep:  " + " ".join(f"{r:.3f}" for r in ratios("cpu")))
    step_us, sender_us = median("wall", base) * 1e6, median("sender", logged) * 1e6
    print(
        f"breakdown: log_metrics call {call * 1e6:.2f} us + sender thread {sender_us:.2f} us CPU "
        f"per step = {(call * 1e6 + sender_us) / step_us:.1%} of a {step_us:.0f} us step"
    )
    wall = statistics.median(ratios("wall"))
    print(
        f"mlflow_logging: {step_us / 1e3:.3f} ms/step unlogged vs {median('wall', logged) * 1e3:.3f}"
        f" ms/step logging 1 metric/step to a local mlflow server: median wall ratio {wall:.3f} "
        f"({'meets' if wall <= 1.03 else 'misses'} <= 1.03), process CPU ratio "
        f"{statistics.median(ratios('cpu')):.3f}; {args.reps} interleaved reps of {args.steps} "
        f"steps, 784-128-10 MLP, batch 64, 1 CPU thread"
    )


if __name__ == "__main__":
    main()
