"""The worker's gRPC port and disk against a hostile client: announced sizes, the free disk, the
dataset cache, runs nobody deletes, oversized requests, and a port opened beyond loopback without
client authentication. Real servers on real ports; the start-up refusal is a real process."""

from __future__ import annotations

import hashlib
import io
import json
import os
import socket
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import grpc
import pytest

from conftest import DATASET, DATASET_SHA256, LONG, TINY_BERT, TOKENIZER, jsonl
from makam.worker.v1 import worker_pb2 as pb
from makam.worker.v1 import worker_pb2_grpc
from makam_worker.server import create_server
from makam_worker.settings import Limits, is_loopback, limits_from_env

DEADLINE = 30
WORKER = [sys.executable, "-m", "makam_worker"]


def serve(state_dir: Path, limits: Limits):
    server, port = create_server("127.0.0.1:0", state_dir, cancel_grace_s=2.0, limits=limits)
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    return server, channel, worker_pb2_grpc.WorkerServiceStub(channel)


@pytest.fixture
def worker(tmp_path, request):
    limits = getattr(request, "param", Limits())
    state_dir = tmp_path / "state"
    server, channel, stub = serve(state_dir, limits)
    yield stub, state_dir
    for run_dir in (state_dir / "runs").iterdir():  # no child outlives a test
        if not run_dir.name.startswith("."):
            try:
                stub.CancelRun(pb.CancelRunRequest(run_id=run_dir.name), timeout=DEADLINE)
            except grpc.RpcError:
                pass
    channel.close()
    server.stop(0).wait()


def stalled_upload(stub, rpc: str, header, held: threading.Event):
    """An upload whose client sends the header and then nothing until `held` is set: a server that
    waits for the bytes before judging the header hangs here until the deadline."""
    request = pb.UploadDatasetRequest if rpc == "UploadDataset" else pb.UploadCheckpointRequest

    def messages():
        yield request(header=header)
        held.wait(DEADLINE)

    began = time.monotonic()
    with pytest.raises(grpc.RpcError) as info:
        getattr(stub, rpc)(messages(), timeout=8)
    held.set()
    return info.value, time.monotonic() - began


def upload(stub, data: bytes):
    sha256 = hashlib.sha256(data).hexdigest()
    stub.UploadDataset(iter([pb.UploadDatasetRequest(header=pb.DatasetHeader(sha256=sha256, size_bytes=len(data))),
                             pb.UploadDatasetRequest(chunk=data)]), timeout=DEADLINE)
    return sha256


def has(stub, sha256: str) -> bool:
    return stub.HasDataset(pb.HasDatasetRequest(sha256=sha256), timeout=DEADLINE).present


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def start_request(run_id: str, train_sha256: str = DATASET_SHA256, hyperparameters: dict | None = None) -> pb.StartRunRequest:
    request = pb.StartRunRequest(run_id=run_id, train_dataset_sha256=train_sha256)
    request.model.family = "encoder"
    request.model.config.update(TINY_BERT)
    request.model.tokenizer.update(TOKENIZER)
    request.hyperparameters.update(hyperparameters or LONG)
    return request


# 1. Announced sizes and the disk: judged on the header, before a byte is read.

@pytest.mark.parametrize("rpc, header, setting", [
    ("UploadDataset", pb.DatasetHeader(sha256="a" * 64, size_bytes=2**63), "MAKAM_WORKER_MAX_DATASET_BYTES"),
    ("UploadCheckpoint", pb.CheckpointHeader(sha256="b" * 64, size_bytes=2**63), "MAKAM_WORKER_MAX_CHECKPOINT_BYTES"),
])
def test_a_2_63_byte_announcement_is_refused_on_its_header(worker, rpc, header, setting):
    stub, state_dir = worker
    error, took = stalled_upload(stub, rpc, header, threading.Event())
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert setting in error.details() and str(2**63) in error.details()
    assert took < 5, f"answered after {took:.1f}s: the server waited for bytes before judging the header"
    assert leftovers(state_dir / "datasets") == [] and leftovers(state_dir / "checkpoints") == []


@pytest.mark.parametrize("worker", [Limits(max_dataset_bytes=1000, dataset_cache_bytes=10_000)], indirect=True)
def test_the_limit_is_a_setting_and_bytes_past_the_announced_size_are_refused(worker):
    stub, state_dir = worker
    small = jsonl([{"text": "x", "label": "a"}] * 10)
    assert upload(stub, small) and has(stub, hashlib.sha256(small).hexdigest())
    error, _ = stalled_upload(stub, "UploadDataset", pb.DatasetHeader(sha256="c" * 64, size_bytes=1001), threading.Event())
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "1000" in error.details()
    # within the limit as announced, then more bytes than announced: refused, nothing kept
    liar = b"y" * 900
    with pytest.raises(grpc.RpcError) as info:
        stub.UploadDataset(iter([pb.UploadDatasetRequest(header=pb.DatasetHeader(sha256=hashlib.sha256(liar).hexdigest(), size_bytes=100)),
                                 pb.UploadDatasetRequest(chunk=liar)]), timeout=DEADLINE)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "more than the 100 bytes" in info.value.details()
    assert leftovers(state_dir / "datasets") == [f"{hashlib.sha256(small).hexdigest()}.jsonl"]


@pytest.mark.parametrize("worker", [Limits(min_free_bytes=2**62)], indirect=True)
def test_an_upload_the_free_disk_cannot_hold_is_refused_on_its_header(worker):
    stub, state_dir = worker
    error, took = stalled_upload(stub, "UploadDataset", pb.DatasetHeader(sha256=DATASET_SHA256, size_bytes=len(DATASET)),
                                 threading.Event())
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error.details()
    assert "MAKAM_WORKER_MIN_FREE_BYTES" in error.details() and took < 5
    assert leftovers(state_dir / "datasets") == []


# 2. The disk stays bounded: the dataset cache, runs nobody deleted, checkpoints nobody used.

@pytest.mark.parametrize("worker", [Limits(max_dataset_bytes=len(DATASET), dataset_cache_bytes=len(DATASET) * 5 // 2)],
                         indirect=True)
def test_datasets_are_an_lru_cache_that_never_evicts_a_running_runs_data(worker):
    stub, state_dir = worker
    # Same size as DATASET, different bytes: each upload is one more of the same size.
    variants = [DATASET] + [DATASET[:-2] + f"{i}\n".encode() for i in range(3)]
    a, b, c, d = [hashlib.sha256(v).hexdigest() for v in variants]
    upload(stub, variants[0])
    upload(stub, variants[1])
    os.utime(state_dir / "datasets" / f"{a}.jsonl", (1, 1))  # a is the older...
    assert has(stub, a)  # ...but HasDataset means it is about to be used: b becomes the least recent
    upload(stub, variants[2])
    assert (has(stub, a), has(stub, b), has(stub, c)) == (True, False, True)
    assert len(leftovers(state_dir / "datasets")) == 2

    # a run in progress keeps its dataset, however old; with nothing else to evict, an upload waits its turn
    assert stub.StartRun(start_request("holds-a", a), timeout=DEADLINE).created
    os.utime(state_dir / "datasets" / f"{a}.jsonl", (1, 1))
    upload(stub, variants[3])
    assert (has(stub, a), has(stub, c), has(stub, d)) == (True, False, True)
    assert stub.StartRun(start_request("holds-d", d), timeout=DEADLINE).created
    with pytest.raises(grpc.RpcError) as info:
        upload(stub, variants[1])
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "MAKAM_WORKER_DATASET_CACHE_BYTES" in info.value.details()
    stub.CancelRun(pb.CancelRunRequest(run_id="holds-a"), timeout=DEADLINE)
    upload(stub, variants[1])  # a is free to go now
    assert has(stub, b)


def checkpoint_bytes() -> bytes:
    meta = json.dumps({"format": 1, "epoch": 1, "step": 1}).encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("meta.json")
        info.size = len(meta)
        tar.addfile(info, io.BytesIO(meta))
    return buf.getvalue()


@pytest.mark.parametrize("worker", [Limits(run_retention_s=1.0)], indirect=True)
def test_finished_runs_nobody_deleted_and_unused_checkpoints_go_after_the_retention_time(worker):
    stub, state_dir = worker
    upload(stub, DATASET)
    # a failed run (a dataset of one label fails as bad input) and a cancelled one, neither fetched nor deleted
    one_label = jsonl([{"text": f"metin {i}", "label": "tek"} for i in range(20)])
    assert stub.StartRun(start_request("failed", upload(stub, one_label)), timeout=DEADLINE).created
    # watched to its end as a dispatcher does: the run is there until it has been finished that long
    events = list(stub.WatchRun(pb.WatchRunRequest(run_id="failed"), timeout=120))
    assert events[-1].finished.state == pb.RunState.RUN_STATE_FAILED
    assert stub.StartRun(start_request("cancelled"), timeout=DEADLINE).created
    assert stub.CancelRun(pb.CancelRunRequest(run_id="cancelled"), timeout=DEADLINE).state == pb.RunState.RUN_STATE_CANCELLED
    cp = checkpoint_bytes()
    stub.UploadCheckpoint(iter([pb.UploadCheckpointRequest(header=pb.CheckpointHeader(sha256=hashlib.sha256(cp).hexdigest(), size_bytes=len(cp))),
                                pb.UploadCheckpointRequest(chunk=cp)]), timeout=DEADLINE)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and (leftovers(state_dir / "runs") or leftovers(state_dir / "checkpoints")):
        time.sleep(0.2)
    assert leftovers(state_dir / "runs") == [] and leftovers(state_dir / "checkpoints") == []
    for run_id in ("failed", "cancelled"):
        with pytest.raises(grpc.RpcError) as info:
            stub.GetRun(pb.GetRunRequest(run_id=run_id), timeout=DEADLINE)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_delete_run_removes_a_cancelled_run_as_the_dispatcher_ends_it(worker):
    stub, state_dir = worker
    upload(stub, DATASET)
    assert stub.StartRun(start_request("to-delete"), timeout=DEADLINE).created
    with pytest.raises(grpc.RpcError) as info:  # never under a live process
        stub.DeleteRun(pb.DeleteRunRequest(run_id="to-delete"), timeout=DEADLINE)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    stub.CancelRun(pb.CancelRunRequest(run_id="to-delete"), timeout=DEADLINE)
    assert stub.DeleteRun(pb.DeleteRunRequest(run_id="to-delete"), timeout=DEADLINE).deleted
    assert leftovers(state_dir / "runs") == []


# 3. Request fields: run ids never become paths outside the state dir; specs and names are bounded.

@pytest.mark.parametrize("run_id", ["../escape", "..", "a/b", "/etc", "x" * 129, "", "run\n", "run.1", "ü"])
def test_a_run_id_never_reaches_a_path(worker, run_id):
    stub, state_dir = worker
    calls = [
        (stub.StartRun, start_request(run_id)),
        (stub.GetRun, pb.GetRunRequest(run_id=run_id)),
        (stub.CancelRun, pb.CancelRunRequest(run_id=run_id)),
        (stub.DeleteRun, pb.DeleteRunRequest(run_id=run_id)),
        (stub.WatchRun, pb.WatchRunRequest(run_id=run_id)),
        (stub.FetchArtifact, pb.FetchArtifactRequest(run_id=run_id)),
        (stub.FetchCheckpoint, pb.FetchCheckpointRequest(run_id=run_id)),
    ]
    for call, request in calls:
        with pytest.raises(grpc.RpcError) as info:
            result = call(request, timeout=DEADLINE)
            if not hasattr(result, "ListFields"):
                list(result)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (call, info.value.details())
    assert leftovers(state_dir / "runs") == [] and leftovers(state_dir.parent) == ["state"]


def test_an_oversized_spec_or_model_name_is_refused_before_a_run_exists(worker):
    stub, state_dir = worker
    upload(stub, DATASET)
    padded = start_request("padded")
    padded.model.config.update({"padding": "x" * (9 << 20)})
    named = start_request("named")
    named.model.ClearField("config")
    named.model.name = "m" * 5000
    for request, words in ((padded, "bytes"), (named, "model.name")):
        with pytest.raises(grpc.RpcError) as info:
            stub.StartRun(request, timeout=DEADLINE)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and words in info.value.details()
    assert leftovers(state_dir / "runs") == []


# 1 and 4. The port: never open beyond loopback without client authentication unless told so, loudly.

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_worker(tmp_path: Path, listen: str, **env: str) -> subprocess.Popen[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MAKAM_WORKER_", "MAKAM_GRPC_"))}
    return subprocess.Popen([*WORKER, "--listen", listen, "--state-dir", str(tmp_path / "state")],
                            env={**clean, **env}, stderr=subprocess.PIPE, text=True)


def test_a_worker_beyond_loopback_without_mtls_refuses_to_start(tmp_path):
    port = free_port()
    proc = run_worker(tmp_path, f"0.0.0.0:{port}")
    try:
        assert proc.wait(timeout=30) == 2
    finally:
        if proc.poll() is None:
            proc.kill()
    stderr = proc.stderr.read()
    assert f"refusing to listen on 0.0.0.0:{port} without client authentication" in stderr
    assert "MAKAM_WORKER_TLS_CLIENT_CA" in stderr and "MAKAM_WORKER_ALLOW_INSECURE" in stderr


def test_the_explicit_opt_in_starts_it_with_a_warning_naming_address_and_fix(tmp_path):
    port = free_port()
    proc = run_worker(tmp_path, f"0.0.0.0:{port}", MAKAM_WORKER_ALLOW_INSECURE="1")
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=30)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    warning = next(line for line in proc.stderr.read().splitlines() if " WARNING " in line)
    assert f"INSECURE: listening on 0.0.0.0:{port} without client authentication" in warning
    assert "MAKAM_WORKER_TLS_CLIENT_CA" in warning


def test_bad_settings_stop_the_worker_naming_the_variable(tmp_path):
    for env, words in (({"MAKAM_WORKER_MAX_DATASET_BYTES": "lots"}, "MAKAM_WORKER_MAX_DATASET_BYTES"),
                       ({"MAKAM_WORKER_RUN_RETENTION_S": "-1"}, "MAKAM_WORKER_RUN_RETENTION_S"),
                       ({"MAKAM_WORKER_ALLOW_INSECURE": "maybe"}, "MAKAM_WORKER_ALLOW_INSECURE"),
                       ({"MAKAM_WORKER_TLS_CERT": str(tmp_path / "none.crt"), "MAKAM_WORKER_TLS_KEY": str(tmp_path / "none.key"),
                         "MAKAM_WORKER_TLS_CLIENT_CA": str(tmp_path / "none.ca")}, "MAKAM_WORKER_TLS_CLIENT_CA: cannot read")):
        proc = run_worker(tmp_path, f"127.0.0.1:{free_port()}", **env)
        assert proc.wait(timeout=30) == 2, env
        assert words in proc.stderr.read()


def test_settings_defaults_and_loopback():
    limits = limits_from_env({})
    assert limits == Limits() and limits.max_dataset_bytes <= limits.dataset_cache_bytes
    with pytest.raises(ValueError, match="MAKAM_WORKER_DATASET_CACHE_BYTES"):
        limits_from_env({"MAKAM_WORKER_MAX_DATASET_BYTES": "10", "MAKAM_WORKER_DATASET_CACHE_BYTES": "5"})
    for address in ("127.0.0.1:50051", "[::1]:50051", "localhost:1", "127.3.2.1:9", "unix:/run/w.sock"):
        assert is_loopback(address), address
    for address in ("0.0.0.0:50051", "[::]:50051", "10.0.0.5:50051", "worker-bert:50051", ":50051"):
        assert not is_loopback(address), address
