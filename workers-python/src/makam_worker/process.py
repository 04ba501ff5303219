"""One training child process, watched by a thread that records how it ended.

Only the child writes events while it lives. When it exits without a `finished` event, this
thread writes one: CANCELLED after a cancel, FAILED/worker_stopped after a server stop, and
FAILED/worker_crashed otherwise (a crash, an OOM kill, a SIGKILL).

A run is forked from the worker's warm training process when one is ready (warm.py), else spawned
as `python -m makam_worker.training.child <run_dir>`; either way it is its own process group and
holds its run's lock (run_lock.py) while it lives.
"""

from __future__ import annotations

import logging
import multiprocessing.process
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from makam_worker import logs, run_lock
from makam_worker.events import EventLog, find_finished, read_events
from makam_worker.layout import RunPaths
from makam_worker.training import distributed, tokenizer_cache
from makam_worker.warm import WarmProcess
from makam_worker.warm import shared as warm_process

logger = logging.getLogger("makam_worker.process")

ADOPTED_POLL_S = 0.2


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"was killed by {name}"
    return f"exited with code {returncode}"


def process_alive(pid: int, run_dir: Path) -> bool:
    """True while `pid` is a live (not zombie) training process of this run dir: its run lock is held
    (a forked run's command line does not name the run dir), or, for a child of an older worker
    that took no lock, `pid` lives with the run dir on its command line."""
    held = run_lock.held(run_dir)
    if held is not None:
        return held
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else: the cmdline check below decides
    proc = Path(f"/proc/{pid}")
    if not proc.exists():
        return True  # no /proc on this system: os.kill said it exists
    try:
        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        cmdline = (proc / "cmdline").read_bytes().split(b"\0")
    except (OSError, IndexError):
        return False
    # The pid may have been reused by an unrelated process after a reboot or a long outage.
    return state != "Z" and str(run_dir).encode() in cmdline


class RunProcess:
    """A child spawned by this server (`popen`), one forked from its warm process (`forked`), or one
    adopted after a server restart (pid only)."""

    def __init__(self, paths: RunPaths, pid: int, popen: subprocess.Popen[bytes] | None,
                 forked: multiprocessing.process.BaseProcess | None = None) -> None:
        self.paths, self.pid, self.popen, self.forked = paths, pid, popen, forked
        self.log = logs.for_run(logger, paths.dir.name)
        self.exited = threading.Event()  # the process is gone (reaped, for our own children)
        self.done = threading.Event()  # ...and its `finished` event is on disk
        self._stop_reason: str | None = None
        self._lock = threading.Lock()
        threading.Thread(target=self._watch, name=f"watch-{paths.dir.name}", daemon=True).start()

    @classmethod
    def spawn(cls, paths: RunPaths, warm: WarmProcess | None = None, devices: int = 1) -> RunProcess:
        """Forked from `warm` (default: this worker's warm process) when it is ready, else spawned cold;
        a run on several devices is spawned as torchrun (training/distributed.py), never forked."""
        # Runs live in state_dir/runs/<run_id>: their trained tokenizers are cached beside, by content.
        env = {**os.environ, tokenizer_cache.ENV: str(paths.dir.parent.parent / tokenizer_cache.CACHE_DIR)}
        forked = (warm or warm_process()).fork_run(paths.dir, env) if devices == 1 else None
        if forked is not None:
            paths.pid.write_text(f"{forked.pid}\n")
            return cls(paths, forked.pid, None, forked)
        # Taken here and inherited, so the lock is the child's from its first instruction to its exit.
        lock_fd = run_lock.hold(paths.dir)
        try:
            with paths.train_log.open("ab") as log_file:
                popen = subprocess.Popen(
                    [sys.executable, "-m", "makam_worker.training.child", str(paths.dir)] if devices == 1
                    else distributed.launch_command(paths.dir, devices),
                    start_new_session=True,  # its own process group: a cancel kills it and nothing else
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    pass_fds=(lock_fd,),
                    env=env,
                )
        finally:
            os.close(lock_fd)
        paths.pid.write_text(f"{popen.pid}\n")
        return cls(paths, popen.pid, popen)

    @property
    def alive(self) -> bool:
        return not self.exited.is_set()

    def terminate(self, reason: str, grace_s: float) -> None:
        """SIGTERM to the process group, SIGKILL after `grace_s`; returns once the exit is recorded."""
        with self._lock:
            self._stop_reason = self._stop_reason or reason
        self._signal(signal.SIGTERM)
        if not self.done.wait(grace_s):
            self.log.warning("training process %d ignored SIGTERM for %.1fs; sending SIGKILL", self.pid, grace_s)
            self._signal(signal.SIGKILL)
            if not self.done.wait(30):
                self.log.error("training process %d did not exit after SIGKILL", self.pid)

    def _signal(self, sig: signal.Signals) -> None:
        if self.exited.is_set():
            return  # never signal a reaped pid: it may belong to someone else now
        try:
            os.killpg(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def _watch(self) -> None:
        if self.popen is not None:
            detail = describe_exit(self.popen.wait())
        elif self.forked is not None:
            self.forked.join()  # the warm process reports the exit status of what it forked
            detail = describe_exit(self.forked.exitcode)
            if run_lock.held(self.paths.dir):
                # The warm process died, not the run (its report was cut off): wait on the lock.
                while run_lock.held(self.paths.dir):
                    time.sleep(ADOPTED_POLL_S)
                detail = "exited (its warm process died first; exit status unknown)"
        else:
            while process_alive(self.pid, self.paths.dir):
                time.sleep(ADOPTED_POLL_S)
            detail = "exited (adopted after a worker restart; exit status unknown)"
        self.exited.set()
        try:
            self._record_end(detail)
        finally:
            self.done.set()

    def _record_end(self, detail: str) -> None:
        if find_finished(read_events(self.paths.events)) is not None:
            self.log.info("training process %d %s", self.pid, detail)
            return
        with self._lock:
            reason = self._stop_reason
        events = EventLog(self.paths.events)
        if reason == "cancel":
            events.append("finished", state="CANCELLED", error_code="cancelled",
                          error_message="the run was cancelled", retryable=False)
        elif reason == "shutdown":
            events.append("finished", state="FAILED", error_code="worker_stopped",
                          error_message="the worker stopped while the run was in progress", retryable=True)
        else:
            events.append("finished", state="FAILED", error_code="worker_crashed",
                          error_message=f"the training process {detail} before finishing", retryable=True)
        self.log.info("training process %d %s; recorded %s", self.pid, detail, reason or "a crash")
