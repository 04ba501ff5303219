from makam_worker.events import EventLog, EventTail, read_events


def test_seqs_continue_across_writers_without_gaps(tmp_path):
    path = tmp_path / "events.jsonl"
    child = EventLog(path)
    child.append("started", pid=1)
    child.append("progress", step=1)
    EventLog(path).append("finished", state="FAILED")  # the server, after the child exited
    assert [e["seq"] for e in read_events(path)] == [1, 2, 3]


def test_tail_returns_only_whole_new_lines_after_the_cursor(tmp_path):
    path = tmp_path / "events.jsonl"
    log = EventLog(path)
    for step in range(3):
        log.append("progress", step=step)
    tail = EventTail(path, after_seq=1)
    assert [e["seq"] for e in tail.poll()] == [2, 3]
    with path.open("ab") as f:
        f.write(b'{"seq": 4, "time_unix_ms": 0, "type": "log"')  # a line still being written
    assert tail.poll() == []
    with path.open("ab") as f:
        f.write(b"}\n")
    assert [e["seq"] for e in tail.poll()] == [4]
    assert not tail.finished_seen


def test_a_torn_line_is_skipped_and_the_next_append_starts_a_new_line(tmp_path):
    path = tmp_path / "events.jsonl"
    EventLog(path).append("started", pid=1)
    with path.open("ab") as f:
        f.write(b'{"seq": 2, "ti')  # a writer killed mid-line
    EventLog(path).append("finished", state="FAILED")
    assert [(e["seq"], e["type"]) for e in read_events(path)] == [(1, "started"), (2, "finished")]
