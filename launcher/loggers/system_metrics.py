"""System metrics sampled by `MLflowLogger`'s background thread: CPU, RAM, GPU; per node.

sampler = SystemMetricsSampler()
sampler.sample()   # {"system/cpu_percent": 12.5, "system/memory_percent": 40.1, ...}

On multi-node runs only global rank 0 talks to MLflow, so every other node's first process
runs a `NodeMetricsWriter`, appending its samples to `RUN_DIR/system/node<N>.jsonl`; rank 0's
logger reads them with a `NodeMetricsReader` and logs them as `system/node<N>/<name>`. Where
the run dir is not shared between nodes, only rank 0's own node is logged.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

GIB = 2**30


class SystemMetricsSampler:
    """CPU and RAM via psutil; GPU memory/utilisation when this process already uses CUDA."""

    def __init__(self) -> None:
        import psutil

        self._psutil = psutil
        self._process = psutil.Process()
        psutil.cpu_percent(None)  # the first call only primes the counter

    def sample(self) -> dict[str, float]:
        """One sample, keyed `system/<name>`."""
        memory = self._psutil.virtual_memory()
        values = {
            "system/cpu_percent": self._psutil.cpu_percent(None),
            "system/memory_percent": memory.percent,
            "system/memory_used_gb": memory.used / GIB,
            "system/process_rss_gb": self._process.memory_info().rss / GIB,
        }
        torch = sys.modules.get("torch")  # never import torch nor initialise CUDA from here
        if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
            return values
        for i in range(torch.cuda.device_count()):
            values[f"system/gpu{i}/memory_allocated_gb"] = torch.cuda.memory_allocated(i) / GIB
            values[f"system/gpu{i}/memory_reserved_gb"] = torch.cuda.memory_reserved(i) / GIB
            try:
                values[f"system/gpu{i}/utilization_percent"] = float(torch.cuda.utilization(i))
            except Exception:  # needs NVML (pynvml); the memory numbers are still useful
                pass
        return values


def node_metrics_path(run_dir: str, node: int) -> Path:
    return Path(run_dir) / "system" / f"node{node}.jsonl"


class NodeMetricsWriter:
    """Samples this node every `interval` seconds (and once at start and at `close`) into
    its `node<N>.jsonl` in the run dir, on a daemon thread.

    writer = NodeMetricsWriter(run_dir, node=1); ...; writer.close()
    """

    def __init__(self, run_dir: str, node: int, interval: float = 10.0) -> None:
        self.path = node_metrics_path(run_dir, node)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.interval = interval
        self._sampler = SystemMetricsSampler()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="launcher-node-metrics", daemon=True)
        self._thread.start()

    def _write(self) -> None:
        line = json.dumps({"time": time.time(), "values": self._sampler.sample()})
        with open(self.path, "a") as f:  # one whole line per write: readers skip a partial one
            f.write(line + "\n")

    def _run(self) -> None:
        time.sleep(min(1.0, self.interval))  # cpu_percent needs an interval since priming
        self._write()
        while not self._stop.wait(self.interval):
            self._write()

    def close(self) -> None:
        """Stop sampling after one last sample."""
        if not self._stop.is_set():
            self._stop.set()
            self._thread.join(timeout=5)
            self._write()


class NodeMetricsReader:
    """The samples other nodes' writers appended since the last call.

    reader = NodeMetricsReader(run_dir)
    reader.new_samples()   # [(timestamp, {"system/node1/cpu_percent": 12.5, ...}), ...]
    """

    def __init__(self, run_dir: str) -> None:
        self.folder = Path(run_dir) / "system"
        self._offsets: dict[Path, int] = {}

    def new_samples(self) -> list[tuple[float, dict[str, float]]]:
        found: list[tuple[float, dict[str, float]]] = []
        if not self.folder.is_dir():
            return found
        for path in sorted(self.folder.glob("node*.jsonl")):
            node = path.stem  # "node1"
            with open(path, "rb") as f:
                f.seek(self._offsets.get(path, 0))
                data = f.read()
            whole = data[: data.rfind(b"\n") + 1]  # a line still being written waits
            self._offsets[path] = self._offsets.get(path, 0) + len(whole)
            for line in whole.decode(errors="replace").splitlines():
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                values = {
                    key.replace("system/", f"system/{node}/", 1): float(value)
                    for key, value in record["values"].items()
                }
                found.append((float(record["time"]), values))
        return found
