"""Runs on disk (`state_dir/runs/<run_id>/`) and the training processes behind them."""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from makam_worker import logs
from makam_worker.request_errors import FailedPrecondition, InvalidArgument, NotFound
from makam_worker.events import EventLog, find_finished, read_events
from makam_worker.ids import is_valid_run_id
from makam_worker.layout import RunPaths, runs_dir
from makam_worker.process import RunProcess, process_alive
from makam_worker.run_spec import RunSpec
from makam_worker.training import spans

logger = logging.getLogger("makam_worker.runs")

RUNNING = "RUNNING"


@dataclass(frozen=True)
class RunStatus:
    state: str  # RUNNING, SUCCEEDED, FAILED or CANCELLED
    last_seq: int
    pid: int  # 0 once the process has exited


def check_run_id(run_id: str) -> None:
    if not is_valid_run_id(run_id):
        raise InvalidArgument("run_id must be 1-128 characters of letters, digits, '_' and '-'")


class RunManager:
    def __init__(self, state_dir: Path, cancel_grace_s: float = 5.0) -> None:
        self.dir = runs_dir(state_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.cancel_grace_s = cancel_grace_s
        self._procs: dict[str, RunProcess] = {}
        self._lock = threading.Lock()  # serialises start, delete and recovery of run dirs
        self._recover()

    def paths(self, run_id: str) -> RunPaths:
        """The run's paths; NotFound when no such run exists."""
        check_run_id(run_id)
        paths = RunPaths(self.dir / run_id)
        if not paths.spec.is_file():
            raise NotFound(f"no run {run_id!r} on this worker")
        return paths

    def exists(self, run_id: str) -> bool:
        check_run_id(run_id)
        return RunPaths(self.dir / run_id).spec.is_file()

    def status(self, run_id: str) -> RunStatus:
        paths = self.paths(run_id)
        events = read_events(paths.events)
        finished = find_finished(events)
        proc = self._procs.get(run_id)
        return RunStatus(
            state=finished["state"] if finished else RUNNING,
            last_seq=events[-1]["seq"] if events else 0,
            pid=proc.pid if proc is not None and proc.alive else 0,
        )

    def start(self, run_id: str, spec: RunSpec, resume: Path | None = None,
              traceparent: str | None = None) -> tuple[RunStatus, bool]:
        """Creates the run dir and spawns the child; an existing run is returned as it is (created False).
        `resume`, an uploaded checkpoint, is moved into the new run dir (resume.tar) for the child;
        a sampled `traceparent` goes beside the spec, for the child to report its phases as spans."""
        check_run_id(run_id)
        log = logs.for_run(logger, run_id)
        with self._lock:
            if self.exists(run_id):
                return self.status(run_id), False
            # Build the dir aside and rename it in, so a run dir always has its spec.
            tmp = self.dir / f".tmp-{run_id}-{uuid.uuid4().hex[:8]}"
            tmp.mkdir()
            (tmp / "spec.json").write_text(spec.to_json(), encoding="utf-8")
            (tmp / "events.jsonl").touch()
            if spans.sampled(traceparent):
                (tmp / spans.TRACE_FILE).write_text(traceparent, encoding="ascii")
            if resume is not None:
                try:
                    os.replace(resume, RunPaths(tmp).resume)
                except FileNotFoundError:
                    shutil.rmtree(tmp, ignore_errors=True)
                    raise FailedPrecondition(
                        f"checkpoint {resume.stem} is not on this worker (another run took it?); upload it first"
                    ) from None
            tmp.rename(self.dir / run_id)
            paths = RunPaths(self.dir / run_id)
            try:
                self._procs[run_id] = RunProcess.spawn(paths, devices=spec.devices)
            except OSError as e:
                log.error("could not start the training process: %s", e)
                EventLog(paths.events).append(
                    "finished", state="FAILED", error_code="worker_crashed",
                    error_message=f"could not start the training process: {e}", retryable=True,
                )
            else:
                log.info("run started: training process %d", self._procs[run_id].pid)
            return self.status(run_id), True

    def cancel(self, run_id: str) -> str:
        """Stops the run's process (SIGTERM, then SIGKILL after the grace period); returns the final state."""
        paths = self.paths(run_id)
        proc = self._procs.get(run_id)
        if proc is not None:
            logs.for_run(logger, run_id).info("cancelling: SIGTERM to process group %d", proc.pid)
            proc.terminate("cancel", self.cancel_grace_s)
        elif find_finished(read_events(paths.events)) is None:
            # No process behind a run without an end (its spawn was cut off): record the cancel.
            with self._lock:
                if find_finished(read_events(paths.events)) is None:
                    EventLog(paths.events).append("finished", state="CANCELLED", error_code="cancelled",
                                                  error_message="the run was cancelled", retryable=False)
        return self.status(run_id).state

    def delete(self, run_id: str) -> bool:
        check_run_id(run_id)
        with self._lock:
            if not (self.dir / run_id).exists():
                return False
            proc = self._procs.get(run_id)
            if proc is not None and not proc.done.is_set():
                if find_finished(read_events(RunPaths(self.dir / run_id).events)) is None:
                    raise FailedPrecondition(f"run {run_id!r} is running; cancel it first")
                # Finished, and the process is only exiting: give it the grace period.
                if not proc.done.wait(self.cancel_grace_s):
                    raise FailedPrecondition(f"run {run_id!r} finished but its process has not exited yet; retry")
            shutil.rmtree(self.dir / run_id)
            self._procs.pop(run_id, None)
        logs.for_run(logger, run_id).info("run deleted")
        return True

    def datasets_in_use(self) -> set[Path]:
        """The dataset files of runs whose process lives: never evicted from the cache under them."""
        paths: set[Path] = set()
        for run_id, proc in list(self._procs.items()):
            if not proc.alive:
                continue
            try:
                spec = RunSpec.from_json(RunPaths(self.dir / run_id).spec.read_text(encoding="utf-8"))
            except (OSError, ValueError):  # InvalidRunSpec too: that run fails without reading a dataset
                continue
            paths.update(spec.datasets)
        return paths

    def remove_expired(self, retention_s: float) -> list[str]:
        """Deletes runs that finished (any state) more than `retention_s` ago: what a dispatcher did not
        fetch and delete by then (it died, or gave the job up) must not fill the disk. Their ids."""
        cutoff_ms = (time.time() - retention_s) * 1000
        removed = []
        for run_dir in sorted(self.dir.iterdir()):
            if not is_valid_run_id(run_dir.name):
                continue
            proc = self._procs.get(run_dir.name)
            if proc is not None and proc.alive:
                continue
            finished = find_finished(read_events(RunPaths(run_dir).events))
            if finished is None or finished.get("time_unix_ms", 0) > cutoff_ms:
                continue
            try:
                if self.delete(run_dir.name):
                    removed.append(run_dir.name)
            except (FailedPrecondition, OSError) as e:
                logs.for_run(logger, run_dir.name).warning("expired run not removed: %s", e)
        return removed

    def active_runs(self) -> int:
        return sum(1 for proc in list(self._procs.values()) if proc.alive)

    def stop_all(self) -> None:
        """Ends every run in progress (recorded as FAILED/worker_stopped, retryable), in parallel."""
        procs = [p for p in list(self._procs.values()) if p.alive]
        threads = [
            threading.Thread(target=p.terminate, args=("shutdown", self.cancel_grace_s), daemon=True) for p in procs
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def _recover(self) -> None:
        """Runs left without an end by a previous server: adopt live children, record dead ones as crashed."""
        for leftover in self.dir.glob(".tmp-*"):
            shutil.rmtree(leftover, ignore_errors=True)
        for run_dir in sorted(self.dir.iterdir()):
            paths = RunPaths(run_dir)
            if not is_valid_run_id(run_dir.name) or not paths.spec.is_file():
                continue
            if find_finished(read_events(paths.events)) is not None:
                continue
            log = logs.for_run(logger, run_dir.name)
            pid = _read_pid(paths.pid)
            if pid and process_alive(pid, run_dir):
                log.info("adopting training process %d left by a previous server", pid)
                self._procs[run_dir.name] = RunProcess(paths, pid, popen=None)
                continue
            log.warning("training process %s is gone and the run never finished; recording a crash", pid or "?")
            EventLog(paths.events).append(
                "finished", state="FAILED", error_code="worker_crashed",
                error_message="the worker restarted and the run's training process was gone", retryable=True,
            )


def _read_pid(path: Path) -> int:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return 0
