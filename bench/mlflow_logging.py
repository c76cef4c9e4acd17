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
(timed around each call in the loop) and the CPU of the sender thread per step.
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

from launcher.common.net import free_port  # noqa: E402
from launcher.loggers.mlflow import MLflowLogger  # noqa: E402
from launcher.tracking.server import start_server, stop_server, wait_for_server  # noqa: E402


def make_loop():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(784, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10)
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(64, 784), torch.randint(0, 10, (64,))

    def run(steps: int, logger: MLflowLogger | None) -> dict[str, float]:
        """Per-step wall time of the loop; per-step process CPU and sender CPU incl. the flush."""
        sender_before = thread_cpu(logger._thread.native_id) if logger is not None else 0.0
        start, cpu, in_calls = time.perf_counter(), time.process_time(), 0.0
        for step in range(steps):
            optimizer.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
            value = loss.item()
            if logger is not None:
                before = time.perf_counter()
                logger.log_metrics({"train/loss": value}, step=step)
                in_calls += time.perf_counter() - before
        result = {
            "wall": (time.perf_counter() - start) / steps,
            "sender": 0.0,
            "call": in_calls / steps,
        }
        if logger is not None:
            logger.flush()  # everything sent; the sender thread is still alive to be measured
            result["sender"] = (thread_cpu(logger._thread.native_id) - sender_before) / steps
            logger.finalize("FINISHED")
        result["cpu"] = (time.process_time() - cpu) / steps
        return result

    return run


def thread_cpu(native_id: int) -> float:
    """CPU seconds of one thread of this process (ns resolution on Linux; psutil: 10 ms ticks)."""
    try:
        with open(f"/proc/self/task/{native_id}/schedstat") as f:
            return int(f.read().split()[0]) / 1e9
    except OSError:
        times = {t.id: t.user_time + t.system_time for t in psutil.Process().threads()}
        return times[native_id]


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
        finally:
            stop_server(server)

    def ratios(key: str) -> list[float]:
        return [lg[key] / b[key] for lg, b in zip(logged, base, strict=True)]

    def median(key: str, rows: list[dict[str, float]]) -> float:
        return statistics.median(r[key] for r in rows)

    print("wall ratio per rep: " + " ".join(f"{r:.3f}" for r in ratios("wall")))
    print("cpu ratio per rep:  " + " ".join(f"{r:.3f}" for r in ratios("cpu")))
    step_us, sender_us = median("wall", base) * 1e6, median("sender", logged) * 1e6
    call_us = median("call", logged) * 1e6
    print(
        f"breakdown: log_metrics call {call_us:.2f} us + sender thread {sender_us:.2f} us CPU "
        f"per step = {(call_us + sender_us) / step_us:.1%} of a {step_us:.0f} us step"
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
