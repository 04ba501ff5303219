"""Throughput and peak memory of a run's training."""

from __future__ import annotations

import resource
import sys
import time
from typing import Any


def max_rss_bytes() -> int:
    """The process's peak resident set size so far (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


class Meter:
    """Counts training samples, tokens and seconds, and the peak memory from `start()` on: on CUDA
    torch.cuda.max_memory_allocated, on CPU the increase of the max RSS from just before the model
    is built (an increase of a high-water mark: 0 when the process was already that large)."""

    def __init__(self, device: Any = None) -> None:
        self.device = device
        self.samples = 0
        self.tokens = 0
        self.seconds = 0.0
        self._rss_before = 0
        self._started: float | None = None

    def start(self) -> None:
        if self._cuda:
            import torch

            torch.cuda.reset_peak_memory_stats(self.device)
        self._rss_before = max_rss_bytes()

    @property
    def _cuda(self) -> bool:
        return self.device is not None and getattr(self.device, "type", str(self.device)) == "cuda"

    def resume(self) -> None:
        self._started = time.perf_counter()

    def pause(self) -> None:
        if self._started is not None:
            if self._cuda:
                import torch

                torch.cuda.synchronize(self.device)
            self.seconds += time.perf_counter() - self._started
            self._started = None

    def peak_memory_bytes(self) -> int:
        if self._cuda:
            import torch

            return int(torch.cuda.max_memory_allocated(self.device))
        return max(0, max_rss_bytes() - self._rss_before)

    def report(self, device_name: str, **extra: Any) -> dict[str, Any]:
        seconds = self.seconds
        return {
            "device": device_name,
            "seconds": seconds,
            "samples": self.samples,
            "tokens": self.tokens,
            "samples_per_second": self.samples / seconds if seconds > 0 else 0.0,
            "tokens_per_second": self.tokens / seconds if seconds > 0 else 0.0,
            "peak_memory_bytes": self.peak_memory_bytes(),
            "peak_memory_measure": "cuda_max_memory_allocated" if self._cuda else "cpu_max_rss_increase",
            **extra,
        }
