"""The training child's entry point: `python -m makam_worker.training.child <run_dir>`.

Parses spec.json once (a RunSpec; one it cannot parse fails the run as invalid_spec or
invalid_hyperparameters), appends events to events.jsonl and ends with a `finished` event, except when
cancelled (SIGTERM): then it exits without one and the server, which waits for the exit, writes it.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from makam_worker import logs
from makam_worker.events import EventLog
from makam_worker.layout import RunPaths
from makam_worker.run_spec import InvalidRunSpec, RunSpec
from makam_worker.training import distributed
from makam_worker.training import cpu_threads
from makam_worker.training.errors import Cancelled, TrainingError

EXIT_OK, EXIT_FAILED, EXIT_CANCELLED = 0, 1, 128 + signal.SIGTERM
MAX_MESSAGE = 2000

logger = logging.getLogger("makam_worker.training")


def execute(run_dir: Path, should_stop: Callable[[], bool] = lambda: False) -> int:
    """Runs the training in this process and returns the exit code; tests call it directly."""
    paths = distributed.rank_paths(run_dir)  # a rank other than 0 of a multi-device run writes aside
    events = EventLog(paths.events)
    log = logs.for_run(logger, run_dir.name)
    try:
        from makam_worker.training.pipeline import train_run  # torch loads after the SIGTERM handler is set

        try:
            spec = RunSpec.from_json(paths.spec.read_text(encoding="utf-8"))
        except InvalidRunSpec as e:
            raise TrainingError(e.code, str(e)[:MAX_MESSAGE]) from None
        cpu_threads.apply(log, neural=spec.model.family != "tfidf")  # here: a forked run has torch loaded already
        summary = train_run(paths, spec, events, should_stop, log)
    except Cancelled:
        log.info("cancelled; exiting for the server to record it")
        return EXIT_CANCELLED
    except TrainingError as e:
        log.error("run failed: %s (retryable=%s): %s", e.code, e.retryable, e.message)
        _finish_failed(events, e.code, e.message, e.retryable)
        return EXIT_FAILED
    except Exception as e:
        if distributed.lost_a_peer(e, should_stop()):
            log.warning("rank stopped with the run around it (a rank died or torchrun is stopping): %s", e)
            return EXIT_CANCELLED if should_stop() else EXIT_FAILED
        log.exception("run failed with an unexpected error")
        code, retryable = ("out_of_memory", False) if _is_oom(e) else ("training_error", False)
        _finish_failed(events, code, f"{type(e).__name__}: {e}"[:MAX_MESSAGE], retryable)
        return EXIT_FAILED
    events.append("finished", state="SUCCEEDED", error_code="", error_message="", retryable=False,
                  final_metrics=summary)
    log.info("run succeeded")
    return EXIT_OK


def _finish_failed(events: EventLog, code: str, message: str, retryable: bool) -> None:
    events.append("finished", state="FAILED", error_code=code, error_message=message, retryable=retryable)


def _is_oom(error: Exception) -> bool:
    if isinstance(error, MemoryError):
        return True
    torch = sys.modules.get("torch")  # a tfidf run never imports it
    return torch is not None and isinstance(error, torch.OutOfMemoryError)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m makam_worker.training.child <run_dir>", file=sys.stderr)
        return 2
    stop = threading.Event()
    # SIGTERM only sets a flag: the loop checks it every step and exits between steps.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    run_dir = Path(args[0]).resolve()
    logs.add_handler(logging.FileHandler(RunPaths(run_dir).train_log, encoding="utf-8"))
    logger.info("training process %d started", os.getpid(), extra={"run_id": run_dir.name})
    distributed.setup()  # a rank of a multi-device run joins its process group
    return execute(run_dir, stop.is_set)


if __name__ == "__main__":
    code = main()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip the interpreter's teardown (torch's can take seconds): every event is already on disk.
    os._exit(code)
