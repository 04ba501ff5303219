"""makam_study against a real, throwaway redis-server: through the stdio protocol of
`python -m makam_study` and, where simpler, through `makam_study.study` directly."""

from __future__ import annotations

import json
import math
import os
import queue
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from makam_study import study as st  # first: it lets redis import on Pythons below 3.11.3
from makam_study import protocol
from makam_study.__main__ import redact, secrets_of

import redis  # noqa: E402  (a pinned dependency: missing, the tests fail rather than skip)

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
SPACE = {
    "lr": {"type": "float", "low": 1e-5, "high": 1e-2, "log": True},
    "batch_size": {"type": "int", "low": 8, "high": 64, "step": 8},
    "layers": {"type": "int", "low": 1, "high": 4},
    "optimizer": {"type": "categorical", "choices": ["adamw", "sgd", None, 3]},
    "dropout": {"type": "float", "low": 0.0, "high": 0.5},
}


def config(**over: Any) -> dict[str, Any]:
    base = {
        "space": SPACE,
        "direction": "minimize",
        "sampler": "random",
        "pruner": {"type": "median"},
        "seed": 11,
        "trials": 20,
    }
    return {**base, **over}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    if not os.access(REDIS_SERVER, os.X_OK):
        pytest.skip(f"redis-server not found ({REDIS_SERVER}); install it (apt-get install redis-server)")
    for _ in range(5):
        port = free_port()
        proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"redis://127.0.0.1:{port}"
        client = redis.Redis.from_url(url)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                client.ping()
                break
            except redis.exceptions.ConnectionError:
                time.sleep(0.05)
        if proc.poll() is None:
            break
    else:
        pytest.fail("redis-server did not start")
    try:
        yield url
    finally:
        client.close()
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def key() -> str:
    return f"makam:study:test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def studies(redis_url: str) -> Iterator[st.Studies]:
    s = st.Studies(redis_url)
    yield s
    s.close()


class Child:
    """`python -m makam_study` with REDIS_URL, asked one request at a time."""

    def __init__(self, url: str, stderr_path: Path) -> None:
        env = {**os.environ, "REDIS_URL": url}
        self.stderr_path = stderr_path
        self._stderr = open(stderr_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "makam_study"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
        )
        self.lines: queue.Queue[bytes] = queue.Queue()
        self.raw: list[bytes] = []
        threading.Thread(target=self._read, daemon=True).start()
        self._next_id = 1

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.raw.append(line)
            self.lines.put(line)

    def send(self, text: str) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text.encode() + b"\n")
        self.proc.stdin.flush()
        line = self.lines.get(timeout=60)
        assert line.endswith(b"\n")
        return json.loads(line)

    def call(self, op: str, **args: Any) -> dict[str, Any]:
        rid = self._next_id
        self._next_id += 1
        reply = self.send(json.dumps({"id": rid, "op": op, **args}))
        assert reply["id"] == rid
        return reply

    def ok(self, op: str, **args: Any) -> dict[str, Any]:
        reply = self.call(op, **args)
        assert reply["ok"], reply
        return reply["result"]

    def close(self) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        rc = self.proc.wait(30)
        self._stderr.close()
        time.sleep(0.05)  # let the reader drain
        # Nothing but the answers on stdout: each one a JSON object with an id.
        for line in self.raw:
            assert set(json.loads(line)) <= {"id", "ok", "result", "error"}
        return rc

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(30)
        self._stderr.close()


@pytest.fixture
def child(redis_url: str, tmp_path: Path) -> Iterator[Child]:
    c = Child(redis_url, tmp_path / "stderr.log")
    yield c
    if c.proc.poll() is None:
        assert c.close() == 0


def in_space(params: dict[str, Any]) -> None:
    assert set(params) == set(SPACE)
    assert 1e-5 <= params["lr"] <= 1e-2 and isinstance(params["lr"], float)
    assert params["batch_size"] in range(8, 65, 8)
    assert params["layers"] in range(1, 5) and isinstance(params["layers"], int)
    assert params["optimizer"] in ["adamw", "sgd", None, 3]
    assert 0.0 <= params["dropout"] <= 0.5


# ---------------------------------------------------------------------------- protocol


def test_ping_create_idempotent_and_conflict(child: Child, key: str) -> None:
    assert child.ok("ping") == {}
    assert child.ok("create", study=key, **config()) == {"created": True}
    assert child.ok("create", study=key, **config()) == {"created": False}
    reply = child.call("create", study=key, **config(seed=12))
    assert reply["ok"] is False and reply["error"]["code"] == "conflict"
    assert child.ok("summary", study=key) == {"trials": [], "best": None, "importances": None}


def test_ask_params_inside_space(studies: st.Studies, key: str) -> None:
    studies.create(key, st.parse_config(config(sampler="tpe", trials=10)))
    seen = []
    for i in range(8):  # past TPE's 2 startup trials: the TPE model samples too
        got = studies.ask(key)
        assert got["number"] == i
        in_space(got["params"])
        seen.append(got["params"]["lr"])
        studies.tell(key, i, "complete", got["params"]["lr"] * 100 + got["params"]["dropout"])
    assert len(set(seen)) == len(seen)


def test_asks_are_reproducible(studies: st.Studies, key: str) -> None:
    for sampler in ("random", "tpe"):
        firsts = []
        for k in (f"{key}:{sampler}:a", f"{key}:{sampler}:b"):
            studies.create(k, st.parse_config(config(sampler=sampler, seed=5)))
            firsts.append([studies.ask(k)["params"] for _ in range(2)])
        assert firsts[0] == firsts[1]
        assert firsts[0][0] != firsts[0][1]


def test_asks_after_a_restart_continue_the_study(redis_url: str, tmp_path: Path, key: str) -> None:
    first = Child(redis_url, tmp_path / "1.log")
    first.ok("create", study=key, **config())
    before = [first.ok("ask", study=key) for _ in range(3)]
    first.ok("tell", study=key, number=0, state="complete", value=1.0)
    first.kill()  # no goodbye: the study is all in Redis
    second = Child(redis_url, tmp_path / "2.log")
    assert second.ok("create", study=key, **config()) == {"created": False}
    after = [second.ok("ask", study=key) for _ in range(3)]
    assert second.close() == 0
    assert [a["number"] for a in before + after] == [0, 1, 2, 3, 4, 5]
    for a in after:
        in_space(a["params"])
    lrs = [a["params"]["lr"] for a in before + after]
    assert len(set(lrs)) == 6, "a restarted process replayed a random stream"


def test_grid_asks_every_point_once(redis_url: str, key: str) -> None:
    space = {
        "layers": {"type": "int", "low": 1, "high": 5, "step": 2},  # 1, 3, 5
        "dropout": {"type": "float", "low": 0.1, "high": 0.3, "step": 0.1},  # 0.1, 0.2, 0.3
        "opt": {"type": "categorical", "choices": ["a", "b"]},
    }
    cfg = st.parse_config(config(space=space, sampler="grid", trials=18))
    a, b = st.Studies(redis_url), st.Studies(redis_url)  # two processes, one after the other
    try:
        assert a.create(key, cfg) == {"created": True}
        points = []
        for i in range(18):
            got = (a if i < 7 else b).ask(key)
            assert got["number"] == i
            points.append((got["params"]["layers"], got["params"]["dropout"], got["params"]["opt"]))
            if i % 3 == 0:  # some finished, some left running: both count as asked
                (a if i < 7 else b).tell(key, i, "complete", float(i))
            elif i % 3 == 1:
                (a if i < 7 else b).tell(key, i, "fail", None)
        assert sorted(points) == sorted(
            (layers, d, o) for layers in (1, 3, 5) for d in (0.1, 0.2, 0.3) for o in ("a", "b")
        )
        assert a.ask(key) == {"number": None, "params": None}
        assert b.ask(key) == {"number": None, "params": None}
    finally:
        a.close()
        b.close()


def test_grid_needs_a_float_step() -> None:
    with pytest.raises(st.StudyError) as e:
        st.parse_config(config(sampler="grid"))
    assert e.value.code == "bad_request" and "step" in e.value.message
    assert st.grid_values(st.distributions({"x": {"type": "float", "low": 0.1, "high": 0.7, "step": 0.2}})) == {
        "x": [0.1, 0.3, 0.5, 0.7]
    }


def test_median_pruner_prunes_a_bad_trial(studies: st.Studies, key: str) -> None:
    cfg = config(pruner={"type": "median", "startup_trials": 2, "warmup_epochs": 1})
    studies.create(key, st.parse_config(cfg))
    for n in range(3):
        assert studies.ask(key)["number"] == n
        for step in range(1, 5):  # steps are epochs, from 1
            assert studies.report(key, n, step, 0.5 - 0.1 * step) == {"prune": False}
        studies.tell(key, n, "complete", 0.2)
    bad, good = studies.ask(key)["number"], studies.ask(key)["number"]
    assert studies.report(key, bad, 1, 9.0) == {"prune": False}  # epoch 1 of warmup_epochs 1: never pruned
    assert studies.report(key, bad, 2, 9.0) == {"prune": True}
    assert studies.report(key, good, 2, 0.1) == {"prune": False}
    # Reported again: ignored (the first value stays), the decision still answered.
    assert studies.report(key, bad, 2, 0.0) == {"prune": True}
    studies.tell(key, bad, "pruned", None)
    # Finished: nothing stored, never pruned.
    assert studies.report(key, bad, 3, 9.0) == {"prune": False}
    trials = studies.summary(key)["trials"]
    assert trials[bad]["intermediate"] == [[1, 9.0], [2, 9.0]]
    assert trials[bad]["state"] == "PRUNED" and trials[bad]["value"] == 9.0


@pytest.mark.parametrize("pruner", ["successive_halving", "none"])
def test_other_pruners_answer(studies: st.Studies, key: str, pruner: str) -> None:
    studies.create(key, st.parse_config(config(pruner={"type": pruner})))
    for n in range(4):
        studies.ask(key)
        for step in range(3):
            got = studies.report(key, n, step, 0.1 if n < 3 else 5.0)
            assert set(got) == {"prune"} and isinstance(got["prune"], bool)
            if pruner == "none":
                assert got["prune"] is False
        studies.tell(key, n, "complete", 0.1)


def test_tell_is_idempotent_and_nan_fails(child: Child, key: str) -> None:
    child.ok("create", study=key, **config(direction="maximize"))
    for _ in range(3):
        child.ok("ask", study=key)
    assert child.ok("tell", study=key, number=0, state="complete", value=0.75) == {"told": True}
    assert child.ok("tell", study=key, number=0, state="complete", value=0.9) == {"told": False}
    assert child.ok("tell", study=key, number=0, state="fail") == {"told": False}
    assert child.ok("tell", study=key, number=1, state="complete", value=None) == {"told": True}  # JSON's NaN
    child.proc.stdin.write(b'{"id": 900, "op": "tell", "study": "' + key.encode() + b'", "number": 2, '
                           b'"state": "complete", "value": Infinity}\n')
    child.proc.stdin.flush()
    assert json.loads(child.lines.get(timeout=60)) == {"id": 900, "ok": True, "result": {"told": True}}
    summary = child.ok("summary", study=key)
    assert [(t["state"], t["value"]) for t in summary["trials"]] == [("COMPLETE", 0.75), ("FAIL", None), ("FAIL", None)]
    reply = child.call("tell", study=key, number=7, state="complete", value=1.0)
    assert reply["error"]["code"] == "not_found"


def test_summary_best_and_intermediate(child: Child, key: str) -> None:
    child.ok("create", study=key, **config(direction="maximize"))
    asked = [child.ok("ask", study=key) for _ in range(3)]
    for step, v in [(2, 0.3), (0, 0.1), (1, 0.2)]:
        child.ok("report", study=key, number=0, step=step, value=v)
    child.ok("report", study=key, number=2, step=0, value=None)  # a NaN metric: stored, answered as null
    child.ok("tell", study=key, number=0, state="complete", value=0.6)
    child.ok("tell", study=key, number=1, state="complete", value=0.8)
    s = child.ok("summary", study=key)
    assert s["best"] == {"number": 1, "value": 0.8, "params": asked[1]["params"]}
    t0, t1, t2 = s["trials"]
    assert t0["intermediate"] == [[0, 0.1], [1, 0.2], [2, 0.3]]
    assert t2["intermediate"] == [[0, None]] and t2["state"] == "RUNNING" and t2["value"] is None
    assert t0["params"] == asked[0]["params"] and t0["state"] == "COMPLETE"
    assert t0["started_at"].endswith("Z") and t0["finished_at"] >= t0["started_at"]
    assert t2["finished_at"] is None
    assert s["importances"] is None


def test_importances(studies: st.Studies, key: str) -> None:
    space = {"x": {"type": "float", "low": -1.0, "high": 1.0}, "y": {"type": "float", "low": -1.0, "high": 1.0}}
    studies.create(key, st.parse_config(config(space=space)))
    got = studies.ask(key)
    studies.tell(key, got["number"], "complete", 1.0)
    assert studies.summary(key, importances=True)["importances"] is None  # one complete trial
    for _ in range(7):
        got = studies.ask(key)
        p = got["params"]
        studies.tell(key, got["number"], "complete", 10 * p["x"] ** 2 + 0.1 * p["y"])
    imp = studies.summary(key, importances=True)["importances"]
    assert imp is not None and set(imp) == {"x", "y"}
    assert all(isinstance(v, float) and math.isfinite(v) for v in imp.values())
    assert imp == studies.summary(key, importances=True)["importances"]  # seeded
    assert studies.summary(key)["importances"] is None  # not asked


def test_fail_running_keeps_only_those_kept(child: Child, key: str) -> None:
    child.ok("create", study=key, **config())
    for _ in range(5):
        child.ok("ask", study=key)
    child.ok("tell", study=key, number=0, state="complete", value=1.0)
    assert child.ok("fail_running", study=key, keep=[1, 3]) == {"failed": [2, 4]}
    assert child.ok("fail_running", study=key, keep=[1, 3]) == {"failed": []}
    states = [t["state"] for t in child.ok("summary", study=key)["trials"]]
    assert states == ["COMPLETE", "RUNNING", "FAIL", "RUNNING", "FAIL"]


def test_delete_removes_every_key_of_the_study_and_nothing_else(child: Child, key: str, redis_url: str) -> None:
    other = f"{key}-other"
    for k in (key, other):
        child.ok("create", study=k, **config())
        for _ in range(3):
            child.ok("ask", study=k)
        child.ok("tell", study=k, number=0, state="complete", value=1.0)
    client = redis.Redis.from_url(redis_url)
    try:
        assert len(client.keys(f"{key}:*")) > 3  # the journal's logs, its counter
        assert child.ok("delete", study=key) == {"deleted": True}
        assert client.keys(f"{key}:*") == []
        assert len(client.keys(f"{other}:*")) > 3, "another study keeps its keys"
        assert child.ok("delete", study=key) == {"deleted": False}  # removing twice is harmless
        assert child.call("summary", study=key)["error"]["code"] == "not_found"  # not served from a cache
        assert child.ok("summary", study=other)["trials"][0]["state"] == "COMPLETE"
    finally:
        client.close()


def test_bad_requests_answered_and_the_loop_goes_on(child: Child, key: str) -> None:
    def code(reply: dict[str, Any]) -> str:
        assert reply["ok"] is False
        return reply["error"]["code"]

    reply = child.send("this is not json")
    assert reply["id"] is None and code(reply) == "bad_request"
    assert reply["error"]["message"].startswith("malformed JSON")
    assert code(child.send("[1, 2]")) == "bad_request"
    assert code(child.send('{"op": "ping"}')) == "bad_request"  # no id
    assert child.send('{"id": 5, "op": "fly"}')["error"]["code"] == "bad_request"
    assert code(child.call("ask")) == "bad_request"  # no study
    assert code(child.call("ping", extra=1)) == "bad_request"
    assert code(child.call("create", study=key, **{**config(), "trials": "many"})) == "bad_request"
    bad_space = {"x": {"type": "int", "low": 5, "high": 1}}
    assert code(child.call("create", study=key, **config(space=bad_space))) == "bad_request"
    log_with_step = {"x": {"type": "float", "low": 0.1, "high": 1.0, "log": True, "step": 0.1}}
    assert code(child.call("create", study=key, **config(space=log_with_step))) == "bad_request"
    assert code(child.call("create", study=key, **config(pruner={"type": "hyperband"}))) == "bad_request"
    assert code(child.call("ask", study=key)) == "not_found"
    child.ok("create", study=key, **config())
    assert code(child.call("report", study=key, number=0, step=1, value=0.5)) == "not_found"
    assert code(child.call("report", study=key, number=True, step=1, value=0.5)) == "bad_request"
    assert code(child.call("tell", study=key, number=0, state="complete")) == "bad_request"  # no value
    assert code(child.call("fail_running", study=key)) == "bad_request"
    assert child.ok("ping") == {}
    assert child.ok("ask", study=key)["number"] == 0


def test_a_message_outside_the_contract_is_refused(studies: st.Studies, key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """contracts/study-protocol.json is the protocol: the ops answered are its ops, an arg it does
    not list is refused, and a result lacking a key it promises is not sent as a success."""
    contract = json.loads((Path(__file__).resolve().parents[2] / "contracts" / "study-protocol.json").read_text())
    assert set(st.OPS) == set(contract["ops"]) == set(protocol.ARGS)
    assert protocol.CODES == tuple(contract["codes"])
    for op, spec in contract["ops"].items():
        required, props = spec["args"]["required"], spec["args"]["properties"]
        assert protocol.ARGS[op] == (frozenset(required), frozenset(props) - frozenset(required))
        line = json.dumps({"id": 3, "op": op, **{k: None for k in required}, "not_in_contract": 1})
        reply = st.handle(studies, line)
        assert reply["ok"] is False and reply["error"]["code"] == "bad_request", op
        assert reply["error"]["message"] == f"{op}: unknown not_in_contract"
    reply = st.handle(studies, json.dumps({"id": 4, "op": "drop", "study": key}))
    assert reply == st.error(4, "bad_request", "unknown op 'drop'")
    monkeypatch.setitem(st.OPS, "ask", lambda _studies, _args: {"number": 0})  # no params
    reply = st.handle(studies, json.dumps({"id": 5, "op": "ask", "study": key}))
    assert reply == st.error(5, "internal", "ask: the result lacks params")


def test_only_json_lines_on_stdout(redis_url: str, key: str) -> None:
    requests = [
        {"id": 1, "op": "create", "study": key, **config(sampler="tpe")},
        *({"id": 2 + i, "op": "ask", "study": key} for i in range(3)),
        {"id": 5, "op": "report", "study": key, "number": 0, "step": 1, "value": 0.5},
        {"id": 6, "op": "report", "study": key, "number": 0, "step": 1, "value": 0.5},  # warns: not on stdout
        {"id": 7, "op": "summary", "study": key, "importances": True},
    ]
    text = "\n".join(json.dumps(r) for r in requests) + "\n\nnot json\n"
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "makam_study"],
        input=text.encode(), capture_output=True, env={**os.environ, "REDIS_URL": redis_url}, timeout=60,
    )
    assert done.returncode == 0, done.stderr.decode()
    assert time.monotonic() - started < 30
    lines = done.stdout.decode().splitlines()
    replies = [json.loads(line) for line in lines]
    assert [r["id"] for r in replies] == [1, 2, 3, 4, 5, 6, 7, None]
    assert all(r["ok"] for r in replies[:-1])
    assert b"ready" in done.stderr


def test_password_never_printed(redis_url: str, tmp_path: Path, key: str) -> None:
    password = "Pa55-w0rd-never-shown"
    admin = redis.Redis.from_url(redis_url)
    admin.execute_command("ACL", "SETUSER", "makam", "on", f">{password}", "~*", "&*", "+@all")
    try:
        url = redis_url.replace("redis://", f"redis://makam:{password}@")
        good = Child(url, tmp_path / "good.log")
        good.ok("create", study=key, **config())
        good.ok("ask", study=key)
        good.call("ask", study="no-such-study")
        assert good.close() == 0
        wrong = Child(url.replace(password, password + "x"), tmp_path / "wrong.log")
        reply = wrong.call("ask", study=key)
        assert reply["ok"] is False and reply["error"]["code"] == "unavailable"
        assert wrong.ok("ping") == {}
        assert wrong.close() == 0
        port = free_port()
        gone = Child(f"redis://makam:{password}@127.0.0.1:{port}", tmp_path / "gone.log")
        reply = gone.call("create", study=key, **config())
        assert reply["ok"] is False and reply["error"]["code"] == "unavailable"
        assert gone.close() == 0
        for c in (good, wrong, gone):
            printed = b"".join(c.raw) + c.stderr_path.read_bytes()
            assert printed.strip()
            assert password.encode() not in printed
    finally:
        admin.execute_command("ACL", "DELUSER", "makam")
        admin.close()


def test_redaction() -> None:
    secrets = secrets_of("rediss://user:p%40ss%21word@host:6380/0")
    text = "redis rediss://user:p%40ss%21word@host:6380/0 p@ss!word p%40ss%21word"
    redacted = redact(text, secrets)
    assert "p@ss!word" not in redacted and "p%40ss%21word" not in redacted and "host" not in redacted
    assert redacted.startswith("redis ***")
    assert secrets_of("redis://127.0.0.1:6379") == ["redis://127.0.0.1:6379"]


def test_tls_options_from_the_dispatchers_environment() -> None:
    env = {"MAKAM_REDIS_TLS_CA": "/certs/ca.pem", "MAKAM_REDIS_TLS_CERT": "/certs/c.pem", "MAKAM_REDIS_TLS_KEY": "/certs/c.key", "OTHER": "x"}
    assert st.tls_options("rediss://u:p@host:6380/0", env) == {"ssl_ca_certs": "/certs/ca.pem", "ssl_certfile": "/certs/c.pem", "ssl_keyfile": "/certs/c.key"}
    assert st.tls_options("rediss://host:6380", {"MAKAM_REDIS_TLS_CA": "/certs/ca.pem", "MAKAM_REDIS_TLS_KEY": ""}) == {"ssl_ca_certs": "/certs/ca.pem"}
    # A plaintext URL gets none (redis-py's plain connection takes no ssl_* arguments).
    assert st.tls_options("redis://host:6379", env) == {}
