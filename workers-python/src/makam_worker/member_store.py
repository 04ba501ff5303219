"""An ensemble's members: finished jobs' model archives (.tar.gz) uploaded for an ensemble run of them, under
`state_dir/artifacts/<sha256>.tar.gz`; swept like uploaded checkpoints once no run took them."""

from __future__ import annotations

from pathlib import Path

from makam_worker.checkpoint_store import CheckpointStore
from makam_worker.store import ContentStore, DiskGuard


def members_dir(state_dir: Path) -> Path:
    return state_dir / "artifacts"


class MemberStore(ContentStore):
    def __init__(self, state_dir: Path, *, max_bytes: int, disk: DiskGuard | None = None) -> None:
        # A model archive is about a checkpoint's size (weights without optimizer state), so one limit serves both.
        super().__init__(members_dir(state_dir), ".tar.gz", max_bytes=max_bytes,
                         limit_setting="MAKAM_WORKER_MAX_CHECKPOINT_BYTES", disk=disk)

    # The same age rule as uploaded checkpoints: an archive no run took within the retention goes.
    remove_older_than = CheckpointStore.remove_older_than
