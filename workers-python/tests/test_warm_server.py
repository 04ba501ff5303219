"""The warm training process inside the real worker (`python -m makam_worker`): started in the
background by the server, runs forked from it once it is ready, none with MAKAM_WORKER_WARM=0, and a
SIGTERM to the worker still ends a forked run as FAILED/worker_stopped."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest

from conftest import DATASET, DATASET_SHA256, LONG, TINY_BERT, TOKENIZER
from makam.worker.v1 import worker_pb2 as pb
from makam.worker.v1 import worker_pb2_grpc

HANG_GUARD_S = 600  # only so a broken worker fails the test instead of hanging the suite


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def first_event(stub, run_id: str, kind: str) -> pb.WatchRunResponse:
    call = stub.WatchRun(pb.WatchRunRequest(run_id=run_id), timeout=HANG_GUARD_S)
    try:
        for event in call:
            if event.WhichOneof("event") in (kind, "finished"):
                return event
    finally:
        call.cancel()
    raise AssertionError(f"no {kind} event")


@pytest.mark.parametrize("warm", [True, False])
def test_the_worker_forks_runs_from_its_warm_process_and_a_sigterm_still_ends_them(tmp_path, warm):
    port, log_path = free_port(), tmp_path / "worker.log"
    env = {**os.environ, "MAKAM_WORKER_WARM": "1" if warm else "0"}
    with log_path.open("w") as log:
        worker = subprocess.Popen([sys.executable, "-m", "makam_worker", "--listen", f"127.0.0.1:{port}",
                                   "--state-dir", str(tmp_path / "state")], env=env, stderr=log)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=HANG_GUARD_S)
            stub = worker_pb2_grpc.WorkerServiceStub(channel)
            stub.UploadDataset(iter([pb.UploadDatasetRequest(header=pb.DatasetHeader(
                sha256=DATASET_SHA256, size_bytes=len(DATASET))), pb.UploadDatasetRequest(chunk=DATASET)]),
                timeout=HANG_GUARD_S)
            if warm:  # the server answered before its warm process was ready; wait for it now
                deadline = time.monotonic() + HANG_GUARD_S
                while " ready in " not in log_path.read_text() and time.monotonic() < deadline:
                    time.sleep(0.1)
                assert " ready in " in log_path.read_text()
            request = pb.StartRunRequest(run_id="long", train_dataset_sha256=DATASET_SHA256)
            request.model.family = "encoder"
            request.model.config.update(TINY_BERT)
            request.model.tokenizer.update(TOKENIZER)
            request.hyperparameters.update(LONG)
            assert stub.StartRun(request, timeout=HANG_GUARD_S).created
            started = first_event(stub, "long", "started")
            pid = started.started.pid
            assert pid, started
            # Forked: its parent is the warm process, not the worker; spawned: the worker. Its own group either way.
            assert (parent_of(pid) != worker.pid) == warm
            assert os.getpgid(pid) == pid
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=HANG_GUARD_S) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    last = (tmp_path / "state" / "runs" / "long" / "events.jsonl").read_text().splitlines()[-1]
    assert '"error_code":"worker_stopped"' in last and '"retryable":true' in last
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the run did not outlive the worker
