"""The run's CPU threads, set in the run itself from the worker's CPU budget (settings.cpu_budget):
a run forked from the warm process (warm.py) inherits torch and BLAS already loaded with thread pools
sized for the whole host, so the environment alone would come too late there."""

from __future__ import annotations

import os
import sys
import threading

from threadpoolctl import threadpool_limits

from makam_worker import settings
from makam_worker.training.common import Log

THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def apply(log: Log, *, neural: bool) -> int:
    """Sizes this process's thread pools to the budget; returns it. For libraries loaded later (a cold
    run imports torch after this) the environment; for those loaded already, their own calls."""
    threads, source = settings.cpu_budget()
    ranks = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))  # torchrun's: a run on several devices of this host
    if ranks > 1:  # the budget is the run's, shared by its ranks, so they do not oversubscribe the cores
        threads, source = max(1, threads // ranks), f"{source}, shared by {ranks} ranks"
    for name in THREAD_ENV:
        os.environ[name] = str(threads)
    threadpool_limits(limits=threads)  # OpenMP and BLAS pools already loaded (NumPy, scikit-learn)
    torch = sys.modules.get("torch")
    if torch is None and neural:
        import torch
    if torch is not None:
        torch.set_num_threads(threads)
    log.info("CPU threads: %d, from %s%s", threads, source,
             f"; torch uses {torch_threads(torch)}" if torch is not None else "")
    return threads


def torch_threads(torch) -> int:
    """torch's count as a thread it has not run on yet takes it: torch's own setting, else MKL's. This
    thread's count alone would mislead, since threadpoolctl sets its OpenMP count but not torch's MKL."""
    seen: list[int] = []
    thread = threading.Thread(target=lambda: seen.append(torch.get_num_threads()), name="makam-torch-threads")
    thread.start()
    thread.join()
    return seen[0]
