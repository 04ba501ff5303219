"""What a neural family hands the training loop: the model, its tokenizer and how to save them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from makam_worker.training.common import Log
from makam_worker.training.config import Hyperparameters
from makam_worker.training.data import Splits


@dataclass(frozen=True)
class BuildContext:
    hp: Hyperparameters
    splits: Splits
    device: torch.device
    precision: str  # "fp32", "bf16" or "fp16", resolved for the device
    work_dir: Path  # the run's scratch directory (not packed)
    log: Log
    resume_dir: Path | None = None  # a resumed run: the `derived` files of its checkpoint, to use instead of training them


@dataclass
class Built:
    """A model whose forward(input_ids, attention_mask) returns an object with `.logits`, on its device."""

    model: torch.nn.Module
    tokenizer: Any
    """A transformers tokenizer: tokenizer(texts, add_special_tokens=...) gives input_ids."""
    max_length: int
    """hp.max_length, lowered to what the model's positions allow."""
    pad_token_id: int
    save: Callable[[Path], None]
    """Writes the (best) model and its tokenizer into the model directory."""
    source: str
    """The base model for the model card: an id or path, or how it was built."""
    loading: str
    """Python that loads the artifact in directory `d` and predicts, for the model card."""
    notes: list[str] = field(default_factory=list)
    """Warnings for the run's log (a lowered max_length, say)."""
    info: dict[str, Any] = field(default_factory=dict)
    """Facts for metrics.json: parameter counts, the tokenizer's vocabulary size."""
    derived: dict[str, Path] = field(default_factory=dict)
    """Files and directories derived from the data that every checkpoint carries (a tokenizer trained on
    the split, a config-built base), by their name in it; a resumed run finds them in ctx.resume_dir."""


def parameter_counts(model: torch.nn.Module) -> dict[str, int]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"parameters": total, "trainable_parameters": trainable}


def ensure_pad_token(tokenizer: Any, model: torch.nn.Module) -> list[str]:
    """Gives a tokenizer without a pad token its eos (else unk) token as pad, and sets the model's
    config.pad_token_id, which sequence classification heads of causal LMs use to find the last token."""
    from makam_worker.training.errors import TrainingError

    notes = []
    if tokenizer.pad_token is None:
        fallback = tokenizer.eos_token or tokenizer.unk_token
        if fallback is None:
            raise TrainingError("invalid_model", "the tokenizer has no pad, eos or unk token to pad batches with")
        tokenizer.pad_token = fallback
        notes.append(f"the tokenizer has no pad token: padding with {fallback!r}")
    model.config.pad_token_id = tokenizer.pad_token_id
    return notes
