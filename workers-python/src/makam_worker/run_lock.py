"""A run's identity while its training process lives: an flock on `run_dir/alive.lock`.

The training process takes the lock first thing and holds it until it exits; the kernel frees it
then, however the process ended. So a restarted server asks the lock, not a pid, whether a run is
still going: immune to pid reuse, and true also of a run forked from the warm process, whose command
line does not name its run dir. Stdlib only: the training child imports it before torch.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_FILE = "alive.lock"


def lock_path(run_dir: Path) -> Path:
    return Path(run_dir) / LOCK_FILE


def hold(run_dir: Path) -> int:
    """Takes the run's lock for the life of this process (the fd is never closed); returns the fd.
    Close-on-exec, so a program the run execs does not keep the run 'alive' after it."""
    fd = os.open(lock_path(run_dir), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def held(run_dir: Path) -> bool | None:
    """True while a live process holds the run's lock, False once it is free, None when the run has
    no lock file (its process never took one: it was started by an older worker, or not yet)."""
    try:
        fd = os.open(lock_path(run_dir), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)
