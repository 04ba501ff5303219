"""Content-addressed datasets: `state_dir/datasets/<sha256>.jsonl`, written whole or not at all."""

from __future__ import annotations

from pathlib import Path

from makam_worker.layout import datasets_dir
from makam_worker.store import ContentStore, check_sha256

__all__ = ["DatasetStore", "check_sha256"]


class DatasetStore(ContentStore):
    def __init__(self, state_dir: Path) -> None:
        super().__init__(datasets_dir(state_dir), ".jsonl")
        self.state_dir = state_dir
