"""Runs forked from the warm training process (warm.py), with real processes and real signals: each
is its own process group that cancel and SIGKILL reach, its end is recorded as a spawned run's is, a
dying run or warm process disturbs nothing else, and a restarted worker adopts a live forked run by
its lock (run_lock.py), since its command line does not name its run dir."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import LONG, write_run_dir
from makam_worker import run_lock
from makam_worker.events import find_finished, read_events
from makam_worker.layout import RunPaths
from makam_worker.process import RunProcess
from makam_worker.run_manager import RunManager
from makam_worker.warm import WarmProcess

HANG_GUARD_S = 600  # only so a broken run fails the test instead of hanging the suite
TFIDF = {"family": "tfidf"}


@pytest.fixture(scope="module")
def warm():
    # Its own instance: the worker-wide one stays unstarted, so other tests' servers spawn cold.
    process = WarmProcess()
    process.start()
    assert process.wait_ready(HANG_GUARD_S), "the warm training process did not get ready"
    return process


def make_run(tmp: Path, name: str, hyperparameters: dict, model: dict | None = None) -> RunPaths:
    """A run dir where a worker keeps them (state/runs/<name>), as the server would create it."""
    run_dir = write_run_dir(tmp / "data", name, hyperparameters, model=model)
    dest = tmp / "state" / "runs" / name
    dest.parent.mkdir(parents=True, exist_ok=True)
    run_dir.rename(dest)
    (dest / "events.jsonl").touch()
    return RunPaths(dest)


def wait_event(paths: RunPaths, kind: str) -> dict:
    deadline = time.monotonic() + HANG_GUARD_S
    while time.monotonic() < deadline:
        events = read_events(paths.events)
        found = [e for e in events if e["type"] == kind]
        if found:
            return found[0]
        if find_finished(events) is not None:
            raise AssertionError(f"the run ended without a {kind} event: {events[-1]}")
        time.sleep(0.05)
    raise AssertionError(f"no {kind} event")


def finished_of(proc: RunProcess) -> dict:
    assert proc.done.wait(HANG_GUARD_S)
    finished = find_finished(read_events(proc.paths.events))
    assert finished is not None
    return finished


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def forked(warm: WarmProcess, paths: RunPaths) -> RunProcess:
    proc = RunProcess.spawn(paths, warm)
    assert proc.forked is not None and proc.popen is None, "the run was spawned cold"
    return proc


def test_a_forked_run_is_its_own_process_group_and_a_cancel_is_recorded(warm, tmp_path):
    proc = forked(warm, make_run(tmp_path, "cancelled", LONG))
    pid = proc.pid
    assert parent_of(pid) == warm.pid  # forked, not spawned
    assert os.listdir(f"/proc/{warm.pid}/task") == [str(warm.pid)]  # from a process without threads
    assert os.getpgid(pid) == pid and os.getsid(pid) == pid  # cancel's killpg reaches it and nothing else
    assert os.getpgid(warm.pid) != pid
    assert run_lock.held(proc.paths.dir)
    assert wait_event(proc.paths, "started")["pid"] == pid

    proc.terminate("cancel", grace_s=30)
    finished = finished_of(proc)
    assert (finished["state"], finished["error_code"]) == ("CANCELLED", "cancelled")
    assert run_lock.held(proc.paths.dir) is False
    os.kill(warm.pid, 0)  # the warm process lives on


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSEGV])
def test_a_run_killed_by_a_signal_is_a_crash_and_the_warm_process_serves_the_next(warm, tmp_path, sig):
    proc = forked(warm, make_run(tmp_path, "killed", LONG))
    wait_event(proc.paths, "started")
    os.killpg(proc.pid, sig)
    finished = finished_of(proc)
    assert (finished["state"], finished["error_code"], finished["retryable"]) == ("FAILED", "worker_crashed", True)
    assert sig.name in finished["error_message"]

    # Nothing else went with it: the same warm process forks the next run, which trains to the end.
    following = forked(warm, make_run(tmp_path, "next", {}, model=TFIDF))
    assert parent_of(following.pid) == warm.pid
    assert finished_of(following)["state"] == "SUCCEEDED"


def test_a_dead_warm_process_is_replaced_and_its_runs_are_still_recorded(warm, tmp_path):
    proc = forked(warm, make_run(tmp_path, "orphaned", LONG))
    wait_event(proc.paths, "started")
    old = warm.pid
    os.kill(old, signal.SIGKILL)

    # The warm process's report of the run's exit is cut off (the stdlib reads 255), but the run lives
    # on in its own session: its watcher waits for the lock instead of recording a crash.
    deadline = time.monotonic() + HANG_GUARD_S
    while proc.forked.exitcode is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.forked.exitcode is not None
    assert run_lock.held(proc.paths.dir) and not proc.done.is_set()
    assert find_finished(read_events(proc.paths.events)) is None
    proc.terminate("cancel", grace_s=30)
    assert finished_of(proc)["state"] == "CANCELLED"

    # Replaced without waiting for a run to ask; the next runs are forked from the new one.
    deadline = time.monotonic() + HANG_GUARD_S
    while warm.pid == old and time.monotonic() < deadline:
        time.sleep(0.05)
    assert warm.wait_ready(HANG_GUARD_S) and warm.pid != old
    again = forked(warm, make_run(tmp_path, "again", {}, model=TFIDF))
    assert parent_of(again.pid) == warm.pid
    assert finished_of(again)["state"] == "SUCCEEDED"


def test_runs_start_cold_until_the_warm_process_is_ready(tmp_path):
    cold = RunProcess.spawn(make_run(tmp_path, "cold", {}, model=TFIDF), WarmProcess())  # never started
    assert cold.popen is not None and cold.forked is None
    assert run_lock.held(cold.paths.dir)  # a spawned child holds the run's lock too, from the worker
    assert finished_of(cold)["state"] == "SUCCEEDED"
    assert run_lock.held(cold.paths.dir) is False


FIRST_SERVER = """
import sys, time
from pathlib import Path
from makam_worker.layout import RunPaths
from makam_worker.process import RunProcess
from makam_worker.warm import WarmProcess

warm = WarmProcess()
warm.start()
assert warm.wait_ready(600)
proc = RunProcess.spawn(RunPaths(Path(sys.argv[1])), warm)
assert proc.forked is not None
print(proc.pid, flush=True)
time.sleep(3600)
"""


def test_a_restarted_worker_adopts_a_live_forked_run_and_records_its_end(tmp_path):
    paths = make_run(tmp_path, "adopted", LONG)
    first = subprocess.Popen([sys.executable, "-c", FIRST_SERVER, str(paths.dir)], stdout=subprocess.PIPE, text=True)
    try:
        pid = int(first.stdout.readline())
        wait_event(paths, "started")
    finally:
        first.kill()  # the worker dies; its run, in its own session, trains on
        first.wait()
    # Why the lock: a forked run's command line is its warm process's, with no run dir in it.
    assert str(paths.dir).encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()

    manager = RunManager(paths.dir.parent.parent, cancel_grace_s=30)
    status = manager.status("adopted")
    assert (status.state, status.pid) == ("RUNNING", pid)
    os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + HANG_GUARD_S
    while manager.status("adopted").state == "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.05)
    finished = find_finished(read_events(paths.events))
    assert (finished["state"], finished["error_code"]) == ("FAILED", "worker_crashed")
    assert "adopted" in finished["error_message"]
