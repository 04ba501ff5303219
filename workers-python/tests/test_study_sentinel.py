"""`python -m makam_study` through Redis Sentinel (REDIS_SENTINELS, as the dispatcher hands it over):
real redis-server processes, a primary, a replica and one sentinel (quorum 1). The primary is killed
between two asks; the sentinel promotes the replica and the study goes on where it was."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from makam_study.connection import RedisTarget, parse_sentinels

import redis  # noqa: E402

from test_study import REDIS_SERVER, Child, config, free_port  # noqa: E402


def _wait(what: str, fn, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            got = fn()
            if got:
                return got
        except redis.exceptions.RedisError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def sentinel_set(tmp_path: Path) -> Iterator[dict]:
    if not os.access(REDIS_SERVER, os.X_OK):
        pytest.skip(f"redis-server not found ({REDIS_SERVER})")
    primary, replica, sentinel = free_port(), free_port(), free_port()
    procs: dict[int, subprocess.Popen] = {}
    for port in (primary, replica):
        args = [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(tmp_path),
                "--appendonly", "yes", "--appendfilename", f"aof-{port}", "--appenddirname", f"aof-{port}",
                "--appendfsync", "always"]
        if port == replica:
            args += ["--replicaof", "127.0.0.1", str(primary)]
        procs[port] = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait(f"redis-server on {port}", redis.Redis(port=port).ping)
    _wait("the replica to sync", lambda: redis.Redis(port=replica).info("replication").get("master_link_status") == "up")
    conf = tmp_path / "sentinel.conf"
    conf.write_text(
        f"port {sentinel}\nbind 127.0.0.1\ndir {tmp_path}\n"
        f"sentinel monitor mymaster 127.0.0.1 {primary} 1\n"
        "sentinel down-after-milliseconds mymaster 1000\nsentinel failover-timeout mymaster 4000\n"
    )
    procs[sentinel] = subprocess.Popen([REDIS_SERVER, str(conf), "--sentinel"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait("the sentinel to see the replica",
          lambda: redis.Redis(port=sentinel).sentinel_master("mymaster")["num-slaves"] >= 1)
    try:
        yield {"primary": primary, "replica": replica, "sentinel": sentinel, "procs": procs}
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.terminate()
                p.wait(10)


def test_parse_sentinels() -> None:
    assert parse_sentinels("a:26379, b:1,[::1]:26380") == [("a", 26379), ("b", 1), ("::1", 26380)]
    with pytest.raises(ValueError, match="REDIS_SENTINELS"):
        parse_sentinels("a:26379,b")


def test_target_from_the_dispatchers_environment() -> None:
    env = {"REDIS_URL": "redis://:pw@ignored:6379/2", "REDIS_SENTINELS": "s1:26379,s2:26379", "REDIS_SENTINEL_NAME": "main"}
    t = RedisTarget.from_env(env)
    assert t.sentinels == [("s1", 26379), ("s2", 26379)] and t.sentinel_name == "main" and t.sentinel_password is None
    assert RedisTarget.from_env({}).sentinels == []


def test_a_study_goes_on_through_a_failover(sentinel_set: dict, tmp_path: Path) -> None:
    key = f"makam:study:test-{uuid.uuid4().hex[:12]}"
    env_before = dict(os.environ)
    try:
        # The URL's host is not used: the sentinel names the primary.
        os.environ.update({"REDIS_SENTINELS": f"127.0.0.1:{sentinel_set['sentinel']}", "REDIS_SENTINEL_NAME": "mymaster"})
        child = Child("redis://unused-host:1", tmp_path / "stderr.log")
    finally:
        os.environ.clear()
        os.environ.update(env_before)
    try:
        assert child.ok("create", study=key, **config()) == {"created": True}
        first = child.ok("ask", study=key)
        assert first["number"] == 0
        child.ok("tell", study=key, number=0, state="complete", value=1.0)

        sentinel_set["procs"][sentinel_set["primary"]].send_signal(signal.SIGKILL)
        _wait("the sentinel to promote the replica", lambda: redis.Redis(port=sentinel_set["sentinel"]).sentinel_get_master_addr_by_name("mymaster")[1] == sentinel_set["replica"])

        # Until the new primary answers, an op is answered `unavailable` (the dispatcher retries).
        def ask() -> dict | None:
            reply = child.call("ask", study=key)
            if not reply["ok"]:
                assert reply["error"]["code"] == "unavailable", reply
                return None
            return reply["result"]
        second = _wait("an ask through the new primary", ask)
        assert second["number"] == 1, "the study went on from the replica's copy"
        child.ok("tell", study=key, number=1, state="complete", value=0.5)
        summary = child.ok("summary", study=key)
        assert [t["number"] for t in summary["trials"]] == [0, 1]
        assert redis.Redis(port=sentinel_set["replica"]).info("replication")["role"] == "master"
    finally:
        assert child.close() == 0
