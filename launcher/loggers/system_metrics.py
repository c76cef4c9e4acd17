"""System metrics sampled by `MLflowLogger`'s background thread: CPU, RAM, GPU.

sampler = SystemMetricsSampler()
sampler.sample()   # {"system/cpu_percent": 12.5, "system/memory_percent": 40.1, ...}
"""

from __future__ import annotations

import sys

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
