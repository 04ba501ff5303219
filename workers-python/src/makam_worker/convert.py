"""Between the proto messages and the JSON of spec.json and events.jsonl."""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format

from makam.worker.v1 import worker_pb2
from makam_worker.events import Event

_ENVELOPE = ("seq", "time_unix_ms", "type")


def state_to_proto(state: str) -> worker_pb2.RunState.ValueType:
    """Maps "SUCCEEDED" to RUN_STATE_SUCCEEDED; the JSON files keep the short names."""
    return worker_pb2.RunState.Value(f"RUN_STATE_{state}")


def event_to_proto(event: Event) -> worker_pb2.WatchRunResponse:
    """One events.jsonl line as a WatchRunResponse; the `type` names the oneof field."""
    response = worker_pb2.WatchRunResponse(seq=event["seq"], time_unix_ms=event["time_unix_ms"])
    fields = {k: v for k, v in event.items() if k not in _ENVELOPE and v is not None}
    if event["type"] == "finished":
        fields["state"] = worker_pb2.RunState.Name(state_to_proto(fields["state"]))
    message = getattr(response, event["type"])
    message.SetInParent()  # an event with no fields still selects its oneof case
    json_format.ParseDict(fields, message, ignore_unknown_fields=True)
    return response


def struct_to_dict(message: Any, field: str) -> dict[str, Any] | None:
    """A google.protobuf.Struct field as a dict, None when unset."""
    if not message.HasField(field):
        return None
    return json_format.MessageToDict(getattr(message, field))


def spec_from_request(
    request: worker_pb2.StartRunRequest, train_path: str, validation_path: str | None, test_path: str | None = None,
    unlabeled_path: str | None = None,
) -> dict:
    """spec.json: the StartRun request as JSON, with the datasets as paths on this worker."""
    return {
        "run_id": request.run_id,
        "model": {
            "family": request.model.family,
            "name": request.model.name,
            "config": struct_to_dict(request.model, "config"),
            "tokenizer": struct_to_dict(request.model, "tokenizer"),
        },
        "train_dataset": train_path,
        "validation_dataset": validation_path,
        "test_dataset": test_path,
        "unlabeled_dataset": unlabeled_path,
        "hyperparameters": struct_to_dict(request, "hyperparameters") or {},
        # The checkpoint itself is moved into the run dir as resume.tar.
        "resume_checkpoint_sha256": request.resume_checkpoint_sha256 or None,
        "devices": request.devices or 1,
    }
