from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RunState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RUN_STATE_UNSPECIFIED: _ClassVar[RunState]
    RUN_STATE_RUNNING: _ClassVar[RunState]
    RUN_STATE_SUCCEEDED: _ClassVar[RunState]
    RUN_STATE_FAILED: _ClassVar[RunState]
    RUN_STATE_CANCELLED: _ClassVar[RunState]
RUN_STATE_UNSPECIFIED: RunState
RUN_STATE_RUNNING: RunState
RUN_STATE_SUCCEEDED: RunState
RUN_STATE_FAILED: RunState
RUN_STATE_CANCELLED: RunState

class GetCapabilitiesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetCapabilitiesResponse(_message.Message):
    __slots__ = ("worker_id", "device", "gpu_name", "memory_total_bytes", "memory_free_bytes", "families", "versions", "active_runs", "devices")
    class VersionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    GPU_NAME_FIELD_NUMBER: _ClassVar[int]
    MEMORY_TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    MEMORY_FREE_BYTES_FIELD_NUMBER: _ClassVar[int]
    FAMILIES_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_RUNS_FIELD_NUMBER: _ClassVar[int]
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    device: str
    gpu_name: str
    memory_total_bytes: int
    memory_free_bytes: int
    families: _containers.RepeatedScalarFieldContainer[str]
    versions: _containers.ScalarMap[str, str]
    active_runs: int
    devices: int
    def __init__(self, worker_id: _Optional[str] = ..., device: _Optional[str] = ..., gpu_name: _Optional[str] = ..., memory_total_bytes: _Optional[int] = ..., memory_free_bytes: _Optional[int] = ..., families: _Optional[_Iterable[str]] = ..., versions: _Optional[_Mapping[str, str]] = ..., active_runs: _Optional[int] = ..., devices: _Optional[int] = ...) -> None: ...

class HasDatasetRequest(_message.Message):
    __slots__ = ("sha256",)
    SHA256_FIELD_NUMBER: _ClassVar[int]
    sha256: str
    def __init__(self, sha256: _Optional[str] = ...) -> None: ...

class HasDatasetResponse(_message.Message):
    __slots__ = ("present",)
    PRESENT_FIELD_NUMBER: _ClassVar[int]
    present: bool
    def __init__(self, present: _Optional[bool] = ...) -> None: ...

class UploadDatasetRequest(_message.Message):
    __slots__ = ("header", "chunk")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    header: DatasetHeader
    chunk: bytes
    def __init__(self, header: _Optional[_Union[DatasetHeader, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class DatasetHeader(_message.Message):
    __slots__ = ("sha256", "size_bytes")
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    sha256: str
    size_bytes: int
    def __init__(self, sha256: _Optional[str] = ..., size_bytes: _Optional[int] = ...) -> None: ...

class UploadDatasetResponse(_message.Message):
    __slots__ = ("sha256", "size_bytes")
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    sha256: str
    size_bytes: int
    def __init__(self, sha256: _Optional[str] = ..., size_bytes: _Optional[int] = ...) -> None: ...

class ModelSpec(_message.Message):
    __slots__ = ("family", "name", "config", "tokenizer")
    FAMILY_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    TOKENIZER_FIELD_NUMBER: _ClassVar[int]
    family: str
    name: str
    config: _struct_pb2.Struct
    tokenizer: _struct_pb2.Struct
    def __init__(self, family: _Optional[str] = ..., name: _Optional[str] = ..., config: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., tokenizer: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class StartRunRequest(_message.Message):
    __slots__ = ("run_id", "model", "train_dataset_sha256", "validation_dataset_sha256", "hyperparameters", "test_dataset_sha256", "resume_checkpoint_sha256", "devices", "unlabeled_dataset_sha256", "ensemble")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TRAIN_DATASET_SHA256_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_DATASET_SHA256_FIELD_NUMBER: _ClassVar[int]
    HYPERPARAMETERS_FIELD_NUMBER: _ClassVar[int]
    TEST_DATASET_SHA256_FIELD_NUMBER: _ClassVar[int]
    RESUME_CHECKPOINT_SHA256_FIELD_NUMBER: _ClassVar[int]
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    UNLABELED_DATASET_SHA256_FIELD_NUMBER: _ClassVar[int]
    ENSEMBLE_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    model: ModelSpec
    train_dataset_sha256: str
    validation_dataset_sha256: str
    hyperparameters: _struct_pb2.Struct
    test_dataset_sha256: str
    resume_checkpoint_sha256: str
    devices: int
    unlabeled_dataset_sha256: str
    ensemble: Ensemble
    def __init__(self, run_id: _Optional[str] = ..., model: _Optional[_Union[ModelSpec, _Mapping]] = ..., train_dataset_sha256: _Optional[str] = ..., validation_dataset_sha256: _Optional[str] = ..., hyperparameters: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., test_dataset_sha256: _Optional[str] = ..., resume_checkpoint_sha256: _Optional[str] = ..., devices: _Optional[int] = ..., unlabeled_dataset_sha256: _Optional[str] = ..., ensemble: _Optional[_Union[Ensemble, _Mapping]] = ...) -> None: ...

class Ensemble(_message.Message):
    __slots__ = ("method", "members")
    METHOD_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    method: str
    members: _containers.RepeatedCompositeFieldContainer[EnsembleMember]
    def __init__(self, method: _Optional[str] = ..., members: _Optional[_Iterable[_Union[EnsembleMember, _Mapping]]] = ...) -> None: ...

class EnsembleMember(_message.Message):
    __slots__ = ("job_id", "artifact_sha256")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_SHA256_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    artifact_sha256: str
    def __init__(self, job_id: _Optional[str] = ..., artifact_sha256: _Optional[str] = ...) -> None: ...

class StartRunResponse(_message.Message):
    __slots__ = ("state", "created", "last_seq")
    STATE_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    state: RunState
    created: bool
    last_seq: int
    def __init__(self, state: _Optional[_Union[RunState, str]] = ..., created: _Optional[bool] = ..., last_seq: _Optional[int] = ...) -> None: ...

class GetRunRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class GetRunResponse(_message.Message):
    __slots__ = ("state", "last_seq", "pid")
    STATE_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    state: RunState
    last_seq: int
    pid: int
    def __init__(self, state: _Optional[_Union[RunState, str]] = ..., last_seq: _Optional[int] = ..., pid: _Optional[int] = ...) -> None: ...

class WatchRunRequest(_message.Message):
    __slots__ = ("run_id", "after_seq")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    after_seq: int
    def __init__(self, run_id: _Optional[str] = ..., after_seq: _Optional[int] = ...) -> None: ...

class WatchRunResponse(_message.Message):
    __slots__ = ("seq", "time_unix_ms", "started", "progress", "metrics", "log", "finished", "checkpoint", "span")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    TIME_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    STARTED_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    LOG_FIELD_NUMBER: _ClassVar[int]
    FINISHED_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    SPAN_FIELD_NUMBER: _ClassVar[int]
    seq: int
    time_unix_ms: int
    started: RunStarted
    progress: Progress
    metrics: Metrics
    log: LogLine
    finished: RunFinished
    checkpoint: CheckpointSaved
    span: PhaseSpan
    def __init__(self, seq: _Optional[int] = ..., time_unix_ms: _Optional[int] = ..., started: _Optional[_Union[RunStarted, _Mapping]] = ..., progress: _Optional[_Union[Progress, _Mapping]] = ..., metrics: _Optional[_Union[Metrics, _Mapping]] = ..., log: _Optional[_Union[LogLine, _Mapping]] = ..., finished: _Optional[_Union[RunFinished, _Mapping]] = ..., checkpoint: _Optional[_Union[CheckpointSaved, _Mapping]] = ..., span: _Optional[_Union[PhaseSpan, _Mapping]] = ...) -> None: ...

class PhaseSpan(_message.Message):
    __slots__ = ("name", "start_time_unix_nano", "end_time_unix_nano", "attributes", "error")
    NAME_FIELD_NUMBER: _ClassVar[int]
    START_TIME_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    END_TIME_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    name: str
    start_time_unix_nano: int
    end_time_unix_nano: int
    attributes: _struct_pb2.Struct
    error: str
    def __init__(self, name: _Optional[str] = ..., start_time_unix_nano: _Optional[int] = ..., end_time_unix_nano: _Optional[int] = ..., attributes: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., error: _Optional[str] = ...) -> None: ...

class CheckpointSaved(_message.Message):
    __slots__ = ("epoch", "step")
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    epoch: int
    step: int
    def __init__(self, epoch: _Optional[int] = ..., step: _Optional[int] = ...) -> None: ...

class RunStarted(_message.Message):
    __slots__ = ("pid", "device", "train_examples", "validation_examples", "total_steps", "labels", "test_examples", "resumed_from_epoch")
    PID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    TRAIN_EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    TOTAL_STEPS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    TEST_EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    RESUMED_FROM_EPOCH_FIELD_NUMBER: _ClassVar[int]
    pid: int
    device: str
    train_examples: int
    validation_examples: int
    total_steps: int
    labels: _containers.RepeatedScalarFieldContainer[str]
    test_examples: int
    resumed_from_epoch: int
    def __init__(self, pid: _Optional[int] = ..., device: _Optional[str] = ..., train_examples: _Optional[int] = ..., validation_examples: _Optional[int] = ..., total_steps: _Optional[int] = ..., labels: _Optional[_Iterable[str]] = ..., test_examples: _Optional[int] = ..., resumed_from_epoch: _Optional[int] = ...) -> None: ...

class Progress(_message.Message):
    __slots__ = ("epoch", "step", "total_steps", "train_loss", "learning_rate", "phase")
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    TOTAL_STEPS_FIELD_NUMBER: _ClassVar[int]
    TRAIN_LOSS_FIELD_NUMBER: _ClassVar[int]
    LEARNING_RATE_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    epoch: int
    step: int
    total_steps: int
    train_loss: float
    learning_rate: float
    phase: str
    def __init__(self, epoch: _Optional[int] = ..., step: _Optional[int] = ..., total_steps: _Optional[int] = ..., train_loss: _Optional[float] = ..., learning_rate: _Optional[float] = ..., phase: _Optional[str] = ...) -> None: ...

class Metrics(_message.Message):
    __slots__ = ("epoch", "step", "train_loss", "validation_loss", "accuracy", "weighted_f1", "macro_f1", "phase", "mlm_loss")
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    TRAIN_LOSS_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_LOSS_FIELD_NUMBER: _ClassVar[int]
    ACCURACY_FIELD_NUMBER: _ClassVar[int]
    WEIGHTED_F1_FIELD_NUMBER: _ClassVar[int]
    MACRO_F1_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    MLM_LOSS_FIELD_NUMBER: _ClassVar[int]
    epoch: int
    step: int
    train_loss: float
    validation_loss: float
    accuracy: float
    weighted_f1: float
    macro_f1: float
    phase: str
    mlm_loss: float
    def __init__(self, epoch: _Optional[int] = ..., step: _Optional[int] = ..., train_loss: _Optional[float] = ..., validation_loss: _Optional[float] = ..., accuracy: _Optional[float] = ..., weighted_f1: _Optional[float] = ..., macro_f1: _Optional[float] = ..., phase: _Optional[str] = ..., mlm_loss: _Optional[float] = ...) -> None: ...

class LogLine(_message.Message):
    __slots__ = ("level", "message")
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    level: str
    message: str
    def __init__(self, level: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class RunFinished(_message.Message):
    __slots__ = ("state", "error_code", "error_message", "retryable", "final_metrics")
    STATE_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RETRYABLE_FIELD_NUMBER: _ClassVar[int]
    FINAL_METRICS_FIELD_NUMBER: _ClassVar[int]
    state: RunState
    error_code: str
    error_message: str
    retryable: bool
    final_metrics: _struct_pb2.Struct
    def __init__(self, state: _Optional[_Union[RunState, str]] = ..., error_code: _Optional[str] = ..., error_message: _Optional[str] = ..., retryable: _Optional[bool] = ..., final_metrics: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class CancelRunRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class CancelRunResponse(_message.Message):
    __slots__ = ("state",)
    STATE_FIELD_NUMBER: _ClassVar[int]
    state: RunState
    def __init__(self, state: _Optional[_Union[RunState, str]] = ...) -> None: ...

class FetchArtifactRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class FetchArtifactResponse(_message.Message):
    __slots__ = ("header", "chunk")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    header: ArtifactHeader
    chunk: bytes
    def __init__(self, header: _Optional[_Union[ArtifactHeader, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class ArtifactHeader(_message.Message):
    __slots__ = ("size_bytes", "sha256")
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    size_bytes: int
    sha256: str
    def __init__(self, size_bytes: _Optional[int] = ..., sha256: _Optional[str] = ...) -> None: ...

class DeleteRunRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class DeleteRunResponse(_message.Message):
    __slots__ = ("deleted",)
    DELETED_FIELD_NUMBER: _ClassVar[int]
    deleted: bool
    def __init__(self, deleted: _Optional[bool] = ...) -> None: ...

class FetchCheckpointRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class FetchCheckpointResponse(_message.Message):
    __slots__ = ("header", "chunk")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    header: CheckpointHeader
    chunk: bytes
    def __init__(self, header: _Optional[_Union[CheckpointHeader, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class CheckpointHeader(_message.Message):
    __slots__ = ("epoch", "step", "size_bytes", "sha256")
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    epoch: int
    step: int
    size_bytes: int
    sha256: str
    def __init__(self, epoch: _Optional[int] = ..., step: _Optional[int] = ..., size_bytes: _Optional[int] = ..., sha256: _Optional[str] = ...) -> None: ...

class UploadCheckpointRequest(_message.Message):
    __slots__ = ("header", "chunk")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    header: CheckpointHeader
    chunk: bytes
    def __init__(self, header: _Optional[_Union[CheckpointHeader, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class UploadCheckpointResponse(_message.Message):
    __slots__ = ("sha256",)
    SHA256_FIELD_NUMBER: _ClassVar[int]
    sha256: str
    def __init__(self, sha256: _Optional[str] = ...) -> None: ...

class UploadArtifactRequest(_message.Message):
    __slots__ = ("header", "chunk")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    header: ArtifactHeader
    chunk: bytes
    def __init__(self, header: _Optional[_Union[ArtifactHeader, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class UploadArtifactResponse(_message.Message):
    __slots__ = ("sha256",)
    SHA256_FIELD_NUMBER: _ClassVar[int]
    sha256: str
    def __init__(self, sha256: _Optional[str] = ...) -> None: ...

class HasArtifactRequest(_message.Message):
    __slots__ = ("sha256",)
    SHA256_FIELD_NUMBER: _ClassVar[int]
    sha256: str
    def __init__(self, sha256: _Optional[str] = ...) -> None: ...

class HasArtifactResponse(_message.Message):
    __slots__ = ("present",)
    PRESENT_FIELD_NUMBER: _ClassVar[int]
    present: bool
    def __init__(self, present: _Optional[bool] = ...) -> None: ...
