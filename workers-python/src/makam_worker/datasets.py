"""Content-addressed datasets: `state_dir/datasets/<sha256>.jsonl`, written whole or not at all.

They are a cache bounded by total bytes: before an upload is admitted, the least recently used
datasets (by mtime, touched whenever a run or HasDataset uses one) that no run in progress reads
are removed until the new one fits. A dispatcher uploads again what is gone (HasDataset first).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from makam_worker.layout import datasets_dir
from makam_worker.store import ContentStore, DiskGuard, ResourceExhausted, check_sha256

__all__ = ["DatasetStore", "check_sha256"]

logger = logging.getLogger("makam_worker.datasets")


class DatasetStore(ContentStore):
    def __init__(self, state_dir: Path, *, max_bytes: int, cache_bytes: int, disk: DiskGuard | None = None,
                 in_use: Callable[[], set[Path]] = set) -> None:
        super().__init__(datasets_dir(state_dir), ".jsonl", max_bytes=max_bytes,
                         limit_setting="MAKAM_WORKER_MAX_DATASET_BYTES", disk=disk)
        self.state_dir = state_dir
        self.cache_bytes = cache_bytes
        self.in_use = in_use
        self._lock = threading.Lock()
        self._incoming = 0  # announced bytes of uploads in progress, counted against the cache

    def touch(self, sha256: str) -> None:
        try:
            os.utime(self.path(sha256))
        except FileNotFoundError:
            pass

    def receive(self, sha256: str, size_bytes: int, chunks: Iterable[bytes], check=None) -> int:
        self.check_size(size_bytes)
        with self._lock:
            self._make_room(size_bytes, exclude=self.path(sha256))
            self._incoming += size_bytes
        try:
            return super().receive(sha256, size_bytes, chunks, check)
        finally:
            with self._lock:
                self._incoming -= size_bytes

    def _make_room(self, size_bytes: int, exclude: Path) -> None:
        files = []
        for path in self.dir.glob(f"*{self.suffix}"):
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            files.append((stat.st_mtime_ns, stat.st_size, path))
        total = sum(size for _, size, _ in files) + self._incoming
        if total + size_bytes <= self.cache_bytes:
            return
        in_use = {p.resolve() for p in self.in_use()}
        for _, size, path in sorted(files):
            if path == exclude or path.resolve() in in_use:
                continue
            path.unlink(missing_ok=True)
            total -= size
            logger.info("dataset %s removed from the cache (least recently used, %d bytes)", path.stem, size)
            if total + size_bytes <= self.cache_bytes:
                return
        raise ResourceExhausted(
            f"a dataset of {size_bytes} bytes does not fit the worker's dataset cache of {self.cache_bytes} bytes "
            f"(MAKAM_WORKER_DATASET_CACHE_BYTES): {total} bytes are datasets of runs in progress or uploads "
            "in flight; retry when runs have finished, or raise the limit on the worker")
