"""The run's phases as trace spans: `with phase("tokenizer"):` appends a `span` event (name, start and end
in unix nanoseconds, attributes, error) to the run's event log, and the dispatcher, which holds the
OpenTelemetry SDK, records it as a child span of the job's trace. Python's OpenTelemetry SDK is not
needed here, and the worker sends nothing to a collector itself.

Only a run started with a sampled W3C traceparent (the dispatcher's StartRun metadata, kept by the worker
in the run dir as TRACE_FILE) records spans; otherwise `phase` does nothing, and no event is written.
The recorder is one per process (the training child runs one run), set once by `start`, as an
OpenTelemetry tracer would be, so the phases deep in the families need no extra argument.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from makam_worker.events import EventLog

TRACE_FILE = "traceparent"
# version 00, 32 hex trace id, 16 hex parent id, 2 hex flags; all-zero ids are invalid (W3C Trace Context).
_TRACEPARENT = re.compile(r"^00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}$")

_events: EventLog | None = None


def sampled(traceparent: str | None) -> bool:
    """True for a well-formed traceparent whose sampled flag is set: only such a run records spans."""
    return bool(traceparent) and _TRACEPARENT.match(traceparent) is not None and int(traceparent[-2:], 16) & 1 == 1


def start(run_dir: Path, events: EventLog) -> bool:
    """Records this process's phases into `events` when the run was started within a sampled trace."""
    global _events
    try:
        traceparent = (run_dir / TRACE_FILE).read_text(encoding="ascii").strip()
    except (FileNotFoundError, UnicodeDecodeError):
        traceparent = ""
    _events = events if sampled(traceparent) else None
    return _events is not None


def stop() -> None:
    global _events
    _events = None


class Open:
    """A phase begun by `begin` and recorded when `end` is called (never, if the code between raises)."""

    def __init__(self, name: str, attributes: dict[str, Any]) -> None:
        self.name, self.attributes, self.began = name, attributes, time.time_ns()

    def end(self, **attributes: Any) -> None:
        if _events is not None:
            _record(_events, self.name, self.began, {**self.attributes, **attributes}, "")


def begin(name: str, **attributes: Any) -> Open | None:
    """For a phase whose block is too long to indent under `with phase(...)`: `end()` records it."""
    return Open(name, attributes) if _events is not None else None


def _record(events: EventLog, name: str, began: int, attributes: dict[str, Any], error: str) -> None:
    events.append("span", name=name, start_time_unix_nano=began, end_time_unix_nano=time.time_ns(),
                  attributes={k: v for k, v in attributes.items() if v is not None}, error=error)


@contextmanager
def phase(name: str, **attributes: Any) -> Iterator[dict[str, Any]]:
    """Times the block as the phase `name`; the yielded dict takes attributes learnt inside it. A block
    that raises is recorded with the error (Cancelled too: the trace shows where a run stopped)."""
    events = _events
    if events is None:
        yield attributes
        return
    began = time.time_ns()
    error = ""
    try:
        yield attributes
    except BaseException as e:
        error = f"{type(e).__name__}: {e}"[:500]
        raise
    finally:
        _record(events, name, began, attributes, error)
