"""The neural families' training, in the order of transformers' run_glue_no_trainer.py: seed, model,
loaders, optimizer (no decay on biases and norms), schedule, resume, loop with per-epoch validation,
best checkpoint, early stopping and a checkpoint of the training state, final evaluation of the best
checkpoint on the test split (else validation), save, pack. pipeline.py has done the data step before.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from collections.abc import Callable
from typing import Any

import torch
from torch.utils.data import DataLoader
from transformers import set_seed
from transformers.utils import logging as hf_logging

from makam_worker.events import EventLog
from makam_worker.layout import RunPaths
from makam_worker.run_spec import RunSpec
from makam_worker.training import augment, spans, distributed, report, textprep, trackers, train_state
from makam_worker.training.train_state import LoopState, Resume, restore, snapshot
from makam_worker.training.common import Log, data_warnings
from makam_worker.training.config import Hyperparameters
from makam_worker.training.data import Splits
from makam_worker.training.errors import TrainingError
from makam_worker.training.family import BuildContext, Built
from makam_worker.training.losses import ClassificationLoss, balanced_weights, label_weight_vector
from makam_worker.training.metrics import classification_metrics, evaluation_report
from makam_worker.training.throughput import Meter
from makam_worker.training.steps import (  # noqa: F401  (refit.py and tests use them as trainer.*)
    AMP_DTYPES, NORM_NAMES, PROGRESS_INTERVAL_S, SCHEDULES, EpochShuffle, ProgressReporter, autocast, optimizer_for,
    scheduler_for, special_affixes, windows,
)

COMPILE_OPTIONS: dict[str, Any] = {}  # torch.compile's defaults (inductor); tests trace with the eager backend


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


def resolve_precision(requested: str, device: torch.device) -> str:
    """"auto" is bf16 on CUDA that supports it, else fp32; fp16 needs CUDA (its scaler is CUDA's);
    bf16 on CPU runs under CPU autocast."""
    cuda = device.type == "cuda"
    bf16_ok = cuda and torch.cuda.is_bf16_supported()
    if requested == "auto":
        return "bf16" if bf16_ok else "fp32"
    if requested == "fp16" and not cuda:
        raise TrainingError("precision_unsupported",
                            f"precision fp16 needs a CUDA device and this run is on {device.type}; use bf16 or fp32")
    if requested == "bf16" and cuda and not bf16_ok:
        raise TrainingError("precision_unsupported", "this GPU does not support bf16; use fp16 or fp32")
    return requested


# --- tokens -------------------------------------------------------------------------------------


# textprep.py is shipped in every artifact and its model card's loader calls textprep.encode: the
# loop truncates with the very same code, so the artifact predicts what the run evaluated.
truncate = textprep.truncate


class TextEncoder:
    """Texts to model input ids (textprep.encode_ids): tokenized without special tokens, truncated
    to the budget the special tokens leave, then wrapped in them."""

    def __init__(self, tokenizer: Any, max_length: int, truncation: str) -> None:
        self.tokenizer = tokenizer
        self.prefix, self.suffix = special_affixes(tokenizer)
        self.budget = max_length - len(self.prefix) - len(self.suffix)
        self.max_length = max_length
        self.truncation = truncation
        if self.budget < 1:
            raise TrainingError("invalid_hyperparameters", f"max_length {max_length} leaves no room for text")

    def __call__(self, texts: list[str]) -> tuple[list[list[int]], int]:
        """The input ids of each text, and how many texts were truncated."""
        return textprep.encode_ids(self.tokenizer, texts, self.max_length, self.truncation)


def collate(rows: list[tuple[int, list[int], int]], pad_token_id: int, multiple_of: int = 1,
            max_width: int | None = None, char_ngrams: list[list[int]] | None = None) -> dict[str, torch.Tensor]:
    """Dynamic padding: each batch is as long as its longest text, rounded up to a multiple of
    `multiple_of` (8 on CUDA, where tensor-core tiles want it) but never past `max_width` (the
    model's positions), padded on the right. With `char_ngrams` (per text, by row index) also
    `char_ngram_ids`, padded as textprep.encode pads them."""
    longest = max(len(ids) for _, ids, _ in rows)
    width = -(-longest // multiple_of) * multiple_of
    if max_width is not None:
        width = max(longest, min(width, max_width))
    input_ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for r, (_, ids, _) in enumerate(rows):
        input_ids[r, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        attention_mask[r, : len(ids)] = 1
    batch = {
        "index": torch.tensor([i for i, _, _ in rows]),
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "labels": torch.tensor([label for _, _, label in rows]),
    }
    if char_ngrams is not None:
        batch["char_ngram_ids"] = torch.tensor(textprep.pad_char_ngrams([char_ngrams[i] for i, _, _ in rows]),
                                               dtype=torch.long)
    return batch


def loader(ids: list[list[int]], labels: list[int], batch_size: int, pad_token_id: int, *,
           shuffle: bool, seed: int = 0, group_by_length: bool = False, multiple_of: int = 1,
           max_width: int | None = None, pin_memory: bool = False) -> DataLoader:
    """Batches of (index, ids, label) rows: shuffled per epoch by an EpochShuffle (call its
    set_epoch; length-grouped with `group_by_length`), or else sorted by length. Collated one batch
    at a time as the loop asks (see `collate` for the padding); pinned for non_blocking copies on CUDA."""
    rows = [(i, x, y) for i, (x, y) in enumerate(zip(ids, labels))]
    if not shuffle:
        rows.sort(key=lambda row: len(row[1]))  # less padding; predictions are put back in order
    lengths = [len(x) for x in ids] if group_by_length else None
    char_ngrams = getattr(ids, "char_ngrams", None)  # textprep.EncodedIds of a model with the n-gram branch
    return DataLoader(
        rows, batch_size=batch_size, sampler=distributed.shard(EpochShuffle(len(rows), seed, lengths, batch_size * distributed.world_size())) if shuffle else None,
        collate_fn=lambda b: collate(b, pad_token_id, multiple_of, max_width, char_ngrams), pin_memory=pin_memory,
    )


# --- optimisation -------------------------------------------------------------------------------


def loss_for(hp: Hyperparameters, splits: Splits) -> ClassificationLoss:
    names = splits.label_names
    try:
        alpha = label_weight_vector(hp.label_weights("focal_alpha", names), names)
        if hp.class_weights == "balanced":
            weights = balanced_weights(splits.train_labels, len(names))
        else:
            weights = label_weight_vector(hp.label_weights("class_weights", names), names)
    except ValueError as e:
        raise TrainingError("invalid_hyperparameters", str(e)) from None
    return ClassificationLoss(
        len(names), kind=hp.loss, label_smoothing=hp.label_smoothing, focal_gamma=hp.focal_gamma,
        focal_alpha=alpha, class_weights=weights,
    )


def model_inputs(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor | None]:
    """The model's inputs on `device` (non_blocking: pinned batches copy while the GPU works). A batch
    without padding goes without its mask, which is known here on the host: the models then skip the
    mask (flash attention on CUDA) without a device-side `mask.all()` check, a host sync per step."""
    mask = batch["attention_mask"]
    inputs = {"input_ids": batch["input_ids"].to(device, non_blocking=True),
              "attention_mask": None if bool(mask.all()) else mask.to(device, non_blocking=True)}
    if "char_ngram_ids" in batch:
        inputs["char_ngram_ids"] = batch["char_ngram_ids"].to(device, non_blocking=True)
    return inputs


def train_step(
    model: torch.nn.Module,
    window: list[dict[str, torch.Tensor]],
    loss_fn: ClassificationLoss,
    optimizer: torch.optim.Optimizer,
    *,
    device: torch.device,
    precision: str = "fp32",
    max_grad_norm: float = 0.0,
    scaler: Any = None,
    scheduler: Any = None,
) -> torch.Tensor | None:
    """One optimizer step over the micro-batches of `window`: each micro-batch's loss is divided by
    the denominator of the whole window, so k micro-batches give the gradient of one batch k times
    larger. Gradients stay in .grad until the next step (zeroed at its start). Returns the window's
    loss as a tensor on the device (read it with .item() only when it is logged: each read waits for
    the GPU), or None when its denominator is 0 (every example weighs 0) and no step was taken."""
    optimizer.zero_grad(set_to_none=True)
    # Under DDP (distributed.py) the denominator is the whole step's, over every rank's micro-batches.
    denominator = distributed.global_denominator(model, sum(float(loss_fn.denominator(b["labels"])) for b in window))
    replicas = distributed.replicas(model)  # DDP averages the ranks' gradients; this undoes the mean
    if denominator <= 0:
        return None
    total = torch.zeros((), device=device, dtype=torch.float64)  # float64: the sum a Python float made
    for batch in window:
        labels = batch["labels"].to(device, non_blocking=True)
        with autocast(device, precision):
            logits = model(**model_inputs(batch, device)).logits
        numerator, _ = loss_fn.terms(logits, labels)
        loss = numerator.sum() / denominator
        (scaler.scale(loss * replicas) if scaler is not None else loss * replicas).backward()
        total += loss.detach()
    if scaler is not None:
        scaler.unscale_(optimizer)
    if max_grad_norm > 0:
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], max_grad_norm)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    if scheduler is not None:
        scheduler.step()
    return distributed.global_loss(model, total)


@torch.no_grad()
def evaluate(model: torch.nn.Module, data: DataLoader, device: torch.device, precision: str = "fp32") -> tuple[
    float, list[int], list[int]
]:
    """Mean plain cross-entropy per example (no smoothing or weights, comparable across losses),
    predictions and references, in the split's order."""
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    indices, predicted, reference = [], [], []
    for batch in data:
        labels = batch["labels"].to(device, non_blocking=True)
        with autocast(device, precision):
            logits = model(**model_inputs(batch, device)).logits
        loss_sum += torch.nn.functional.cross_entropy(logits.float(), labels, reduction="sum")
        indices.append(batch["index"])
        predicted.append(logits.argmax(dim=-1))  # kept on the device: one host sync for the whole split
        reference.append(batch["labels"])
    model.train(was_training)
    order = torch.cat(indices).argsort()
    count = int(order.numel())
    return (float(loss_sum) / count, torch.cat(predicted).cpu()[order].tolist(),
            torch.cat(reference)[order].tolist())


@torch.no_grad()
def probabilities(model: torch.nn.Module, data: DataLoader, device: torch.device, precision: str = "fp32") -> torch.Tensor:
    """softmax of the logits, (examples, labels) in float64 on the CPU, in the split's order: what
    ensemble_members.py computes from the saved model."""
    was_training = model.training
    model.eval()
    indices, rows = [], []
    for batch in data:
        with autocast(device, precision):
            logits = model(**model_inputs(batch, device)).logits
        rows.append(torch.softmax(logits.float(), dim=-1).double().cpu())
        indices.append(batch["index"])
    model.train(was_training)
    return torch.cat(rows)[torch.cat(indices).argsort()]


def improved(metric: str, value: float, best: float | None) -> bool:
    if best is None:
        return True
    return value < best if metric == "validation_loss" else value > best


# --- the run ------------------------------------------------------------------------------------


def _builder(family: str) -> Callable[[dict[str, Any], BuildContext], Built]:
    if family == "encoder":
        from makam_worker.training.families.encoder import build
    elif family == "decoder":
        from makam_worker.training.families.decoder import build
    elif family == "scratch":
        from makam_worker.training.families.scratch import build
    else:
        raise TrainingError("invalid_model", f"unknown model family {family!r}")
    return build


def _pretraining_note(hp: Hyperparameters, splits: Splits, loop: LoopState) -> str:
    if not hp.mlm_epochs:
        return ""
    from makam_worker.training import mlm

    return mlm.describe(hp, splits, loop.mlm_history)


def train_neural(
    paths: RunPaths, spec: RunSpec, hp: Hyperparameters, splits: Splits, events: EventLog,
    check_stop: Callable[[], None], log: Log,
    refit: Callable[[BuildContext, LoopState, Meter, Resume | None], tuple[Built, dict[str, Any]]] | None = None,
    tracker: trackers.Tracker | None = None,
) -> dict:
    rank_alone_stop = distributed.alone(check_stop)  # for the export, which rank 0 does by itself
    tracker = tracker or trackers.Tracker()  # pipeline.py opens the run's tracker; report.finish finishes it
    hf_logging.disable_progress_bar()  # tqdm bars would fill train.log
    hf_logging.set_verbosity_error()  # "sequence longer than the model's maximum": we truncate ourselves
    set_seed(hp.seed)
    device = pick_device()
    precision = resolve_precision(hp.precision, device)
    loss_fn = loss_for(hp, splits)
    # Checked against this run before anything is built: another family, labels or model fails here.
    resume = Resume.open(paths, spec, hp, splits) if spec.resume_checkpoint_sha256 else None
    meter = Meter(device)
    meter.start()  # peak memory counts from just before the model is built
    ctx = BuildContext(hp=hp, splits=splits, device=device, precision=precision, work_dir=paths.work, log=log,
                       resume_dir=resume.derived if resume is not None and not resume.refit else None)
    with spans.phase("model and tokenizer", family=hp.family):
        built = _builder(hp.family)(spec.model, ctx)
    model = built.model
    check_stop()

    text_encoder = TextEncoder(built.tokenizer, built.max_length, hp.truncation)
    with spans.phase("tokenizer", max_length=built.max_length):
        train_ids, train_truncated = text_encoder(splits.train_texts)
        val_ids, _ = text_encoder(splits.validation_texts)
        test_ids, _ = text_encoder(splits.test_texts) if splits.has_test else ([], 0)
    pad = built.pad_token_id
    cuda = device.type == "cuda"
    batching = {"multiple_of": 8 if cuda else 1, "max_width": built.max_length, "pin_memory": cuda}
    train_loader = loader(train_ids, splits.train_labels, hp.batch_size, pad, shuffle=True, seed=hp.seed,
                          group_by_length=hp.group_by_length, **batching)
    val_loader = loader(val_ids, splits.validation_labels, hp.batch_size, pad, shuffle=False, **batching)
    augmenter = augment.for_run(hp, built.tokenizer)
    # From the lengths, not from the batches: the epoch's windows are streamed, never all held at once.
    steps_per_epoch = math.ceil(len(train_loader) / hp.gradient_accumulation_steps)
    total_steps = hp.epochs * steps_per_epoch
    if hp.compile:
        # In place (nn.Module.compile), so state_dict keys, checkpoints and the export stay as they are.
        model.compile(**COMPILE_OPTIONS)
    optimizer = optimizer_for(model, hp, device)
    scheduler = scheduler_for(optimizer, hp, total_steps)
    scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None

    loop, notes = LoopState(), []
    # A checkpoint of the masked-LM phase (mlm.py): that phase goes on, and fine-tuning starts afresh after it.
    in_mlm = resume is not None and resume.meta.get("phase") == "mlm"
    if resume is not None and resume.refit:
        loop = resume.first_pass()  # the first pass had ended: refit.py goes on with the refit
    elif resume is not None and not in_mlm:
        # Last before the loop: it also sets the random generators as they were after epoch k.
        loop, notes = resume.restore(model=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler, meter=meter,
                                     device=device, steps_per_epoch=steps_per_epoch, total_steps=total_steps)
    events.append(
        "started", pid=os.getpid(), device=device_name(device), train_examples=len(splits.train_texts),
        validation_examples=len(splits.validation_texts), test_examples=len(splits.test_texts),
        total_steps=total_steps, labels=splits.label_names,
        resumed_from_epoch=resume.epoch if resume is not None and resume.refit else loop.epoch,
    )
    for note in data_warnings(hp, splits) + built.notes + notes:
        events.append("log", level="warning", message=note)
    if in_mlm:
        events.append("log", level="info", message=(
            f"resumed from a checkpoint of the masked-LM phase, after {resume.meta.get('mlm_epoch', 'some')} of "
            f"{hp.mlm_epochs} MLM epoch(s): the phase goes on, then fine-tuning"))
    elif resume is not None and not resume.refit:
        events.append("log", level="info", message=(
            f"resumed from the checkpoint of epoch {loop.epoch} (step {loop.step}); training goes on at epoch "
            f"{loop.epoch + 1}" if loop.epoch < hp.epochs and not loop.stopped_early else
            f"resumed from the checkpoint of epoch {loop.epoch}, where training had ended: evaluating and exporting"))
    log.info("training %s on %s in %s: %d steps, %d of %d training texts truncated to %d tokens",
             hp.family, device_name(device), precision, total_steps, train_truncated, len(train_ids), built.max_length)

    reporter = ProgressReporter(events, total_steps)
    checkpoint_meta = {
        "family": hp.family, "model": spec.model.to_dict(), "labels": splits.label_names, "total_steps": total_steps,
        "steps_per_epoch": steps_per_epoch, "precision": precision,
    }
    # Every checkpoint_every_epochs epochs or minutes and after the last, written in the background; one
    # writer for the masked-LM phase and fine-tuning, so the minutes count across both.
    checkpoints = train_state.CheckpointWriter(paths, events, log, every_epochs=hp.checkpoint_every_epochs,
                                               every_minutes=hp.checkpoint_every_minutes)
    loop_began = time.monotonic()
    if hp.mlm_epochs and (resume is None or in_mlm):  # not after it: a fine-tune checkpoint holds its result
        from makam_worker.training import mlm

        mlm.pretrain(paths, spec.model, hp, splits, built, events, check_stop, log, device=device, precision=precision,
                     loop=loop, meta=checkpoint_meta, meter=meter, resume=resume if in_mlm else None,
                     checkpoints=checkpoints)
    check_stop = checkpoints.guard(check_stop)
    model.train()
    trained = distributed.wrap(model, device)  # DDP in a run of several devices; checkpoints keep `model`
    for epoch in range(loop.epoch + 1, hp.epochs + 1):
        if loop.stopped_early:
            break
        epoch_loss, epoch_steps = 0.0, 0
        epoch_span = spans.begin("epoch", epoch=epoch)
        meter.resume()
        if augmenter is not None:  # the epoch's own draw of the training texts (augment.py), the same on a resume
            train_loader = loader(text_encoder(augmenter.texts(splits.train_texts, epoch))[0], splits.train_labels,
                                  hp.batch_size, pad, shuffle=True, seed=hp.seed, group_by_length=hp.group_by_length,
                                  **batching)
        train_loader.sampler.set_epoch(epoch)
        for i, window in enumerate(windows(train_loader, hp.gradient_accumulation_steps)):
            checkpoints.poll()
            check_stop()
            loss = train_step(trained, window, loss_fn, optimizer, device=device, precision=precision,
                              max_grad_norm=hp.max_grad_norm, scaler=scaler, scheduler=scheduler)
            loop.step += 1
            meter.samples += sum(b["labels"].numel() for b in window)
            meter.tokens += sum(int(b["attention_mask"].sum()) for b in window)
            if loss is not None:
                epoch_loss += loss
                epoch_steps += 1
            reporter.step(epoch, loop.step, loss if loss is not None else 0.0, scheduler.get_last_lr()[0],
                          epoch_end=i == steps_per_epoch - 1)
            tracker.step(loop.step, loss, scheduler.get_last_lr()[0])
        meter.pause()
        if epoch_span is not None:
            epoch_span.end(step=loop.step)
        checkpoints.wait()  # the last epoch's write: its event comes before this epoch's metrics
        check_stop()

        with spans.phase("evaluation", epoch=epoch, split="validation"):
            val_loss, predictions, references = evaluate(model, val_loader, device, precision)
        scores = classification_metrics(references, predictions, splits.label_names)
        row = {
            "epoch": epoch, "step": loop.step, "train_loss": float(epoch_loss) / max(epoch_steps, 1), "validation_loss": val_loss,
            "accuracy": scores["accuracy"], "weighted_f1": scores["weighted_f1"], "macro_f1": scores["macro_f1"],
        }
        loop.epoch = epoch
        loop.history.append(row)
        events.append("metrics", **row)
        tracker.epoch(epoch, loop.step, row)
        log.info("epoch %d/%d: validation accuracy %.4f, macro F1 %.4f, loss %.4f",
                 epoch, hp.epochs, row["accuracy"], row["macro_f1"], val_loss)
        value = row[hp.metric_for_best_model]
        if improved(hp.metric_for_best_model, value, loop.best_value):
            loop.best_value, loop.best_epoch, loop.best_row = value, epoch, row
            loop.best_weights = snapshot(model)
            loop.since_best = 0
        else:
            loop.since_best += 1
            if hp.early_stopping_patience and loop.since_best >= hp.early_stopping_patience and epoch < hp.epochs:
                loop.stopped_early = True
                events.append("log", level="info", message=(
                    f"early stopping after epoch {epoch}: {hp.metric_for_best_model} has not improved for "
                    f"{loop.since_best} epoch(s); the best epoch is {loop.best_epoch}"))
        if checkpoints.due(epoch, last=epoch == hp.epochs or loop.stopped_early):
            checkpoints.save(meta=checkpoint_meta, derived=built.derived, model=model, optimizer=optimizer,
                             scheduler=scheduler, scaler=scaler, loop=loop, meter=meter, device=device)
    checkpoints.wait()
    checkpoints.report(time.monotonic() - loop_began)
    check_stop()

    restore(model, loop.best_weights)
    refitted = None
    if refit is not None and not (resume is not None and resume.refit):
        # Kept for ensembles: the refit model's own validation predictions would be of texts it learnt.
        from makam_worker.training.first_pass import FIRST_PASS_VALIDATION, keep_first_pass

        keep_first_pass(ctx.work_dir / FIRST_PASS_VALIDATION,
                        probabilities(model, val_loader, device, precision).numpy(), splits)
    if refit is not None:
        # refit.py: a fresh model on train + validation for the best epoch's count replaces this one, which
        # is let go first (a GPU may not hold both).
        del built, model, optimizer, scheduler
        loop.best_weights = None
        with spans.phase("refit", epochs=loop.best_epoch):
            built, refitted = refit(ctx, loop, meter, resume if resume is not None and resume.refit else None)
        model, pad = built.model, built.pad_token_id
        test_ids, _ = TextEncoder(built.tokenizer, built.max_length, hp.truncation)(splits.test_texts)
    with spans.phase("evaluation", split="test" if splits.has_test else "validation", final=True):
        if splits.has_test:
            test_loader = loader(test_ids, splits.test_labels, hp.batch_size, pad, shuffle=False, **batching)
            split, (eval_loss, predictions, references) = "test", evaluate(model, test_loader, device, precision)
        else:
            split, (eval_loss, predictions, references) = "validation", evaluate(model, val_loader, device, precision)
    final = evaluation_report(split, references, predictions, splits.label_names, splits.train_labels, eval_loss)
    throughput = distributed.global_throughput(meter.report(device_name(device), precision=precision))  # every rank's samples
    check_stop()

    if hp.truncation == "tail":  # saved with the tokenizer, so loaders truncate as training did
        built.tokenizer.truncation_side = "left"
        built.tokenizer.init_kwargs["truncation_side"] = "left"
    paths.model.mkdir(parents=True, exist_ok=True)
    built.save(paths.model)
    if refitted is not None and refitted.get("validation_probabilities"):
        shutil.copyfile(ctx.work_dir / refitted["validation_probabilities"], paths.model / refitted["validation_probabilities"])
    onnx = None
    if hp.export_onnx and distributed.rank() == 0:  # last: it merges a LoRA model and moves it to the CPU in fp32
        from makam_worker.training import export_onnx

        onnx = export_onnx.export(model, built.tokenizer, paths.model, split=split, max_length=built.max_length,
                                  texts=splits.test_texts if split == "test" else splits.validation_texts,
                                  truncation=hp.truncation, batch_size=hp.batch_size, log=log, check_stop=rank_alone_stop)
    return report.finish(
        paths, spec, hp, splits, events, log,
        history=loop.history, best_epoch=loop.best_epoch, best_row=loop.best_row, stopped_early=loop.stopped_early,
        evaluation=final, throughput=throughput, source=built.source + _pretraining_note(hp, splits, loop),
        loading=built.loading,
        model_info={**built.info, "max_length": built.max_length, "train_texts_truncated": train_truncated,
                    **({"mlm_history": loop.mlm_history} if hp.mlm_epochs else {})},
        refit=refitted, onnx=onnx, tracker=tracker,
    )
