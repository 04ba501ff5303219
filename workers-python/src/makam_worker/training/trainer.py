"""One fine-tuning run, in the order of transformers' run_glue_no_trainer.py: seed, data, sorted
labels, model, loaders, optimizer, schedule, loop with per-epoch evaluation, save, pack."""

from __future__ import annotations

import inspect
import logging
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader
from transformers import DataCollatorWithPadding, get_linear_schedule_with_warmup, set_seed
from transformers.utils import logging as hf_logging

from makam_worker.events import EventLog
from makam_worker.layout import RunPaths
from makam_worker.training import artifact
from makam_worker.training.config import Hyperparameters
from makam_worker.training.data import Splits, load_splits
from makam_worker.training.encoder import build_encoder
from makam_worker.training.errors import Cancelled, TrainingError
from makam_worker.training.metrics import classification_metrics, majority_baseline_accuracy

PROGRESS_INTERVAL_S = 1.0
NO_DECAY = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")

Log = logging.Logger | logging.LoggerAdapter[logging.Logger]


def pick_device() -> torch.device:
    """CUDA when present; MAKAM_WORKER_DEVICE ("cpu", "cuda", "cuda:1") overrides."""
    override = os.environ.get("MAKAM_WORKER_DEVICE", "").strip()
    if override:
        device = torch.device(override)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise TrainingError("device_unavailable", f"MAKAM_WORKER_DEVICE={override} but CUDA is not available")
        return device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{device.index if device.index is not None else torch.cuda.current_device()}"
    return device.type


def parse_hyperparameters(values: dict[str, Any]) -> Hyperparameters:
    try:
        return Hyperparameters.from_dict(values)
    except ValueError as e:
        raise TrainingError("invalid_hyperparameters", str(e)) from None


def encode(tokenizer: Any, texts: list[str], labels: list[int], max_length: int, keys: set[str]) -> list[dict]:
    encoded = tokenizer(texts, truncation=True, max_length=max_length)
    # Only the inputs this model's forward takes (DistilBERT, for one, has no token_type_ids).
    names = [k for k in encoded.keys() if k in keys]
    return [{**{k: encoded[k][i] for k in names}, "labels": label} for i, label in enumerate(labels)]


def optimizer_for(model: torch.nn.Module, hp: Hyperparameters) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (no_decay if any(nd in name for nd in NO_DECAY) else decay).append(param)
    groups = [{"params": decay, "weight_decay": hp.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=hp.learning_rate)


@torch.no_grad()
def evaluate(model: torch.nn.Module, loader: DataLoader, device: torch.device) -> tuple[float, list[int], list[int]]:
    """Mean validation loss per example, predictions and references."""
    model.eval()
    loss_sum, count, predictions, references = 0.0, 0, [], []
    for batch in loader:
        batch = {k: v.to(device) for k, v in batch.items()}
        out = model(**batch)
        n = batch["labels"].shape[0]
        loss_sum += out.loss.item() * n
        count += n
        predictions += out.logits.argmax(dim=-1).tolist()
        references += batch["labels"].tolist()
    model.train()
    return loss_sum / count, predictions, references


class ProgressReporter:
    """Emits `progress` at most about once per interval, and always on an epoch's last step."""

    def __init__(self, events: EventLog, total_steps: int, interval_s: float = PROGRESS_INTERVAL_S) -> None:
        self.events, self.total_steps, self.interval_s = events, total_steps, interval_s
        self._loss_sum, self._count, self._last = 0.0, 0, time.monotonic()

    def step(self, epoch: int, step: int, loss: float, lr: float, *, epoch_end: bool) -> None:
        self._loss_sum += loss
        self._count += 1
        now = time.monotonic()
        if epoch_end or now - self._last >= self.interval_s:
            self.events.append(
                "progress", epoch=epoch, step=step, total_steps=self.total_steps,
                train_loss=self._loss_sum / self._count, learning_rate=lr,
            )
            self._loss_sum, self._count, self._last = 0.0, 0, now


def train_run(paths: RunPaths, spec: dict[str, Any], events: EventLog, should_stop: Callable[[], bool], log: Log) -> dict:
    """Trains, writes model/, model.tar.gz and its sha256; returns metrics.json's summary."""

    def check_stop() -> None:
        if should_stop():
            raise Cancelled()

    hf_logging.disable_progress_bar()  # tqdm bars would fill train.log
    hp = parse_hyperparameters(spec.get("hyperparameters") or {})
    set_seed(hp.seed)
    device = pick_device()

    validation = spec.get("validation_dataset")
    splits = load_splits(Path(spec["train_dataset"]), Path(validation) if validation else None,
                         hp.validation_fraction, hp.seed)
    log.info("data: %d training and %d validation examples, %d labels",
             len(splits.train_texts), len(splits.validation_texts), len(splits.label_names))
    check_stop()

    model, tokenizer = build_encoder(spec["model"], splits.label_names, splits.train_texts)
    model.to(device)
    max_length = min(hp.max_length, tokenizer.model_max_length)
    if max_length < hp.max_length:
        events.append("log", level="warning", message=f"max_length lowered to the model's limit of {max_length}")
    check_stop()

    keys = set(inspect.signature(model.forward).parameters)
    collator = DataCollatorWithPadding(tokenizer)
    train_loader = DataLoader(
        encode(tokenizer, splits.train_texts, splits.train_labels, max_length, keys),
        batch_size=hp.batch_size, shuffle=True, collate_fn=collator,
        generator=torch.Generator().manual_seed(hp.seed),
    )
    val_loader = DataLoader(
        encode(tokenizer, splits.validation_texts, splits.validation_labels, max_length, keys),
        batch_size=hp.batch_size, shuffle=False, collate_fn=collator,
    )
    optimizer = optimizer_for(model, hp)
    total_steps = hp.epochs * len(train_loader)
    scheduler = get_linear_schedule_with_warmup(optimizer, math.ceil(hp.warmup_ratio * total_steps), total_steps)

    events.append(
        "started", pid=os.getpid(), device=device_name(device), train_examples=len(splits.train_texts),
        validation_examples=len(splits.validation_texts), total_steps=total_steps, labels=splits.label_names,
    )
    log.info("training on %s: %d steps", device_name(device), total_steps)

    reporter = ProgressReporter(events, total_steps)
    history: list[dict[str, Any]] = []
    details: dict[str, Any] = {}
    step = 0
    model.train()
    for epoch in range(1, hp.epochs + 1):
        epoch_loss = 0.0
        for i, batch in enumerate(train_loader):
            check_stop()
            batch = {k: v.to(device) for k, v in batch.items()}
            loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), hp.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            epoch_loss += loss.item()
            reporter.step(epoch, step, loss.item(), scheduler.get_last_lr()[0], epoch_end=i == len(train_loader) - 1)

        val_loss, predictions, references = evaluate(model, val_loader, device)
        details = classification_metrics(references, predictions, splits.label_names)
        row = {
            "epoch": epoch, "step": step, "train_loss": epoch_loss / len(train_loader), "validation_loss": val_loss,
            "accuracy": details["accuracy"], "weighted_f1": details["weighted_f1"], "macro_f1": details["macro_f1"],
        }
        history.append(row)
        events.append("metrics", **row)
        log.info("epoch %d/%d: validation accuracy %.4f, loss %.4f", epoch, hp.epochs, row["accuracy"], val_loss)

    check_stop()
    summary = _summary(history[-1], splits)
    metrics = {
        "summary": summary,
        "history": history,
        "per_class": details["per_class"],
        "confusion_matrix": details["confusion_matrix"],
        "labels": splits.label_names,
        "label_counts": splits.label_counts(),
        "majority_baseline_accuracy": summary["majority_baseline_accuracy"],
        "hyperparameters": hp.to_dict(),
    }
    card = artifact.model_card(spec["model"], splits.label_names, summary, hp.to_dict())
    artifact.write_model_dir(paths.model, model, tokenizer, splits.label_names, metrics, card)
    digest = artifact.pack(paths)
    log.info("artifact packed: sha256 %s", digest)
    return summary


def _summary(last: dict[str, Any], splits: Splits) -> dict[str, Any]:
    return {
        **last,
        "majority_baseline_accuracy": majority_baseline_accuracy(splits.train_labels, splits.validation_labels),
        "train_examples": len(splits.train_texts),
        "validation_examples": len(splits.validation_texts),
    }
