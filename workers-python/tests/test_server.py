"""The worker through a real gRPC channel: a server on port 0, training in real child processes."""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import tarfile
import time
from pathlib import Path

import grpc
import pytest
from google.protobuf import json_format

from conftest import DATASET, DATASET_SHA256, EXAMPLES, LABELS, LONG, QUICK, TINY_BERT, TOKENIZER
from makam.worker.v1 import worker_pb2 as pb
from makam.worker.v1 import worker_pb2_grpc
from makam_worker.server import MAX_RPC_THREADS, create_server

DEADLINE = 60  # seconds: every call has one, so a hung server fails a test instead of the suite
S = pb.RunState


def child_pids(run_dir: Path) -> list[int]:
    """Live training processes of this run dir, found through /proc."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if b"makam_worker.training.child" in cmdline and str(run_dir).encode() in cmdline and state != "Z":
            pids.append(int(proc.name))
    return pids


def pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def start_request(run_id: str, hyperparameters: dict, **overrides) -> pb.StartRunRequest:
    request = pb.StartRunRequest(run_id=run_id, train_dataset_sha256=DATASET_SHA256)
    request.model.family = "encoder"
    request.model.config.update(TINY_BERT)
    request.model.tokenizer.update(TOKENIZER)
    request.hyperparameters.update(hyperparameters)
    for key, value in overrides.items():
        setattr(request, key, value)
    return request


def upload(stub, data: bytes, sha256: str, size: int | None = None, chunk: int = 1000, timeout: float = DEADLINE):
    def messages():
        yield pb.UploadDatasetRequest(header=pb.DatasetHeader(sha256=sha256, size_bytes=len(data) if size is None else size))
        for i in range(0, len(data), chunk):
            yield pb.UploadDatasetRequest(chunk=data[i : i + chunk])

    return stub.UploadDataset(messages(), timeout=timeout)


def fetch_checkpoint(stub, run_id: str) -> tuple[pb.CheckpointHeader, bytes]:
    parts = list(stub.FetchCheckpoint(pb.FetchCheckpointRequest(run_id=run_id), timeout=DEADLINE))
    assert parts[0].WhichOneof("part") == "header" and all(p.WhichOneof("part") == "chunk" for p in parts[1:])
    return parts[0].header, b"".join(p.chunk for p in parts[1:])


def upload_checkpoint(stub, data: bytes, sha256: str, size: int | None = None, epoch: int = 0, step: int = 0,
                      timeout: float = DEADLINE):
    def messages():
        yield pb.UploadCheckpointRequest(header=pb.CheckpointHeader(
            epoch=epoch, step=step, sha256=sha256, size_bytes=len(data) if size is None else size))
        for i in range(0, len(data), 1 << 16):
            yield pb.UploadCheckpointRequest(chunk=data[i : i + (1 << 16)])

    return stub.UploadCheckpoint(messages(), timeout=timeout)


def stub_run_file(worker, run_id: str, name: str) -> str:
    return (worker[1] / "runs" / run_id / name).read_text()


def without_throughput(summary: dict) -> dict:
    return {k: v for k, v in summary.items() if k != "throughput"}


def watch(stub, run_id: str, after_seq: int = 0) -> list[pb.WatchRunResponse]:
    return list(stub.WatchRun(pb.WatchRunRequest(run_id=run_id, after_seq=after_seq), timeout=DEADLINE))


def wait_for(stub, run_id: str, kind: str) -> pb.WatchRunResponse:
    call = stub.WatchRun(pb.WatchRunRequest(run_id=run_id), timeout=DEADLINE)
    try:
        for event in call:
            if event.WhichOneof("event") == kind:
                return event
    finally:
        call.cancel()
    raise AssertionError(f"run {run_id} ended without a {kind} event")


def code_of(call, *args, **kwargs) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as info:
        result = call(*args, timeout=DEADLINE, **kwargs)
        if hasattr(result, "__iter__") and not hasattr(result, "ListFields"):
            list(result)
    return info.value.code()


@pytest.fixture(scope="module")
def worker(tmp_path_factory):
    state_dir = tmp_path_factory.mktemp("state")
    server, port = create_server("127.0.0.1:0", state_dir, cancel_grace_s=3.0)
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    stub = worker_pb2_grpc.WorkerServiceStub(channel)
    upload(stub, DATASET, DATASET_SHA256)
    yield stub, state_dir
    for run_dir in (state_dir / "runs").iterdir():  # no child outlives the tests
        if not run_dir.name.startswith("."):
            stub.CancelRun(pb.CancelRunRequest(run_id=run_dir.name), timeout=DEADLINE)
    channel.close()
    server.stop(0).wait()


@pytest.fixture(scope="module")
def long_runs(worker):
    """Two runs that would take minutes, started together so their imports overlap."""
    stub, state_dir = worker
    for run_id in ("long-cancel", "long-kill"):
        assert stub.StartRun(start_request(run_id, LONG), timeout=DEADLINE).created
    return {run_id: wait_for(stub, run_id, "started").started.pid for run_id in ("long-cancel", "long-kill")}


@pytest.fixture(scope="module")
def finished_run(worker):
    """A quick run to success, started twice at once; returns its events and what the repeat said."""
    stub, state_dir = worker
    first = stub.StartRun(start_request("quick", QUICK), timeout=DEADLINE)
    second = stub.StartRun(start_request("quick", {"epochs": 99}), timeout=DEADLINE)
    processes = child_pids(state_dir / "runs" / "quick")
    events = watch(stub, "quick")
    return {"first": first, "second": second, "processes": processes, "events": events}


def test_capabilities(worker):
    stub, _ = worker
    caps = stub.GetCapabilities(pb.GetCapabilitiesRequest(), timeout=DEADLINE)
    assert caps.device in {"cpu", "cuda"} and list(caps.families) == ["encoder", "decoder", "scratch", "tfidf"]
    assert caps.memory_total_bytes >= caps.memory_free_bytes > 0
    assert {"python", "torch", "transformers", "peft", "sentencepiece", "scikit-learn", "makam_worker"} <= set(caps.versions)
    from makam_worker.training.families.decoder import bitsandbytes_available

    assert ("bitsandbytes" in caps.versions) == bitsandbytes_available()
    assert caps.worker_id.endswith(":" + caps.worker_id.rsplit(":", 1)[1])


def test_upload_with_a_wrong_sha256_or_size_is_refused_and_nothing_stored(worker):
    stub, state_dir = worker
    data = '{"text": "başka", "label": "x"}\n'.encode()
    wrong = hashlib.sha256(b"other bytes").hexdigest()
    assert code_of(upload, stub, data, wrong) == grpc.StatusCode.INVALID_ARGUMENT
    right = hashlib.sha256(data).hexdigest()
    assert code_of(upload, stub, data, right, size=len(data) + 1) == grpc.StatusCode.INVALID_ARGUMENT
    assert code_of(upload, stub, data, "NOT-A-SHA") == grpc.StatusCode.INVALID_ARGUMENT
    stored = {p.name for p in (state_dir / "datasets").iterdir()}
    assert stored == {f"{DATASET_SHA256}.jsonl"}
    assert not stub.HasDataset(pb.HasDatasetRequest(sha256=right), timeout=DEADLINE).present


def test_has_dataset_after_upload(worker):
    stub, state_dir = worker
    assert stub.HasDataset(pb.HasDatasetRequest(sha256=DATASET_SHA256), timeout=DEADLINE).present
    assert (state_dir / "datasets" / f"{DATASET_SHA256}.jsonl").read_bytes() == DATASET


def test_start_run_twice_returns_the_run_and_spawns_one_process(finished_run):
    assert finished_run["first"].created and finished_run["first"].state == S.RUN_STATE_RUNNING
    assert not finished_run["second"].created
    assert len(finished_run["processes"]) == 1
    started = [e for e in finished_run["events"] if e.WhichOneof("event") == "started"]
    assert len(started) == 1 and started[0].started.pid == finished_run["processes"][0]


def test_watch_streams_every_event_then_ends_with_success(finished_run):
    events = finished_run["events"]
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[0].WhichOneof("event") == "started" and list(events[0].started.labels) == LABELS
    kinds = {e.WhichOneof("event") for e in events}
    assert {"started", "progress", "metrics", "finished"} <= kinds
    finished = events[-1].finished
    assert events[-1].WhichOneof("event") == "finished" and finished.state == S.RUN_STATE_SUCCEEDED
    metrics = json_format.MessageToDict(finished.final_metrics)
    assert 0 <= metrics["accuracy"] <= 1 and "majority_baseline_accuracy" in metrics


def test_watch_after_a_cursor_sends_exactly_the_rest(worker, finished_run):
    stub, _ = worker
    events = finished_run["events"]
    k = len(events) // 2
    rest = watch(stub, "quick", after_seq=k)
    assert [e.SerializeToString() for e in rest] == [e.SerializeToString() for e in events[k:]]
    assert watch(stub, "quick", after_seq=len(events)) == []  # past the end of a finished run: ends at once


def test_get_run_of_a_finished_run(worker, finished_run):
    stub, _ = worker
    run = stub.GetRun(pb.GetRunRequest(run_id="quick"), timeout=DEADLINE)
    assert (run.state, run.last_seq) == (S.RUN_STATE_SUCCEEDED, len(finished_run["events"]))
    for _ in range(100):  # the child may still be exiting just after its last event
        if stub.GetRun(pb.GetRunRequest(run_id="quick"), timeout=DEADLINE).pid == 0:
            break
        time.sleep(0.1)
    assert stub.GetRun(pb.GetRunRequest(run_id="quick"), timeout=DEADLINE).pid == 0
    again = stub.StartRun(start_request("quick", QUICK), timeout=DEADLINE)
    assert (again.created, again.state, again.last_seq) == (False, S.RUN_STATE_SUCCEEDED, run.last_seq)


def test_fetch_artifact_bytes_match_both_hashes(worker, finished_run):
    stub, state_dir = worker
    parts = list(stub.FetchArtifact(pb.FetchArtifactRequest(run_id="quick"), timeout=DEADLINE))
    header, chunks = parts[0].header, [p.chunk for p in parts[1:]]
    assert parts[0].WhichOneof("part") == "header" and all(p.WhichOneof("part") == "chunk" for p in parts[1:])
    data = b"".join(chunks)
    assert len(data) == header.size_bytes
    assert hashlib.sha256(data).hexdigest() == header.sha256
    assert (state_dir / "runs" / "quick" / "model.tar.gz.sha256").read_text().strip() == header.sha256
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert {"config.json", "model.safetensors", "labels.json", "metrics.json"} <= set(tar.getnames())


def test_the_child_log_never_carries_dataset_text(worker, finished_run):
    _, state_dir = worker
    log = (state_dir / "runs" / "quick" / "train.log").read_text()
    assert "run_id=quick" in log
    assert not any(e["text"] in log for e in EXAMPLES)


def test_watchers_that_go_away_free_their_threads(worker, long_runs):
    stub, _ = worker
    for _ in range(MAX_RPC_THREADS + 8):  # a handler stuck after its client left would starve the pool
        call = stub.WatchRun(pb.WatchRunRequest(run_id="long-kill"), timeout=10)
        assert next(call).WhichOneof("event") == "started"
        call.cancel()
    assert stub.GetRun(pb.GetRunRequest(run_id="long-kill"), timeout=10).state == S.RUN_STATE_RUNNING


def test_cancel_stops_the_process_within_seconds(worker, long_runs):
    stub, state_dir = worker
    pid = long_runs["long-cancel"]
    assert stub.GetRun(pb.GetRunRequest(run_id="long-cancel"), timeout=DEADLINE).pid == pid
    assert code_of(stub.DeleteRun, pb.DeleteRunRequest(run_id="long-cancel")) == grpc.StatusCode.FAILED_PRECONDITION
    assert code_of(stub.FetchArtifact, pb.FetchArtifactRequest(run_id="long-cancel")) == grpc.StatusCode.FAILED_PRECONDITION

    began = time.monotonic()
    state = stub.CancelRun(pb.CancelRunRequest(run_id="long-cancel"), timeout=DEADLINE).state
    assert state == S.RUN_STATE_CANCELLED and time.monotonic() - began < 5
    assert pid_gone(pid) and child_pids(state_dir / "runs" / "long-cancel") == []
    assert stub.GetRun(pb.GetRunRequest(run_id="long-cancel"), timeout=DEADLINE).pid == 0

    events = watch(stub, "long-cancel")
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    finished = events[-1].finished
    assert (finished.state, finished.error_code, finished.retryable) == (S.RUN_STATE_CANCELLED, "cancelled", False)
    again = stub.CancelRun(pb.CancelRunRequest(run_id="long-cancel"), timeout=DEADLINE)
    assert again.state == S.RUN_STATE_CANCELLED and len(watch(stub, "long-cancel")) == len(events)

    assert stub.DeleteRun(pb.DeleteRunRequest(run_id="long-cancel"), timeout=DEADLINE).deleted
    assert not (state_dir / "runs" / "long-cancel").exists()
    assert code_of(stub.GetRun, pb.GetRunRequest(run_id="long-cancel")) == grpc.StatusCode.NOT_FOUND


def test_a_killed_child_is_recorded_as_a_retryable_crash(worker, long_runs):
    stub, _ = worker
    os.kill(long_runs["long-kill"], signal.SIGKILL)
    finished = watch(stub, "long-kill")[-1].finished
    assert (finished.state, finished.error_code, finished.retryable) == (S.RUN_STATE_FAILED, "worker_crashed", True)
    assert "SIGKILL" in finished.error_message
    assert code_of(stub.FetchArtifact, pb.FetchArtifactRequest(run_id="long-kill")) == grpc.StatusCode.FAILED_PRECONDITION


@pytest.mark.parametrize("run_id", ["../etc", "a/b", "", "x" * 129, "run.1"])
def test_invalid_run_ids_are_refused_before_touching_a_path(worker, run_id):
    stub, _ = worker
    assert code_of(stub.StartRun, start_request(run_id, QUICK)) == grpc.StatusCode.INVALID_ARGUMENT
    assert code_of(stub.GetRun, pb.GetRunRequest(run_id=run_id)) == grpc.StatusCode.INVALID_ARGUMENT
    assert code_of(stub.DeleteRun, pb.DeleteRunRequest(run_id=run_id)) == grpc.StatusCode.INVALID_ARGUMENT


def test_unknown_runs_are_not_found(worker):
    stub, _ = worker
    assert code_of(stub.GetRun, pb.GetRunRequest(run_id="nope")) == grpc.StatusCode.NOT_FOUND
    assert code_of(stub.WatchRun, pb.WatchRunRequest(run_id="nope")) == grpc.StatusCode.NOT_FOUND
    assert code_of(stub.CancelRun, pb.CancelRunRequest(run_id="nope")) == grpc.StatusCode.NOT_FOUND
    assert code_of(stub.FetchArtifact, pb.FetchArtifactRequest(run_id="nope")) == grpc.StatusCode.NOT_FOUND
    assert code_of(stub.FetchCheckpoint, pb.FetchCheckpointRequest(run_id="nope")) == grpc.StatusCode.NOT_FOUND
    assert not stub.DeleteRun(pb.DeleteRunRequest(run_id="nope"), timeout=DEADLINE).deleted


def test_start_run_refusals(worker):
    stub, state_dir = worker
    missing = start_request("no-data", QUICK, train_dataset_sha256="0" * 64)
    assert code_of(stub.StartRun, missing) == grpc.StatusCode.FAILED_PRECONDITION
    family = start_request("bad-family", QUICK)
    family.model.family = "rnn"
    assert code_of(stub.StartRun, family) == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as info:
        stub.StartRun(start_request("bad-hp", {"epochs": 2.5}), timeout=DEADLINE)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "epochs" in info.value.details()
    assert not any((state_dir / "runs" / name).exists() for name in ("no-data", "bad-family", "bad-hp"))


def test_start_run_refusals_of_the_families(worker):
    stub, state_dir = worker
    misapplied = start_request("misapplied", {"lora_r": 8})
    with pytest.raises(grpc.RpcError) as info:
        stub.StartRun(misapplied, timeout=DEADLINE)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "'lora_r' applies to the decoder family, not encoder" in info.value.details()
    scratch = start_request("scratch-with-config", {})
    scratch.model.family = "scratch"  # it still carries the BERT config: scratch takes none
    assert code_of(stub.StartRun, scratch) == grpc.StatusCode.INVALID_ARGUMENT
    no_test = start_request("no-test", QUICK, test_dataset_sha256="1" * 64)
    assert code_of(stub.StartRun, no_test) == grpc.StatusCode.FAILED_PRECONDITION
    assert not any((state_dir / "runs" / name).exists() for name in ("misapplied", "scratch-with-config", "no-test"))


def test_a_tfidf_run_with_a_test_dataset_reports_the_test_split(worker):
    stub, _ = worker
    from conftest import jsonl

    test = jsonl([{"text": e["text"] + " yine", "label": e["label"]} for e in EXAMPLES[::4]])
    test_sha256 = hashlib.sha256(test).hexdigest()
    upload(stub, test, test_sha256)
    request = pb.StartRunRequest(run_id="tfidf", train_dataset_sha256=DATASET_SHA256, test_dataset_sha256=test_sha256)
    request.model.family = "tfidf"
    request.hyperparameters.update({"validation_fraction": 0.25, "seed": 3})
    assert stub.StartRun(request, timeout=DEADLINE).created
    events = watch(stub, "tfidf")
    started, finished = events[0].started, events[-1].finished
    assert (started.train_examples, started.validation_examples, started.test_examples) == (54, 18, 18)
    assert finished.state == S.RUN_STATE_SUCCEEDED, finished.error_message
    metrics = json_format.MessageToDict(finished.final_metrics)
    assert metrics["evaluated_on"] == "test" and metrics["test"]["examples"] == 18
    assert metrics["test"]["confusion_matrix"]["labels"] == LABELS and metrics["accuracy"] > 0.6
    parts = list(stub.FetchArtifact(pb.FetchArtifactRequest(run_id="tfidf"), timeout=DEADLINE))
    with tarfile.open(fileobj=io.BytesIO(b"".join(p.chunk for p in parts[1:]))) as tar:
        assert {"model.joblib", "labels.json", "metrics.json", "README.md", "textprep.py"} <= set(tar.getnames())
    # tfidf has no epochs and saves no checkpoint.
    assert not [e for e in events if e.WhichOneof("event") == "checkpoint"]
    assert code_of(stub.FetchCheckpoint, pb.FetchCheckpointRequest(run_id="tfidf")) == grpc.StatusCode.NOT_FOUND


def test_fetch_checkpoint_sends_the_last_epochs_file(worker, finished_run):
    stub, state_dir = worker
    header, data = fetch_checkpoint(stub, "quick")
    started = finished_run["events"][0].started
    checkpoints = [e.checkpoint for e in finished_run["events"] if e.WhichOneof("event") == "checkpoint"]
    assert [c.epoch for c in checkpoints] == [1, 2, 3] and started.resumed_from_epoch == 0
    assert (header.epoch, header.step) == (3, started.total_steps) == (checkpoints[-1].epoch, checkpoints[-1].step)
    assert len(data) == header.size_bytes and hashlib.sha256(data).hexdigest() == header.sha256
    assert (state_dir / "runs" / "quick" / "checkpoint.tar").read_bytes() == data
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert tar.getnames()[:2] == ["meta.json", "state.pt"]


def test_upload_checkpoint_stores_it_under_its_sha256_and_refuses_a_mismatch(worker, finished_run):
    stub, state_dir = worker
    header, data = fetch_checkpoint(stub, "quick")
    store = state_dir / "checkpoints"
    wrong = hashlib.sha256(b"other bytes").hexdigest()
    assert code_of(upload_checkpoint, stub, data, wrong) == grpc.StatusCode.INVALID_ARGUMENT
    assert code_of(upload_checkpoint, stub, data, header.sha256, size=len(data) - 1) == grpc.StatusCode.INVALID_ARGUMENT
    junk = b"not a checkpoint" * 64
    assert code_of(upload_checkpoint, stub, junk, hashlib.sha256(junk).hexdigest()) == grpc.StatusCode.INVALID_ARGUMENT
    assert list(store.iterdir()) == []  # nothing stored, no temp file left

    response = upload_checkpoint(stub, data, header.sha256, epoch=header.epoch, step=header.step)
    assert response.sha256 == header.sha256
    assert (store / f"{header.sha256}.tar").read_bytes() == data


def test_resume_from_a_checkpoint_not_on_the_worker_is_refused(worker):
    stub, state_dir = worker
    missing = start_request("resume-missing", QUICK, resume_checkpoint_sha256="2" * 64)
    with pytest.raises(grpc.RpcError) as info:
        stub.StartRun(missing, timeout=DEADLINE)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "upload it first" in info.value.details()
    bad = start_request("resume-bad", QUICK, resume_checkpoint_sha256="NOT-A-SHA")
    assert code_of(stub.StartRun, bad) == grpc.StatusCode.INVALID_ARGUMENT
    assert not any((state_dir / "runs" / name).exists() for name in ("resume-missing", "resume-bad"))


def test_a_run_resumed_from_its_last_epoch_only_evaluates_and_exports(worker, finished_run):
    """The uploaded checkpoint of the quick run's epoch 3 of 3: the new run trains no more and ends
    with the quick run's figures, its best epoch's weights restored from the checkpoint."""
    stub, state_dir = worker
    header, data = fetch_checkpoint(stub, "quick")
    upload_checkpoint(stub, data, header.sha256, epoch=header.epoch, step=header.step)
    assert stub.StartRun(start_request("resumed-at-end", QUICK, resume_checkpoint_sha256=header.sha256),
                         timeout=DEADLINE).created
    # The run took the upload: the store no longer holds it, the run dir does.
    assert not (state_dir / "checkpoints" / f"{header.sha256}.tar").exists()
    assert (state_dir / "runs" / "resumed-at-end" / "resume.tar").read_bytes() == data
    events = watch(stub, "resumed-at-end")
    kinds = [e.WhichOneof("event") for e in events]
    assert "progress" not in kinds and "metrics" not in kinds and "checkpoint" not in kinds
    started, finished = events[0].started, events[-1].finished
    assert (started.resumed_from_epoch, started.total_steps) == (3, finished_run["events"][0].started.total_steps)
    assert finished.state == S.RUN_STATE_SUCCEEDED, finished.error_message
    assert without_throughput(json_format.MessageToDict(finished.final_metrics)) == without_throughput(
        json_format.MessageToDict(finished_run["events"][-1].finished.final_metrics))


def test_a_killed_run_resumes_from_its_fetched_checkpoint_as_the_dispatcher_retries_it(worker):
    """SIGKILL after the first checkpoint; then what the dispatcher does: fetch the last checkpoint,
    upload it, StartRun (the failed run is still there), DeleteRun, StartRun again with the resume.
    (test_checkpoint.py shows that a resumed run ends bit for bit as an uninterrupted one.)"""
    stub, _ = worker
    hyperparameters = {**QUICK, "epochs": 12}  # epochs of ~0.1 s: time to kill it in the middle
    assert stub.StartRun(start_request("crash", hyperparameters), timeout=DEADLINE).created
    pid = wait_for(stub, "crash", "started").started.pid
    wait_for(stub, "crash", "checkpoint")
    os.kill(pid, signal.SIGKILL)
    first = watch(stub, "crash")
    assert (first[-1].finished.error_code, first[-1].finished.retryable) == ("worker_crashed", True)
    header, data = fetch_checkpoint(stub, "crash")
    done = [e.checkpoint.epoch for e in first if e.WhichOneof("event") == "checkpoint"]
    # The file of the last checkpoint event, or a newer one when the kill fell between its rename and its event.
    assert done[-1] <= header.epoch <= done[-1] + 1 < hyperparameters["epochs"]

    upload_checkpoint(stub, data, header.sha256, epoch=header.epoch, step=header.step)
    retry = start_request("crash", hyperparameters, resume_checkpoint_sha256=header.sha256)
    assert not stub.StartRun(retry, timeout=DEADLINE).created
    assert stub.DeleteRun(pb.DeleteRunRequest(run_id="crash"), timeout=DEADLINE).deleted
    assert stub.StartRun(retry, timeout=DEADLINE).created
    events = watch(stub, "crash")
    started = events[0].started
    assert started.resumed_from_epoch == header.epoch and started.total_steps == first[0].started.total_steps
    metrics = [e.metrics for e in events if e.WhichOneof("event") == "metrics"]
    assert [m.epoch for m in metrics] == list(range(header.epoch + 1, hyperparameters["epochs"] + 1))
    progress = [e.progress for e in events if e.WhichOneof("event") == "progress"]
    assert progress and progress[0].step > header.step and progress[-1].step == started.total_steps
    finished = events[-1].finished
    assert finished.state == S.RUN_STATE_SUCCEEDED, finished.error_message
    # Every epoch once in the final history: those before the kill as the first attempt reported them.
    summary = json_format.MessageToDict(finished.final_metrics)
    assert summary["epochs_trained"] == hyperparameters["epochs"]
    before = [json_format.MessageToDict(e.metrics, preserving_proto_field_name=True)
              for e in first if e.WhichOneof("event") == "metrics"][: header.epoch]
    history = json.loads(stub_run_file(worker, "crash", "model/metrics.json"))["history"]
    assert [row["epoch"] for row in history] == list(range(1, hyperparameters["epochs"] + 1))
    assert [row["validation_loss"] for row in history[: header.epoch]] == [m["validation_loss"] for m in before]


def test_a_restarted_server_records_orphaned_runs_as_crashed(tmp_path):
    run_dir = tmp_path / "runs" / "orphan"
    run_dir.mkdir(parents=True)
    (run_dir / "spec.json").write_text("{}")
    (run_dir / "events.jsonl").write_text('{"seq":1,"time_unix_ms":1,"type":"started","pid":1}\n')
    (run_dir / "pid").write_text("999999999\n")  # no such process
    server, port = create_server("127.0.0.1:0", tmp_path)
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = worker_pb2_grpc.WorkerServiceStub(channel)
            events = watch(stub, "orphan")
            assert [e.seq for e in events] == [1, 2]
            finished = events[-1].finished
            assert (finished.state, finished.error_code, finished.retryable) == (S.RUN_STATE_FAILED, "worker_crashed", True)
    finally:
        server.stop(0).wait()
