"""Where things live under the state directory; shared by the server and the training child."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from makam_worker.events import EVENTS_FILE


@dataclass(frozen=True)
class RunPaths:
    """The files of one run, all inside `state_dir/runs/<run_id>/`."""

    dir: Path

    @property
    def spec(self) -> Path:
        return self.dir / "spec.json"  # the StartRun request as JSON; the child's only input

    @property
    def events(self) -> Path:
        return self.dir / EVENTS_FILE

    @property
    def pid(self) -> Path:
        return self.dir / "pid"  # the child's pid, for a restarted server to find orphans

    @property
    def train_log(self) -> Path:
        return self.dir / "train.log"  # the child's log, stdout and stderr (tracebacks land here)

    @property
    def model(self) -> Path:
        return self.dir / "model"

    @property
    def work(self) -> Path:
        return self.dir / "work"  # the child's scratch files (a trained tokenizer, a config-built base)

    @property
    def archive(self) -> Path:
        return self.dir / "model.tar.gz"

    @property
    def archive_sha256(self) -> Path:
        return self.dir / "model.tar.gz.sha256"

    @property
    def checkpoint(self) -> Path:
        return self.dir / "checkpoint.tar"  # the training state at the end of the latest epoch

    @property
    def checkpoint_info(self) -> Path:
        return self.dir / "checkpoint.json"  # that file's epoch, step, size and sha256, for FetchCheckpoint

    @property
    def resume(self) -> Path:
        return self.dir / "resume.tar"  # the uploaded checkpoint this run resumes from (moved in by StartRun)


def runs_dir(state_dir: Path) -> Path:
    return state_dir / "runs"


def datasets_dir(state_dir: Path) -> Path:
    return state_dir / "datasets"


def dataset_path(state_dir: Path, sha256: str) -> Path:
    return datasets_dir(state_dir) / f"{sha256}.jsonl"


def checkpoints_dir(state_dir: Path) -> Path:
    return state_dir / "checkpoints"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
