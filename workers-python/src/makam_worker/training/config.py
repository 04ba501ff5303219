"""The hyperparameters of a fine-tuning run, checked again here as the worker's own guard.

The API validates requests first; this module must stay importable without torch, because the
server uses it to refuse bad hyperparameters at StartRun before a child process is spawned.
"""

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping


@dataclass(frozen=True)
class Hyperparameters:
    """How to fine-tune; every field has a default, so `{}` is a valid request."""

    epochs: int = 3
    """Passes over the training split (1-1000)."""

    batch_size: int = 16
    """Examples per optimizer step (1-4096)."""

    learning_rate: float = 5e-5
    """Peak AdamW learning rate, reached after warmup (above 0, at most 1)."""

    max_length: int = 128
    """Tokens per example after truncation, special tokens included (8-512)."""

    seed: int = 42
    """Seeds Python, NumPy, torch, the shuffling and the validation split (0 to 2**32-1)."""

    warmup_ratio: float = 0.1
    """Share of the steps spent warming the learning rate up from 0 (0 to below 1)."""

    weight_decay: float = 0.01
    """AdamW weight decay, not applied to biases and LayerNorm weights (0-1)."""

    max_grad_norm: float = 1.0
    """Gradients are clipped to this total norm (above 0)."""

    validation_fraction: float = 0.1
    """Share of the training data held out when no validation dataset is given (above 0, at most 0.5)."""

    def __post_init__(self) -> None:
        _check_range("epochs", self.epochs, 1, 1000)
        _check_range("batch_size", self.batch_size, 1, 4096)
        _check_range("max_length", self.max_length, 8, 512)
        _check_range("seed", self.seed, 0, 2**32 - 1)
        if not 0 < self.learning_rate <= 1:
            raise ValueError(f"learning_rate must be above 0 and at most 1 (got {self.learning_rate}); try 5e-5")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"warmup_ratio must be from 0 to below 1 (got {self.warmup_ratio}); try 0.1")
        if not 0 <= self.weight_decay <= 1:
            raise ValueError(f"weight_decay must be from 0 to 1 (got {self.weight_decay}); try 0.01")
        if not self.max_grad_norm > 0:
            raise ValueError(f"max_grad_norm must be above 0 (got {self.max_grad_norm}); try 1.0")
        if not 0 < self.validation_fraction <= 0.5:
            raise ValueError(
                f"validation_fraction must be above 0 and at most 0.5 (got {self.validation_fraction}); try 0.1"
            )

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "Hyperparameters":
        """Builds from JSON values; ints may arrive as integral floats (3.0) from a protobuf Struct."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise ValueError(
                f"unknown hyperparameter {unknown[0]!r}; remove it or use one of: {', '.join(sorted(fields))}"
            )
        kwargs = {name: _coerce(name, fields[name].type, value) for name, value in values.items()}
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _coerce(name: str, type_: Any, value: Any) -> int | float:
    # bool is an int subclass in Python; true/false is never a meaningful number here.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number (got {type(value).__name__} {value!r})")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number (got {value})")
    if type_ is int:
        if value != int(value):
            raise ValueError(f"{name} must be a whole number (got {value}); round it, e.g. {int(value)}")
        return int(value)
    return float(value)


def _check_range(name: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise ValueError(f"{name} must be from {low} to {high} (got {value})")
