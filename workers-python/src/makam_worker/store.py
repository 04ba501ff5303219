"""Content-addressed files under the state directory (`<dir>/<sha256><suffix>`), written whole or not at all."""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc

from makam_worker.request_errors import InvalidArgument, WorkerError
from makam_worker.ids import is_valid_sha256


class ResourceExhausted(WorkerError):
    status = grpc.StatusCode.RESOURCE_EXHAUSTED


class DiskGuard:
    """Admits an upload only if the disk keeps `min_free_bytes` free after it and after every upload
    still in flight (each announced size is held until its upload ends), so parallel uploads cannot
    together fill the disk that runs write their models to."""

    def __init__(self, directory: Path, min_free_bytes: int) -> None:
        self.dir = directory
        self.min_free_bytes = min_free_bytes
        self._held = 0
        self._lock = threading.Lock()

    @contextmanager
    def hold(self, size_bytes: int, what: str) -> Iterator[None]:
        with self._lock:
            free = shutil.disk_usage(self.dir).free
            if size_bytes + self._held + self.min_free_bytes > free:
                raise ResourceExhausted(
                    f"{what} of {size_bytes} bytes does not fit: the worker's disk has {free} bytes free, "
                    f"{self._held} held by uploads in progress, and keeps {self.min_free_bytes} free "
                    "(MAKAM_WORKER_MIN_FREE_BYTES); free space on the worker or retry later")
            self._held += size_bytes
        try:
            yield
        finally:
            with self._lock:
                self._held -= size_bytes


def check_sha256(sha256: str, what: str = "sha256") -> None:
    if not is_valid_sha256(sha256):
        raise InvalidArgument(f"{what} must be 64 lowercase hex digits")


class ContentStore:
    """Files named by the sha256 of their bytes; uploads land in a temp file and are renamed in."""

    def __init__(self, directory: Path, suffix: str, *, max_bytes: int, limit_setting: str,
                 disk: DiskGuard | None = None) -> None:
        self.dir = directory
        self.suffix = suffix
        self.max_bytes = max_bytes
        self.limit_setting = limit_setting
        self.dir.mkdir(parents=True, exist_ok=True)
        self.disk = disk or DiskGuard(directory, 0)
        for leftover in self.dir.glob(".tmp-*"):
            leftover.unlink(missing_ok=True)  # uploads cut off by a previous stop

    def path(self, sha256: str) -> Path:
        check_sha256(sha256)
        return self.dir / f"{sha256}{self.suffix}"

    def has(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def receive(self, sha256: str, size_bytes: int, chunks: Iterable[bytes],
                check: Callable[[Path], None] | None = None) -> int:
        """Writes the chunks to a temp file and renames it into place only if both the sha256 and the
        size match the header (and `check`, given the temp file, raises nothing); returns the size.
        Nothing is stored on a mismatch or an abort. The announced size is checked against the limit
        and the free disk before a chunk is read."""
        final = self.path(sha256)
        self.check_size(size_bytes)
        with self.disk.hold(size_bytes, f"an upload ({self.suffix})"):
            return self._write(final, sha256, size_bytes, chunks, check)

    def check_size(self, size_bytes: int) -> None:
        if size_bytes > self.max_bytes:
            raise InvalidArgument(
                f"header.size_bytes {size_bytes} is over this worker's limit of {self.max_bytes} bytes "
                f"({self.limit_setting}); send a smaller file or raise the limit on the worker")

    def _write(self, final: Path, sha256: str, size_bytes: int, chunks: Iterable[bytes],
               check: Callable[[Path], None] | None) -> int:
        tmp = self.dir / f".tmp-{uuid.uuid4().hex}"
        digest, size = hashlib.sha256(), 0
        try:
            with tmp.open("wb") as f:
                for chunk in chunks:
                    size += len(chunk)
                    if size > size_bytes:
                        raise InvalidArgument(f"received more than the {size_bytes} bytes the header announced")
                    digest.update(chunk)
                    f.write(chunk)
                f.flush()
                os.fsync(f.fileno())
            if size != size_bytes:
                raise InvalidArgument(f"received {size} bytes but the header announced {size_bytes}")
            if digest.hexdigest() != sha256:
                raise InvalidArgument(f"the bytes hash to sha256 {digest.hexdigest()}, not {sha256} as the header said")
            if check is not None:
                check(tmp)
            os.replace(tmp, final)  # atomic: readers see the whole file or none
        finally:
            tmp.unlink(missing_ok=True)
        return size
