"""Logging for the server and the training child: one line per event, each carrying a run id.

Log lines name runs, files, counts and errors; they never carry dataset text.
"""

from __future__ import annotations

import logging
from typing import IO

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s run_id=%(run_id)s %(message)s"


class _RunIdDefault(logging.Filter):
    """Gives records logged outside any run `run_id=-`, so one format serves every line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "run_id"):
            record.run_id = "-"
        return True


def add_handler(handler: logging.Handler, level: int = logging.INFO) -> None:
    """Attaches a handler with the run-id format to the root logger."""
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.addFilter(_RunIdDefault())
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level)


def configure(stream: IO[str] | None = None, level: int = logging.INFO) -> None:
    add_handler(logging.StreamHandler(stream), level)


def for_run(logger: logging.Logger, run_id: str) -> logging.LoggerAdapter[logging.Logger]:
    """A logger whose lines carry `run_id=<run_id>`."""
    return logging.LoggerAdapter(logger, {"run_id": run_id})
