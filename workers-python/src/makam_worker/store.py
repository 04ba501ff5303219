"""Content-addressed files under the state directory (`<dir>/<sha256><suffix>`), written whole or not at all."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

from makam_worker.errors import InvalidArgument
from makam_worker.ids import is_valid_sha256


def check_sha256(sha256: str, what: str = "sha256") -> None:
    if not is_valid_sha256(sha256):
        raise InvalidArgument(f"{what} must be 64 lowercase hex digits")


class ContentStore:
    """Files named by the sha256 of their bytes; uploads land in a temp file and are renamed in."""

    def __init__(self, directory: Path, suffix: str) -> None:
        self.dir = directory
        self.suffix = suffix
        self.dir.mkdir(parents=True, exist_ok=True)
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
        Nothing is stored on a mismatch or an abort."""
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
            if check is not None:
                check(tmp)
            os.replace(tmp, final)  # atomic: readers see the whole file or none
        finally:
            tmp.unlink(missing_ok=True)
        return size
