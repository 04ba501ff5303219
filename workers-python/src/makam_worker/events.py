"""A run's event log: JSON lines in `run_dir/events.jsonl`, shared by the training child and the server.

Each line is one event, `{"seq", "time_unix_ms", "type", ...fields}`, with the fields of the proto
message of that type in snake_case (`finished.state` is "SUCCEEDED", "FAILED" or "CANCELLED").
There is one writer at a time: the child while it lives, then the server (crash, cancel), so a seq
counter read from the file once per writer is enough to keep seqs 1, 2, 3... without gaps.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

EVENTS_FILE = "events.jsonl"
EVENT_TYPES = frozenset({"started", "progress", "metrics", "checkpoint", "log", "finished", "span"})
FINAL_STATES = frozenset({"SUCCEEDED", "FAILED", "CANCELLED"})
# The largest event line, far under gRPC's 16 MiB message limit: labels come from users and a report
# keyed by label grows with them (10 labels of 500 kB made a 20 MB `finished` event that could not be
# sent, and the trained model was never fetched). The full report stays in the artifact's metrics.json.
MAX_EVENT_BYTES = 256 * 1024
# The per-label parts of an evaluation report: the first to go when an event is too large.
_REPORT_KEYS = frozenset({"per_class", "confusion_matrix"})

Event = dict[str, Any]


def _size(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


def _clip(value: Any, max_chars: int, max_items: int) -> Any:
    if isinstance(value, str):
        return value[:max_chars] + "…" if len(value) > max_chars else value
    if isinstance(value, list):
        return [_clip(v, max_chars, max_items) for v in value[:max_items]]
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if k in _REPORT_KEYS:
                continue
            if len(out) >= max_items:
                break
            out[k[:max_chars] + "…" if len(k) > max_chars else k] = _clip(v, max_chars, max_items)
        return out
    return value


def bound_event(event: Event, max_bytes: int = MAX_EVENT_BYTES) -> Event:
    """The event as it is when it fits in max_bytes; else a smaller copy marked `truncated`: per-class
    report parts dropped, strings, lists and maps clipped ever shorter, at worst only scalar fields.
    The envelope (seq, time, type) and a finished event's state and error code always stay. The same
    rule as the dispatcher's boundJson (services/shared/src/job-store.ts)."""
    if _size(event) <= max_bytes:
        return event
    keep = {k: event[k] for k in ("seq", "time_unix_ms", "type", "state", "retryable") if k in event}
    for chars, items in ((1024, 1000), (128, 100), (32, 20)):
        bounded = {**_clip(event, chars, items), **keep, "truncated": True}
        if isinstance(bounded.get("final_metrics"), dict):  # the job's result says it is a summary
            bounded["final_metrics"]["truncated"] = True
        if _size(bounded) <= max_bytes:
            return bounded
    scalars = {k: v for k, v in event.items() if isinstance(v, (int, float, bool)) or (isinstance(v, str) and len(v) <= 64)}
    return {**scalars, **keep, "truncated": True}


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def _parse_lines(data: bytes) -> list[Event]:
    events = []
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except ValueError:
            continue  # a torn line from a writer that died mid-write; the seqs after it stay intact
        if isinstance(event, dict) and isinstance(event.get("seq"), int):
            events.append(event)
    return events


def read_events(path: Path, after_seq: int = 0) -> list[Event]:
    """All complete events with seq > after_seq; an absent file reads as no events."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    # A last line without its newline is still being written: leave it for the next read.
    data = data[: data.rfind(b"\n") + 1]
    return [e for e in _parse_lines(data) if e["seq"] > after_seq]


def find_finished(events: list[Event]) -> Event | None:
    return next((e for e in reversed(events) if e.get("type") == "finished"), None)


class EventLog:
    """Appends events to one file. Create one per writer: it reads the last seq once, then counts."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._last_seq: int | None = None

    @property
    def last_seq(self) -> int:
        if self._last_seq is None:
            events = read_events(self.path)
            self._last_seq = events[-1]["seq"] if events else 0
        return self._last_seq

    def append(self, type_: str, **fields: Any) -> Event:
        if type_ not in EVENT_TYPES:
            raise ValueError(f"unknown event type {type_!r}")
        event: Event = bound_event({"seq": self.last_seq + 1, "time_unix_ms": now_ms(), "type": type_, **fields})
        line = json.dumps(event, ensure_ascii=False, separators=(",", ":")) + "\n"
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            if self._ends_torn(fd):
                os.write(fd, b"\n")  # close a torn line so this event starts on its own line
            os.write(fd, line.encode())  # one write per line: readers see whole lines or nothing
            if type_ == "finished":
                os.fsync(fd)
        finally:
            os.close(fd)
        self._last_seq = event["seq"]
        return event

    @staticmethod
    def _ends_torn(fd: int) -> bool:
        size = os.fstat(fd).st_size
        return size > 0 and os.pread(fd, 1, size - 1) != b"\n"


class EventTail:
    """Reads the events appended to a file since the last call, for watchers that poll."""

    def __init__(self, path: Path, after_seq: int = 0) -> None:
        self.path = path
        self.after_seq = after_seq
        self.finished_seen = False  # a `finished` event was read, even one at or before after_seq
        self._offset = 0

    def poll(self) -> list[Event]:
        try:
            with self.path.open("rb") as f:
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return []
        complete = data[: data.rfind(b"\n") + 1]
        self._offset += len(complete)
        parsed = _parse_lines(complete)
        self.finished_seen = self.finished_seen or find_finished(parsed) is not None
        events = [e for e in parsed if e["seq"] > self.after_seq]
        if events:
            self.after_seq = events[-1]["seq"]
        return events
