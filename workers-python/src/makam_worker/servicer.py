"""WorkerService: the gRPC face of the dataset store and the run manager."""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc

from makam.worker.v1 import worker_pb2, worker_pb2_grpc
from makam_worker import logs
from makam_worker.capabilities import FAMILIES, MODEL_FREE, capabilities, offered_devices
from makam_worker.member_store import MemberStore
from makam_worker.checkpoint_store import CheckpointStore, open_latest
from makam_worker.convert import event_to_proto, spec_from_request, state_to_proto
from makam_worker.datasets import DatasetStore, check_sha256
from makam_worker.request_errors import FailedPrecondition, InvalidArgument, NotFound, WorkerError
from makam_worker.events import EventTail
from makam_worker.run_manager import RunManager, check_run_id
from makam_worker.run_spec import EnsembleSpec, InvalidRunSpec, RunSpec
from makam_worker.settings import Limits
from makam_worker.store import DiskGuard

logger = logging.getLogger("makam_worker.servicer")

WATCH_POLL_S = 0.1
CHUNK = 1 << 20  # bytes per message of FetchArtifact and FetchCheckpoint
# A StartRun is a model spec and hyperparameters from a job record of at most 1 MiB of JSON (the API's
# MAX_JOB_RECORD_BYTES), which a protobuf Struct may re-encode several times larger; past this, padding.
MAX_START_RUN_BYTES = 8 << 20
MAX_MODEL_NAME_CHARS = 1024


@contextmanager
def _status(context: grpc.ServicerContext) -> Iterator[None]:
    """Turns a WorkerError into its gRPC status; anything else stays an INTERNAL error with a log line."""
    try:
        yield
    except WorkerError as e:
        context.abort(e.status, str(e))


def _client_gone(context: grpc.ServicerContext) -> threading.Event:
    """Set when the client cancels or disconnects: a sync handler thread is not stopped for us."""
    gone = threading.Event()
    context.add_callback(gone.set)
    return gone


def _upload(request_iterator: Iterator[Any], rpc: str) -> tuple[Any, Iterator[bytes]]:
    """The header (DatasetHeader, CheckpointHeader) of an upload stream and an iterator over the chunks after it."""
    first = next(request_iterator, None)
    if first is None or first.WhichOneof("part") != "header":
        raise InvalidArgument(f"the first {rpc} message must be the header")
    header = first.header
    check_sha256(header.sha256, "header.sha256")

    def chunks() -> Iterator[bytes]:
        for message in request_iterator:
            if message.WhichOneof("part") != "chunk":
                raise InvalidArgument(f"only the first {rpc} message may be a header")
            yield message.chunk

    return header, chunks()


class WorkerServicer(worker_pb2_grpc.WorkerServiceServicer):
    def __init__(self, state_dir: Path, *, cancel_grace_s: float = 5.0, worker_id: str = "",
                 limits: Limits | None = None) -> None:
        self.worker_id = worker_id
        self.limits = limits = limits or Limits()
        self.runs = RunManager(state_dir, cancel_grace_s=cancel_grace_s)
        disk = DiskGuard(state_dir, limits.min_free_bytes)  # one for both stores: they share the disk
        self.datasets = DatasetStore(state_dir, max_bytes=limits.max_dataset_bytes, cache_bytes=limits.dataset_cache_bytes,
                                     disk=disk, in_use=self.runs.datasets_in_use)
        self.checkpoints = CheckpointStore(state_dir, max_bytes=limits.max_checkpoint_bytes, disk=disk)
        self.artifacts = MemberStore(state_dir, max_bytes=limits.max_checkpoint_bytes, disk=disk)
        self._stop_sweeping = threading.Event()
        self._sweeper: threading.Thread | None = None

    def start_sweeper(self) -> None:
        """Removes expired runs and unused uploaded checkpoints now and every limits.sweep_interval_s."""
        if self._sweeper is None:
            self._sweeper = threading.Thread(target=self._sweep_loop, name="makam-sweeper", daemon=True)
            self._sweeper.start()

    def stop_sweeper(self) -> None:
        self._stop_sweeping.set()

    def _sweep_loop(self) -> None:
        while True:
            try:
                self.sweep()
            except Exception:  # a failed sweep must not end the loop: the next may succeed
                logger.exception("sweeping expired runs failed")
            if self._stop_sweeping.wait(self.limits.sweep_interval_s):
                return

    def sweep(self) -> None:
        retention = self.limits.run_retention_s
        for run_id in self.runs.remove_expired(retention):
            logs.for_run(logger, run_id).info("run removed: finished more than %gs ago and never deleted "
                                              "(MAKAM_WORKER_RUN_RETENTION_S)", retention)
        for sha256 in self.checkpoints.remove_older_than(retention):
            logger.info("uploaded checkpoint %s removed: no run took it within %gs", sha256, retention)
        for sha256 in self.artifacts.remove_older_than(retention):
            logger.info("uploaded model archive %s removed: no run took it within %gs", sha256, retention)

    def GetCapabilities(self, request, context):
        return capabilities(self.worker_id, self.runs.active_runs())

    def HasDataset(self, request, context):
        with _status(context):
            present = self.datasets.has(request.sha256)
            if present:
                self.datasets.touch(request.sha256)  # about to be used: last in line for eviction
            return worker_pb2.HasDatasetResponse(present=present)

    def UploadDataset(self, request_iterator, context):
        with _status(context):
            header, chunks = _upload(request_iterator, "UploadDataset")
            size = self.datasets.receive(header.sha256, header.size_bytes, chunks)
            logger.info("dataset %s stored: %d bytes", header.sha256, size)
            return worker_pb2.UploadDatasetResponse(sha256=header.sha256, size_bytes=size)

    def UploadCheckpoint(self, request_iterator, context):
        with _status(context):
            header, chunks = _upload(request_iterator, "UploadCheckpoint")
            size = self.checkpoints.receive(header.sha256, header.size_bytes, chunks, check=CheckpointStore.check)
            logger.info("checkpoint %s stored (epoch %d, step %d): %d bytes", header.sha256, header.epoch,
                        header.step, size)
            return worker_pb2.UploadCheckpointResponse(sha256=header.sha256)

    def HasArtifact(self, request, context):
        with _status(context):
            return worker_pb2.HasArtifactResponse(present=self.artifacts.has(request.sha256))

    def UploadArtifact(self, request_iterator, context):
        with _status(context):
            header, chunks = _upload(request_iterator, "UploadArtifact")
            size = self.artifacts.receive(header.sha256, header.size_bytes, chunks)
            logger.info("model archive %s stored for an ensemble: %d bytes", header.sha256, size)
            return worker_pb2.UploadArtifactResponse(sha256=header.sha256)

    def _ensemble(self, request: worker_pb2.StartRunRequest, spec: RunSpec) -> RunSpec:
        """The spec with its ensemble: each member's archive as a path on this worker, which must hold it."""
        if not request.HasField("ensemble"):
            return spec
        members = []
        for i, member in enumerate(request.ensemble.members):
            check_sha256(member.artifact_sha256, f"ensemble.members[{i}].artifact_sha256")
            if not self.artifacts.has(member.artifact_sha256):
                raise FailedPrecondition(f"the model of ensemble member {member.job_id[:64]} is not on this worker; "
                                         "upload it first (UploadArtifact)")
            members.append({"job_id": member.job_id, "artifact": str(self.artifacts.path(member.artifact_sha256))})
        try:
            return dataclasses.replace(spec, ensemble=EnsembleSpec.from_dict({"method": request.ensemble.method, "members": members}))
        except InvalidRunSpec as e:
            raise InvalidArgument(str(e)) from None

    def StartRun(self, request, context):
        with _status(context):
            check_run_id(request.run_id)
            if self.runs.exists(request.run_id):  # idempotent: the run as it is, whatever this request says
                status = self.runs.status(request.run_id)
                return worker_pb2.StartRunResponse(
                    state=state_to_proto(status.state), created=False, last_seq=status.last_seq
                )
            spec = self._ensemble(request, self._spec(request))
            resume = self.checkpoints.path(request.resume_checkpoint_sha256) if request.resume_checkpoint_sha256 else None
            # The dispatcher's trace context: a run within a sampled trace reports its phases (training/spans.py).
            traceparent = next((v for k, v in context.invocation_metadata() if k == "traceparent"), None)
            status, created = self.runs.start(request.run_id, spec, resume=resume, traceparent=traceparent)
            return worker_pb2.StartRunResponse(state=state_to_proto(status.state), created=created,
                                               last_seq=status.last_seq)

    def _spec(self, request: worker_pb2.StartRunRequest) -> RunSpec:
        if (size := request.ByteSize()) > MAX_START_RUN_BYTES:
            raise InvalidArgument(f"the StartRun request is {size} bytes, over the {MAX_START_RUN_BYTES} this worker "
                                  "takes; send a smaller model config, tokenizer or hyperparameters")
        model = request.model
        if len(model.name) > MAX_MODEL_NAME_CHARS:
            raise InvalidArgument(f"model.name is {len(model.name)} characters; at most {MAX_MODEL_NAME_CHARS}")
        if model.family not in FAMILIES:
            raise InvalidArgument(f"unknown model family {model.family[:64]!r}; this worker trains {', '.join(FAMILIES)}")
        has_name, has_config = bool(model.name), model.HasField("config")
        if model.family in MODEL_FREE:
            if has_name or has_config:
                raise InvalidArgument(f"the {model.family} family takes no model name or config; "
                                      "its shape comes from the hyperparameters")
        elif has_name == has_config:
            raise InvalidArgument("model needs exactly one of name (an id or local path) or config")
        check_sha256(request.train_dataset_sha256, "train_dataset_sha256")
        train = self.datasets.path(request.train_dataset_sha256)
        if not train.is_file():
            raise FailedPrecondition(f"training dataset {request.train_dataset_sha256} is not on this worker; upload it first")
        self.datasets.touch(request.train_dataset_sha256)
        optional = {}
        for name, sha256 in (("validation", request.validation_dataset_sha256), ("test", request.test_dataset_sha256),
                             ("unlabeled", request.unlabeled_dataset_sha256)):
            if not sha256:
                continue
            check_sha256(sha256, f"{name}_dataset_sha256")
            path = self.datasets.path(sha256)
            if not path.is_file():
                raise FailedPrecondition(f"{name} dataset {sha256} is not on this worker; upload it first")
            self.datasets.touch(sha256)
            optional[name] = str(path)
        if request.resume_checkpoint_sha256:
            check_sha256(request.resume_checkpoint_sha256, "resume_checkpoint_sha256")
            if not self.checkpoints.has(request.resume_checkpoint_sha256):
                raise FailedPrecondition(
                    f"checkpoint {request.resume_checkpoint_sha256} is not on this worker; upload it first")
        if request.devices > 1 and request.devices > (offered := offered_devices()):
            raise InvalidArgument(f"the run asks for {request.devices} devices and this worker offers {offered} "
                                  "(MAKAM_WORKER_DEVICES); send it to a worker of a class with enough devices")
        # Parsed as the child will parse spec.json, so a spec StartRun takes is one the child can run.
        try:
            return RunSpec.from_dict(spec_from_request(request, str(train), optional.get("validation"), optional.get("test"),
                                                       optional.get("unlabeled")))
        except InvalidRunSpec as e:
            raise InvalidArgument(str(e)) from None

    def GetRun(self, request, context):
        with _status(context):
            status = self.runs.status(request.run_id)
            return worker_pb2.GetRunResponse(state=state_to_proto(status.state), last_seq=status.last_seq,
                                             pid=status.pid)

    def WatchRun(self, request, context):
        with _status(context):
            paths = self.runs.paths(request.run_id)
            gone = _client_gone(context)
            tail = EventTail(paths.events, request.after_seq)
            while True:
                for event in tail.poll():
                    yield event_to_proto(event)
                if tail.finished_seen:
                    return  # the finished event is sent (or was before after_seq): the stream ends
                if gone.is_set() or not context.is_active():
                    return
                if not paths.dir.exists():
                    raise NotFound(f"run {request.run_id!r} was deleted")
                gone.wait(WATCH_POLL_S)

    def CancelRun(self, request, context):
        with _status(context):
            state = self.runs.cancel(request.run_id)
            logs.for_run(logger, request.run_id).info("cancel done: %s", state)
            return worker_pb2.CancelRunResponse(state=state_to_proto(state))

    def FetchArtifact(self, request, context):
        with _status(context):
            paths = self.runs.paths(request.run_id)
            state = self.runs.status(request.run_id).state
            if state != "SUCCEEDED":
                raise FailedPrecondition(f"run {request.run_id!r} is {state}; only a succeeded run has an artifact")
            try:
                sha256 = paths.archive_sha256.read_text().strip()
                f = paths.archive.open("rb")
            except FileNotFoundError:
                raise NotFound(f"run {request.run_id!r} has no artifact (deleted?)") from None
            with f:
                size = f.seek(0, 2)
                f.seek(0)
                yield worker_pb2.FetchArtifactResponse(
                    header=worker_pb2.ArtifactHeader(size_bytes=size, sha256=sha256)
                )
                while chunk := f.read(CHUNK):
                    if not context.is_active():
                        return
                    yield worker_pb2.FetchArtifactResponse(chunk=chunk)

    def FetchCheckpoint(self, request, context):
        with _status(context):
            paths = self.runs.paths(request.run_id)
            gone = _client_gone(context)
            try:
                f, info = open_latest(paths)
            except FileNotFoundError:
                raise NotFound(f"run {request.run_id!r} has no checkpoint (yet)") from None
            with f:
                yield worker_pb2.FetchCheckpointResponse(header=worker_pb2.CheckpointHeader(
                    epoch=info.epoch, step=info.step, size_bytes=info.size_bytes, sha256=info.sha256))
                while chunk := f.read(CHUNK):
                    if gone.is_set() or not context.is_active():
                        return  # the client went away: stop reading a file of maybe gigabytes
                    yield worker_pb2.FetchCheckpointResponse(chunk=chunk)

    def DeleteRun(self, request, context):
        with _status(context):
            return worker_pb2.DeleteRunResponse(deleted=self.runs.delete(request.run_id))
