"""The parts every training loop here is made of (trainer.py's fine-tuning, refit.py, mlm.py's
masked-LM phase): the batch order, micro-batch windows, the optimizer and its schedule, mixed
precision, a tokenizer's special tokens, the progress events. A leaf of the loops, so a phase can use them without
importing the loop that runs it."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator
from contextlib import nullcontext
from typing import Any

import torch
from transformers import (
    get_constant_schedule_with_warmup,
    get_cosine_schedule_with_warmup,
    get_linear_schedule_with_warmup,
)

from makam_worker.events import EventLog
from makam_worker.training import textprep
from makam_worker.training.config import Hyperparameters
from makam_worker.training.errors import TrainingError

PROGRESS_INTERVAL_S = 1.0
NORM_NAMES = ("norm", "ln_", "layernorm")
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
SCHEDULES = {
    "linear": get_linear_schedule_with_warmup,
    "cosine": get_cosine_schedule_with_warmup,
    "constant": lambda optimizer, warmup, _total: get_constant_schedule_with_warmup(optimizer, warmup),
}


def special_affixes(tokenizer: Any) -> tuple[list[int], list[int]]:
    """The special tokens a tokenizer puts before and after a single text ([CLS] / [SEP], <s> / none)."""
    try:
        return textprep.special_affixes(tokenizer)
    except ValueError as e:
        raise TrainingError("invalid_model", str(e)) from None


class EpochShuffle(torch.utils.data.Sampler[int]):
    """A permutation per epoch that depends only on (seed, epoch), so a run resumed at epoch k+1 sees
    the batches an uninterrupted run would (one generator carried across epochs would not).

    With `lengths` (group_by_length), the permutation is transformers' length-grouped one, as its
    LengthGroupedSampler makes it: shuffled, cut into mega-batches of up to 50 batches, each sorted by
    length, so a batch holds texts of similar length and pads little."""

    def __init__(self, size: int, seed: int, lengths: list[int] | None = None, batch_size: int = 1) -> None:
        self.size, self.seed, self.epoch = size, seed, 1
        self.lengths, self.batch_size = lengths, batch_size

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[int]:
        # seed < 2**32 and epoch <= 1000 < 2**20: every (seed, epoch) has its own generator seed.
        generator = torch.Generator().manual_seed((self.seed << 20) + self.epoch)
        if self.lengths is not None:
            from transformers.trainer_pt_utils import get_length_grouped_indices

            return iter(get_length_grouped_indices(self.lengths, self.batch_size, generator=generator))
        return iter(torch.randperm(self.size, generator=generator).tolist())


def optimizer_for(model: torch.nn.Module, hp: Hyperparameters, device: torch.device | None = None) -> torch.optim.Optimizer:
    """AdamW; no weight decay on biases and normalisation weights (any 1-d parameter, or one whose
    name says norm). On CUDA the fused kernel: one launch for every parameter instead of a few per tensor."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        is_norm = any(n in name.lower() for n in NORM_NAMES)
        (no_decay if param.ndim < 2 or name.endswith(".bias") or is_norm else decay).append(param)
    groups = [{"params": decay, "weight_decay": hp.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    fused = device is not None and device.type == "cuda"
    return torch.optim.AdamW(groups, lr=hp.learning_rate, **({"fused": True} if fused else {}))


def scheduler_for(optimizer: torch.optim.Optimizer, hp: Hyperparameters, total_steps: int) -> Any:
    warmup = hp.warmup_steps if hp.warmup_steps > 0 else math.ceil(hp.warmup_ratio * total_steps)
    return SCHEDULES[hp.lr_scheduler](optimizer, min(warmup, total_steps), total_steps)


def autocast(device: torch.device, precision: str) -> Any:
    if precision in AMP_DTYPES:
        return torch.autocast(device_type=device.type, dtype=AMP_DTYPES[precision])
    return nullcontext()


def windows(batches: Iterable[dict[str, torch.Tensor]], k: int) -> Iterator[list[dict[str, torch.Tensor]]]:
    """Groups micro-batches k at a time (the last group may be shorter): one group, one optimizer step."""
    group: list[dict[str, torch.Tensor]] = []
    for batch in batches:
        group.append(batch)
        if len(group) == k:
            yield group
            group = []
    if group:
        yield group


class ProgressReporter:
    """Emits `progress` at most about once per interval, and always on an epoch's last step and on the
    run's first step (the event that marks training under way, for start-up measurements)."""

    _first_sent = False

    def __init__(self, events: EventLog, total_steps: int, interval_s: float = PROGRESS_INTERVAL_S,
                 phase: str = "") -> None:
        self.events, self.total_steps, self.interval_s = events, total_steps, interval_s
        self.phase = {"phase": phase} if phase else {}  # Progress.phase: "refit" in refit.py, "mlm" and "refit_mlm" in mlm.py
        self._loss_sum: torch.Tensor | float = 0.0
        self._count, self._last = 0, time.monotonic()

    def step(self, epoch: int, step: int, loss: torch.Tensor | float, lr: float, *, epoch_end: bool) -> None:
        """`loss` may be a tensor on the device: it is summed there and read once per progress event."""
        self._loss_sum = self._loss_sum + loss
        self._count += 1
        now = time.monotonic()
        if epoch_end or not self._first_sent or now - self._last >= self.interval_s:
            self._first_sent = True
            self.events.append(
                "progress", epoch=epoch, step=step, total_steps=self.total_steps,
                train_loss=float(self._loss_sum) / self._count, learning_rate=lr, **self.phase,
            )
            self._loss_sum, self._count, self._last = 0.0, 0, now
