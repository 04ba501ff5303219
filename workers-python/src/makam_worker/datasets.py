"""Content-addressed datasets: `state_dir/datasets/<sha256>.jsonl`, written whole or not at all."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterable
from pathlib import Path

from makam_worker.errors import InvalidArgument
from makam_worker.ids import is_valid_sha256
from makam_worker.layout import dataset_path, datasets_dir


def check_sha256(sha256: str, what: str = "sha256") -> None:
    if not is_valid_sha256(sha256):
        raise InvalidArgument(f"{what} must be 64 lowercase hex digits")


class DatasetStore:
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.dir = datasets_dir(state_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        for leftover in self.dir.glob(".tmp-*"):
            leftover.unlink(missing_ok=True)  # uploads cut off by a previous stop

    def path(self, sha256: str) -> Path:
        check_sha256(sha256)
        return dataset_path(self.state_dir, sha256)

    def has(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def receive(self, sha256: str, size_bytes: int, chunks: Iterable[bytes]) -> int:
        """Writes the chunks to a temp file and renames it into place only if both the sha256 and the
        size match the header; returns the size. Nothing is stored on a mismatch or an abort."""
        final = self.path(sha256)
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
            os.replace(tmp, final)  # atomic: readers see the whole dataset or none
        finally:
            tmp.unlink(missing_ok=True)
        return size
