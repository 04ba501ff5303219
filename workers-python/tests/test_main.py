"""The worker as a process: `python -m makam_worker`, configured by flags and env, stopped by SIGTERM."""

import os
import signal
import socket
import subprocess
import sys
import time

import grpc

from conftest import DATASET, DATASET_SHA256, QUICK, TINY_BERT
from makam.worker.v1 import worker_pb2 as pb
from makam.worker.v1 import worker_pb2_grpc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sigterm_stops_the_worker_and_ends_its_runs(tmp_path):
    port = free_port()
    env = {**os.environ, "MAKAM_WORKER_STATE_DIR": str(tmp_path), "MAKAM_WORKER_ID": "test-worker"}
    proc = subprocess.Popen([sys.executable, "-m", "makam_worker", "--listen", f"127.0.0.1:{port}"],
                            env=env, stderr=subprocess.PIPE, text=True)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=30)
            stub = worker_pb2_grpc.WorkerServiceStub(channel)
            assert stub.GetCapabilities(pb.GetCapabilitiesRequest(), timeout=60).worker_id == "test-worker"
            stub.UploadDataset(iter([pb.UploadDatasetRequest(header=pb.DatasetHeader(sha256=DATASET_SHA256,
                                                                                      size_bytes=len(DATASET))),
                                     pb.UploadDatasetRequest(chunk=DATASET)]), timeout=60)
            request = pb.StartRunRequest(run_id="stopped", train_dataset_sha256=DATASET_SHA256)
            request.model.family = "encoder"
            request.model.config.update(TINY_BERT)
            request.hyperparameters.update({**QUICK, "epochs": 1000})
            assert stub.StartRun(request, timeout=60).created
        began = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert time.monotonic() - began < 15
    finally:
        if proc.poll() is None:
            proc.kill()
        stderr = proc.stderr.read()
    assert "run_id=stopped" in stderr and "stopping" in stderr
    last = (tmp_path / "runs" / "stopped" / "events.jsonl").read_text().splitlines()[-1]
    assert '"error_code":"worker_stopped"' in last and '"retryable":true' in last
    pid = int((tmp_path / "runs" / "stopped" / "pid").read_text())
    try:
        os.kill(pid, 0)
        raise AssertionError(f"training process {pid} outlived the worker")
    except ProcessLookupError:
        pass
