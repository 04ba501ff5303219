"""Checkpoints as files, shared by the server and the training child; no torch here.

A checkpoint is an uncompressed tar that the training child writes at the end of every epoch as
`run_dir/checkpoint.tar` (aside, then renamed in), with these members in this order:

    meta.json    format, family, model, labels, epoch, step, total_steps, steps_per_epoch
    state.pt     torch.save of the training state (training/train_state.py says what is in it)
    derived/...  what the run derived from its data and a resumed run must reuse as it is
                 (a tokenizer trained on the split, a config-built base model)

Beside it, `run_dir/checkpoint.json` records its epoch, step, size and sha256 with the file's
inode, size and mtime, so FetchCheckpoint sends the header without hashing the file again; a record
that does not match the file it opened (the child renamed a newer one in between) is ignored and the
header is derived from the file itself. Uploaded checkpoints live in `state_dir/checkpoints/`.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO

from makam_worker.request_errors import InvalidArgument
from makam_worker.layout import RunPaths, checkpoints_dir
from makam_worker.store import ContentStore, DiskGuard

FORMAT = 1
META = "meta.json"
STATE = "state.pt"
DERIVED = "derived"


@dataclass(frozen=True)
class CheckpointInfo:
    epoch: int
    step: int
    size_bytes: int
    sha256: str


class HashingWriter:
    """A binary file wrapper that hashes and counts what is written through it (for tarfile)."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self.raw.write(data)

    def tell(self) -> int:
        return self.raw.tell()

    def flush(self) -> None:
        self.raw.flush()


def meta_member(meta: dict[str, Any]) -> tuple[tarfile.TarInfo, io.BytesIO]:
    data = json.dumps(meta, ensure_ascii=False, indent=2).encode() + b"\n"
    info = tarfile.TarInfo(META)
    info.size, info.mode = len(data), 0o644
    return info, io.BytesIO(data)


def read_meta(tar: tarfile.TarFile) -> dict[str, Any]:
    """The meta.json of an open checkpoint tar; ValueError when it is not a makam checkpoint."""
    first = tar.next()
    if first is None or first.name != META or not first.isfile():
        raise ValueError(f"not a makam checkpoint: its first member is not {META}")
    f = tar.extractfile(first)
    try:
        meta = json.loads(f.read()) if f is not None else None
    except ValueError:
        raise ValueError(f"not a makam checkpoint: {META} is not JSON") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("epoch"), int) or not isinstance(meta.get("step"), int):
        raise ValueError(f"not a makam checkpoint: {META} has no epoch and step")
    if meta.get("format") != FORMAT:
        raise ValueError(f"checkpoint format {meta.get('format')!r} is not {FORMAT}, the one this worker reads")
    return meta


def read_meta_file(path: Path) -> dict[str, Any]:
    try:
        with tarfile.open(path, mode="r:") as tar:
            return read_meta(tar)
    except tarfile.TarError as e:
        raise ValueError(f"not a makam checkpoint: {e}") from None


def _identity(stat: os.stat_result) -> list[int]:
    return [stat.st_ino, stat.st_size, stat.st_mtime_ns]


def write_info(paths: RunPaths, info: CheckpointInfo) -> None:
    """Records the checkpoint.tar just renamed in; atomic, so a reader sees a whole record."""
    record = {**asdict(info), "file": _identity(paths.checkpoint.stat())}
    tmp = paths.checkpoint_info.with_name(paths.checkpoint_info.name + ".tmp")
    tmp.write_text(json.dumps(record) + "\n")
    os.replace(tmp, paths.checkpoint_info)


def open_latest(paths: RunPaths) -> tuple[BinaryIO, CheckpointInfo]:
    """The run's checkpoint.tar, open at its start, and what it holds. FileNotFoundError when the run
    has none yet; the open file stays whole even if the child renames a newer one in meanwhile."""
    f = paths.checkpoint.open("rb")
    try:
        identity = _identity(os.fstat(f.fileno()))
        try:
            record = json.loads(paths.checkpoint_info.read_text())
            if record.get("file") == identity:
                return f, CheckpointInfo(record["epoch"], record["step"], record["size_bytes"], record["sha256"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
        # No record of this very file (the child is between its two renames): read it.
        with tarfile.open(fileobj=f, mode="r:") as tar:
            meta = read_meta(tar)
        f.seek(0)
        digest = hashlib.sha256()
        while chunk := f.read(1 << 20):
            digest.update(chunk)
        f.seek(0)
        return f, CheckpointInfo(meta["epoch"], meta["step"], identity[1], digest.hexdigest())
    except BaseException:
        f.close()
        raise


class CheckpointStore(ContentStore):
    """Uploaded checkpoints, `state_dir/checkpoints/<sha256>.tar`; StartRun moves one into the run
    that resumes from it, so this holds only those not yet used."""

    def __init__(self, state_dir: Path, *, max_bytes: int, disk: DiskGuard | None = None) -> None:
        super().__init__(checkpoints_dir(state_dir), ".tar", max_bytes=max_bytes,
                         limit_setting="MAKAM_WORKER_MAX_CHECKPOINT_BYTES", disk=disk)

    def remove_older_than(self, age_s: float) -> list[str]:
        """Uploaded checkpoints no StartRun took within `age_s` (their dispatcher gave up); their sha256s."""
        cutoff = time.time() - age_s
        removed = []
        for path in self.dir.glob(f"*{self.suffix}"):
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed.append(path.stem)
            except FileNotFoundError:
                continue
        return removed

    @staticmethod
    def check(path: Path) -> None:
        try:
            read_meta_file(path)
        except ValueError as e:
            raise InvalidArgument(str(e)) from None
