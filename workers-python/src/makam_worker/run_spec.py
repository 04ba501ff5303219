"""The run spec (`runs/<run_id>/spec.json`): what the server hands the training child, typed once.

The server builds a RunSpec from the StartRun request and writes it with `to_json`; the child parses
it once with `from_json` and every consumer reads attributes of it. A leaf module: it imports only the
generated hyperparameter contract, nothing of makam_worker.training, and no torch.

`from_json` refuses an unknown key (a typo would otherwise be ignored silently) and a missing
required one, naming the key; a nullable key may be left out (null). `to_json` writes every key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from makam_worker.contracts.hyperparameters import FAMILIES, Hyperparameters


class InvalidRunSpec(ValueError):
    """A spec.json the child cannot run; `code` is the `finished` event's error_code."""

    def __init__(self, message: str, code: str = "invalid_spec") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class ModelSpec:
    """The model to train (StartRun's ModelSpec); the family checks which of name and config it takes."""

    family: str
    """encoder, decoder, scratch or tfidf."""
    name: str = ""
    """A Hugging Face id or a local path on the worker; "" when unset."""
    config: dict[str, Any] | None = None
    """An architecture config to build an untrained model from (model_type plus its fields)."""
    tokenizer: dict[str, Any] | None = None
    """Settings for a tokenizer trained on the training split (with config)."""

    def to_dict(self) -> dict[str, Any]:
        # This exact dict is also a checkpoint's meta.json `model`, compared on resume: keep its shape.
        return {"family": self.family, "name": self.name, "config": self.config, "tokenizer": self.tokenizer}

    @classmethod
    def from_dict(cls, value: Any) -> ModelSpec:
        fields = _object(value, "model", required=("family",), optional=("name", "config", "tokenizer"))
        family = _string(fields, "model.family", "family")
        if family not in FAMILIES:
            raise InvalidRunSpec(f"spec.json: model.family {family[:64]!r} is not one of {', '.join(FAMILIES)}")
        return cls(
            family=family,
            name=_string(fields, "model.name", "name", nullable=True) or "",
            config=_mapping(fields, "model.config", "config"),
            tokenizer=_mapping(fields, "model.tokenizer", "tokenizer"),
        )


ENSEMBLE_METHODS = ("average", "stack")


@dataclass(frozen=True)
class EnsembleMember:
    job_id: str
    """The finished job whose model this is (for the report and the model card)."""
    artifact: Path
    """Its model.tar.gz on this worker."""


@dataclass(frozen=True)
class EnsembleSpec:
    """An ensemble run (training/ensemble.py): the members' models are combined, nothing is trained
    but the weights or the stacker. The run's model and hyperparameters are its first member's, whose
    data settings (splits, text preparation) every member shares."""

    method: str
    """average: probabilities averaged with weights fit on validation; stack: a logistic regression on them."""
    members: tuple[EnsembleMember, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "members": [{"job_id": m.job_id, "artifact": str(m.artifact)} for m in self.members]}

    @classmethod
    def from_dict(cls, value: Any) -> EnsembleSpec | None:
        if value is None:
            return None
        fields = _object(value, "ensemble", required=("method", "members"), optional=())
        method = _string(fields, "ensemble.method", "method")
        if method not in ENSEMBLE_METHODS:
            raise InvalidRunSpec(f"spec.json: ensemble.method {str(method)[:64]!r} is not one of {', '.join(ENSEMBLE_METHODS)}")
        members = fields["members"]
        if not isinstance(members, list) or len(members) < 2:
            raise InvalidRunSpec("spec.json: ensemble.members must be a list of at least 2 members")
        parsed = []
        for i, member in enumerate(members):
            m = _object(member, f"ensemble.members[{i}]", required=("job_id", "artifact"), optional=())
            parsed.append(EnsembleMember(job_id=_string(m, f"ensemble.members[{i}].job_id", "job_id"),
                                         artifact=Path(_string(m, f"ensemble.members[{i}].artifact", "artifact"))))
        return cls(method=method, members=tuple(parsed))


@dataclass(frozen=True)
class RunSpec:
    """One run: the model, the datasets as paths on this worker, the hyperparameters and the checkpoint
    to resume from (moved into the run dir as resume.tar; its sha256 here says there is one)."""

    run_id: str
    model: ModelSpec
    train_dataset: Path
    hyperparameters: Hyperparameters
    """Parsed for model.family, defaults filled; spec.json keeps every key of the family."""
    validation_dataset: Path | None = None
    """None: a validation split is carved from the training data."""
    test_dataset: Path | None = None
    """None: a test split is carved when hyperparameters.test_fraction > 0, else there is none."""
    unlabeled_dataset: Path | None = None
    """Texts without labels for the masked-LM phase (mlm_epochs) and the tokenizer; None: none."""
    resume_checkpoint_sha256: str | None = None
    ensemble: EnsembleSpec | None = None
    """Set for an ensemble of finished jobs' models instead of a training run."""
    devices: int = 1
    """Devices of this worker the run trains on: more than 1 starts it under torchrun (training/distributed.py)."""

    def __post_init__(self) -> None:
        if self.hyperparameters.family != self.model.family:
            raise InvalidRunSpec(f"hyperparameters are for the {self.hyperparameters.family} family and the model "
                                 f"is {self.model.family}")

    @property
    def datasets(self) -> list[Path]:
        """The dataset files the run reads."""
        return [p for p in (self.train_dataset, self.validation_dataset, self.test_dataset, self.unlabeled_dataset)
                if p is not None]

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "model": self.model.to_dict(),
            "train_dataset": str(self.train_dataset),
            "validation_dataset": _path_str(self.validation_dataset),
            "test_dataset": _path_str(self.test_dataset),
            "unlabeled_dataset": _path_str(self.unlabeled_dataset),
            "hyperparameters": self.hyperparameters.to_dict(),
            "resume_checkpoint_sha256": self.resume_checkpoint_sha256,
            "ensemble": self.ensemble.to_dict() if self.ensemble else None,
            "devices": self.devices,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=2) + "\n"

    @classmethod
    def from_dict(cls, value: Any) -> RunSpec:
        """Raises InvalidRunSpec naming the key; code invalid_hyperparameters for a refused hyperparameter."""
        fields = _object(value, "the spec", required=("run_id", "model", "train_dataset", "hyperparameters"),
                         optional=("validation_dataset", "test_dataset", "unlabeled_dataset", "resume_checkpoint_sha256", "ensemble",
                                   "devices"))
        model = ModelSpec.from_dict(fields["model"])
        hyperparameters = fields["hyperparameters"]
        if not isinstance(hyperparameters, dict):
            raise InvalidRunSpec(f"spec.json: hyperparameters must be an object, not {_kind(hyperparameters)}")
        try:
            hp = Hyperparameters.from_dict(hyperparameters, model.family)
        except ValueError as e:
            raise InvalidRunSpec(f"hyperparameters: {e}", code="invalid_hyperparameters") from None
        train = _string(fields, "train_dataset", "train_dataset")
        if not train:
            raise InvalidRunSpec("spec.json: train_dataset must name the training dataset's file")
        return cls(
            run_id=_string(fields, "run_id", "run_id"),
            model=model,
            train_dataset=Path(train),
            hyperparameters=hp,
            validation_dataset=_path(fields, "validation_dataset"),
            test_dataset=_path(fields, "test_dataset"),
            unlabeled_dataset=_path(fields, "unlabeled_dataset"),
            resume_checkpoint_sha256=_string(fields, "resume_checkpoint_sha256", "resume_checkpoint_sha256",
                                             nullable=True) or None,
            ensemble=EnsembleSpec.from_dict(fields.get("ensemble")),
            devices=_devices(fields.get("devices")),
        )

    @classmethod
    def from_json(cls, text: str) -> RunSpec:
        try:
            value = json.loads(text)
        except ValueError as e:
            raise InvalidRunSpec(f"spec.json is not JSON: {e}") from None
        return cls.from_dict(value)


def _devices(value: Any) -> int:
    if value is None:
        return 1
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InvalidRunSpec(f"spec.json: devices must be a whole number of at least 1, not {str(value)[:64]}")
    return value


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _object(value: Any, what: str, *, required: tuple[str, ...], optional: tuple[str, ...]) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise InvalidRunSpec(f"spec.json: {what} must be an object, not {_kind(value)}")
    prefix = "" if what == "the spec" else f"{what}."
    known = required + optional
    for key in sorted(value):
        if key not in known:
            raise InvalidRunSpec(f"spec.json: unknown key {prefix + str(key)[:64]!r}; the keys are {', '.join(known)}")
    for key in required:
        if key not in value:
            raise InvalidRunSpec(f"spec.json: missing key {prefix + key!r}")
    return value


def _string(fields: Mapping[str, Any], where: str, key: str, *, nullable: bool = False) -> str | None:
    value = fields.get(key)
    if value is None and nullable:
        return None
    if not isinstance(value, str):
        raise InvalidRunSpec(f"spec.json: {where} must be a string, not {_kind(value)}")
    return value


def _mapping(fields: Mapping[str, Any], where: str, key: str) -> dict[str, Any] | None:
    value = fields.get(key)
    if value is not None and not isinstance(value, dict):
        raise InvalidRunSpec(f"spec.json: {where} must be an object or null, not {_kind(value)}")
    return value


def _path(fields: Mapping[str, Any], key: str) -> Path | None:
    value = _string(fields, key, key, nullable=True)
    return Path(value) if value else None


def _path_str(path: Path | None) -> str | None:
    return str(path) if path is not None else None
