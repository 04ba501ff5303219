"""A warm training process: runs forked from a Python that has already imported torch,
transformers, scikit-learn, tokenizers and the training modules, so a run starts in milliseconds
instead of paying those imports (seconds) each time.

It is the standard library's multiprocessing "forkserver" with those modules preloaded: a clean
process started from the worker, which imports them, starts no thread and touches no CUDA (a run
initialises CUDA itself), and then forks one child per request. It also hands each child's exit
status back to the worker, and the stdlib starts a new one when it has died.

A forked run is what a spawned one is: `run_forked` puts it in its own session first (cancel
signals the group; a crash of one run reaches nothing else), takes the run's lock (run_lock.py:
how a restarted worker knows it is alive), sends stdout and stderr to train.log and runs the same
`training.child.main`. Until the warm process is ready, or when it died and is being replaced, or
with MAKAM_WORKER_WARM=0, runs are spawned cold as before (process.py).

There is one forkserver per Python process (the stdlib's), so there is one WarmProcess: `shared()`.
"""

from __future__ import annotations

import importlib.util
import io
import logging
import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Mapping
from multiprocessing import context, forkserver, popen_forkserver, reduction, spawn, util
from pathlib import Path

from makam_worker import run_lock

logger = logging.getLogger("makam_worker.warm")

# Imported once in the warm process. An entry that fails to import is skipped by the stdlib (decoder
# runs need peft, which a worker may lack); none of them may start a thread or initialise CUDA.
PRELOAD = [
    "torch",
    "transformers",
    "tokenizers",
    "sentencepiece",
    "sklearn.feature_extraction.text",
    "sklearn.svm",
    "sklearn.linear_model",
    "sklearn.metrics",
    "makam_worker.training.child",
    "makam_worker.training.pipeline",
    "makam_worker.training.trainer",
    "makam_worker.training.families.encoder",
    "makam_worker.training.families.decoder",
    "makam_worker.training.families.scratch",
    "makam_worker.training.families.tfidf",
    "makam_worker.training.tokenizer_cache",
    # What `from_config` and `from_pretrained` resolve lazily for the models the tests and tiny runs use.
    "transformers.models.bert.modeling_bert",
    "transformers.models.llama.modeling_llama",
]
# peft imports bitsandbytes where it is installed, and bitsandbytes asks CUDA about the device when
# imported: there, decoder runs import peft themselves.
if importlib.util.find_spec("bitsandbytes") is None:
    PRELOAD.append("peft")
# Variables the preloaded libraries read when imported: a warm process started under other values
# would not run as a cold child started now would, so then runs go cold until it is replaced.
IMPORT_TIME_ENV = ("HF_", "HUGGINGFACE_", "TRANSFORMERS_", "TOKENIZERS_", "TORCH", "PYTORCH_", "CUDA_", "OMP_",
                   "MKL_", "OPENBLAS_", "PYTHON")
# How long a fork may take to reach its own session and lock before the worker goes on without waiting.
SETTLE_S = 10.0


def _import_time_env(env: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k.startswith(IMPORT_TIME_ENV)}


class _Popen(popen_forkserver.Popen):
    def _launch(self, process_obj: multiprocessing.process.BaseProcess) -> None:
        # The stdlib's popen_forkserver.Popen._launch, but without the parent's main module in the
        # preparation data: a child would import it again, and a main run as a script (a bench, the
        # `makam-worker` console script) is re-run whole, server imports and all, on every fork.
        prep_data = {k: v for k, v in spawn.get_preparation_data(process_obj._name).items()
                     if not k.startswith("init_main_from")}
        buf = io.BytesIO()
        context.set_spawning_popen(self)
        try:
            reduction.dump(prep_data, buf)
            reduction.dump(process_obj, buf)
        finally:
            context.set_spawning_popen(None)
        self.sentinel, w = forkserver.connect_to_new_process(self._fds)
        _parent_w = os.dup(w)  # as the stdlib: the child sees its parent's end through it
        self.finalizer = util.Finalize(self, util.close_fds, (_parent_w, self.sentinel))
        with open(w, "wb", closefd=True) as f:
            f.write(buf.getbuffer())
        self.pid = forkserver.read_signed(self.sentinel)


class _Forked(context.ForkServerProcess):
    @staticmethod
    def _Popen(process_obj: multiprocessing.process.BaseProcess) -> _Popen:
        return _Popen(process_obj)


def _probe() -> None:
    """Forked once the warm process has imported everything: its exit says the process is ready, and
    fit to fork runs from: CUDA untouched (a CUDA context does not survive a fork)."""
    torch = sys.modules.get("torch")
    os._exit(3 if torch is not None and torch.cuda.is_initialized() else 0)


def run_forked(run_dir: str, env: dict[str, str]) -> None:
    """The forked run's body, in the child of the warm process."""
    os.setsid()  # first: its own session and process group, as a spawned child has
    run_lock.hold(Path(run_dir))
    log_fd = os.open(Path(run_dir) / "train.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    # The worker's environment as it is now, as a spawned child would have it.
    os.environ.clear()
    os.environ.update(env)
    from makam_worker.training import child

    code = 2
    try:
        code = child.main([run_dir])
    finally:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)  # no interpreter teardown, as the spawned child: every event is on disk


class WarmProcess:
    """The worker's warm training process: `start()` (in the background), then `fork_run()` per run."""

    def __init__(self, preload: list[str] | None = None) -> None:
        self._preload = list(PRELOAD if preload is None else preload)
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._warming = False
        self._env: dict[str, str] = {}
        self.pid = 0  # the warm process, once ready
        self.ready_s = 0.0  # how long it took to get ready, the last time

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def start(self) -> None:
        """Starts (or replaces) the warm process in a background thread; returns at once."""
        with self._lock:
            if self._warming:
                return
            self._warming = True
            self._ready.clear()
        threading.Thread(target=self._warm_up, name="makam-warm-up", daemon=True).start()

    def wait_ready(self, timeout: float | None = None) -> bool:
        return self._ready.wait(timeout)

    def _warm_up(self) -> None:
        began = time.monotonic()
        # torch's documented switch for processes that fork: is_available() asks NVML, not the CUDA
        # driver, so a preloaded library that asks it leaves CUDA uninitialised for the runs.
        os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")
        try:
            forkserver.set_forkserver_preload(self._preload)
            env = _import_time_env(os.environ)
            # The first fork waits for the preload to finish: once it is back, forks are fast.
            probe = _Forked(target=_probe, name="makam-warm-probe")
            probe.start()
            probe.join()
            pid = _forkserver_pid()
            if probe.exitcode != 0 or not pid:
                raise RuntimeError(f"the probe fork ended with {probe.exitcode} (3: CUDA was initialised)")
        except Exception as e:  # the worker goes on, spawning runs cold
            logger.warning("the warm training process could not be started (%s); runs start cold", e)
            with self._lock:
                self._warming = False
            return
        with self._lock:
            self._env, self.pid, self.ready_s = env, pid, time.monotonic() - began
            self._warming = False
            self._ready.set()
        logger.info("warm training process %d ready in %.1fs", pid, self.ready_s)
        threading.Thread(target=self._replace_when_gone, args=(pid,), name="makam-warm-watch", daemon=True).start()

    def _replace_when_gone(self, pid: int) -> None:
        """Waits for the warm process to end (without reaping it: the stdlib does, as it replaces it)
        and replaces it at once, so the run after a crash of the warm process need not start cold."""
        try:
            os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
        except ChildProcessError:
            pass  # already reaped: the stdlib replaced it
        if self.pid == pid and self._ready.is_set():
            logger.warning("the warm training process %d is gone; replacing it (runs start cold meanwhile)", pid)
            self.start()

    def fork_run(self, run_dir: Path, env: Mapping[str, str]) -> multiprocessing.process.BaseProcess | None:
        """The run's process forked from the warm process, in its own session, holding the run's lock
        and with `env` as its environment; None when there is no ready warm process (the caller spawns
        the run cold)."""
        if not self._ready.is_set():
            return None
        if not _alive(self.pid):
            logger.warning("the warm training process %d is gone; replacing it (runs start cold meanwhile)", self.pid)
            self.start()
            return None
        if _import_time_env(os.environ) != self._env:
            logger.warning("the environment changed since the warm training process started; replacing it")
            self.start()
            return None
        proc = _Forked(target=run_forked, args=(str(run_dir), dict(env)),
                                 name=f"makam-run-{Path(run_dir).name}")
        proc.start()
        # Back once the child is in its own group (killpg reaches it) and holds the lock (adoption finds it).
        deadline = time.monotonic() + SETTLE_S
        while run_lock.held(run_dir) is not True and proc.exitcode is None and time.monotonic() < deadline:
            time.sleep(0.001)
        return proc


def _forkserver_pid() -> int:
    # The stdlib keeps it in its private singleton; 0 where a Python version moved it.
    return getattr(getattr(forkserver, "_forkserver", None), "_forkserver_pid", None) or 0


def _alive(pid: int) -> bool:
    """Whether our child `pid` still runs, without reaping it (the stdlib reaps and replaces it)."""
    if not pid or pid != _forkserver_pid():
        return False
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None
    except ChildProcessError:
        return False


_shared = WarmProcess()


def shared() -> WarmProcess:
    """This process's warm training process (started by the worker's main, or a test)."""
    return _shared
