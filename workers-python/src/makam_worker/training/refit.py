"""The final refit (hyperparameter `refit`): once validation has chosen the number of epochs (the
best epoch of the first pass), a fresh model is trained with the run's seed on train + validation for
that many epochs, evaluated on the test split and shipped in place of the first pass's model, so every
family's shipped model learns from all the labelled data that the test split does not hold out.

Only with a test split: without one, the refit model would have no data left to be measured on
(pipeline.py then passes no refit and the report says so). The refit has no validation split, so the
report keeps the first pass's validation figures and says how the shipped model was trained
(`summary`). tfidf refits in families/tfidf.py (its one fit is its one "epoch").

The neural refit is the loop of trainer.py without validation, checkpoints or early stopping: a
fresh build (the tokenizer, when the family learns one, is learnt on the refit's texts), a schedule
over the refit's own steps, as a run with `epochs` set to the chosen count would have. It is not
checkpointed: a run resumed after its first pass trains the refit again, the same for the same seed.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from makam_worker.events import EventLog
from makam_worker.run_spec import ModelSpec
from makam_worker.training.data import Splits

if TYPE_CHECKING:  # torch's: tfidf imports this module for `merged` and `summary` and never loads torch
    from makam_worker.training.family import BuildContext, Built
    from makam_worker.training.throughput import Meter


def merged(splits: Splits) -> Splits:
    """The splits as the refit sees them: train + validation to train on, no validation."""
    return dataclasses.replace(
        splits, train_texts=splits.train_texts + splits.validation_texts,
        train_labels=splits.train_labels + splits.validation_labels, validation_texts=[], validation_labels=[],
    )


def summary(splits: Splits, epochs: int, **extra: Any) -> dict[str, Any]:
    """What the report says of a refit (final_metrics.refit)."""
    return {
        "trained_on": "train+validation",
        "rows": len(splits.train_texts) + len(splits.validation_texts),
        "train_rows": len(splits.train_texts),
        "validation_rows": len(splits.validation_texts),
        "epochs": epochs,
        **extra,
    }


def train_refit(
    model_spec: ModelSpec, events: EventLog, check_stop: Callable[[], None],
    ctx: BuildContext, epochs: int, meter: Meter,
) -> tuple[Built, dict[str, Any]]:
    """Builds and trains the refit model; returns it (on ctx.device, in eval mode) and its `summary`."""
    import torch
    from transformers import set_seed

    from makam_worker.training import augment, distributed, trainer

    hp, device, precision = ctx.hp, ctx.device, ctx.precision
    data = merged(ctx.splits)
    set_seed(hp.seed)  # the fresh model starts as the first pass's did
    refit_ctx = dataclasses.replace(ctx, splits=data, work_dir=ctx.work_dir / "refit", resume_dir=None)
    refit_ctx.work_dir.mkdir(parents=True, exist_ok=True)
    built = trainer._builder(hp.family)(model_spec, refit_ctx)
    model = built.model
    check_stop()
    if hp.mlm_epochs and refit_ctx.resume_dir is None:  # its own masked-LM phase on its texts (mlm.py); a refit checkpoint holds its result
        from makam_worker.training import mlm

        mlm.pretrain(None, model_spec, hp, data, built, None, check_stop, ctx.log, device=device, precision=precision,
                     loop=LoopState())

    encode = trainer.TextEncoder(built.tokenizer, built.max_length, hp.truncation)
    ids, truncated = encode(data.train_texts)
    cuda = device.type == "cuda"
    batching = {"multiple_of": 8 if cuda else 1, "max_width": built.max_length, "pin_memory": cuda}
    train_loader = trainer.loader(ids, data.train_labels, hp.batch_size, built.pad_token_id, shuffle=True,
                                  seed=hp.seed, group_by_length=hp.group_by_length, **batching)
    augmenter = augment.for_run(hp, built.tokenizer)
    steps_per_epoch = math.ceil(len(train_loader) / hp.gradient_accumulation_steps)
    if hp.compile:
        model.compile(**trainer.COMPILE_OPTIONS)
    loss_fn = trainer.loss_for(hp, data)  # "balanced" class weights counted on the refit's rows
    optimizer = trainer.optimizer_for(model, hp, device)
    scheduler = trainer.scheduler_for(optimizer, hp, epochs * steps_per_epoch)
    scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None
    events.append("log", level="info", message=(
        f"refit: a fresh model on train + validation ({len(ids)} rows) for {epochs} epoch(s), the best validation "
        f"epoch of the first pass; it is evaluated on test and shipped"))
    for note in built.notes:
        events.append("log", level="warning", message=f"refit: {note}")

    model.train()
    trained = distributed.wrap(model, device)  # DDP in a run of several devices (distributed.py)
    losses: list[float] = []
    for epoch in range(1, epochs + 1):
        epoch_loss, epoch_steps = 0.0, 0
        meter.resume()
        if augmenter is not None:  # as in the first pass (augment.py)
            train_loader = trainer.loader(encode(augmenter.texts(data.train_texts, epoch))[0], data.train_labels,
                                          hp.batch_size, built.pad_token_id, shuffle=True, seed=hp.seed,
                                          group_by_length=hp.group_by_length, **batching)
        train_loader.sampler.set_epoch(epoch)
        for window in trainer.windows(train_loader, hp.gradient_accumulation_steps):
            check_stop()
            loss = trainer.train_step(trained, window, loss_fn, optimizer, device=device, precision=precision,
                                      max_grad_norm=hp.max_grad_norm, scaler=scaler, scheduler=scheduler)
            meter.samples += sum(b["labels"].numel() for b in window)
            meter.tokens += sum(int(b["attention_mask"].sum()) for b in window)
            if loss is not None:
                epoch_loss += loss
                epoch_steps += 1
        meter.pause()
        losses.append(float(epoch_loss) / max(epoch_steps, 1))
        events.append("log", level="info", message=f"refit: epoch {epoch}/{epochs}, train loss {losses[-1]:.4f}")
    model.eval()
    return built, summary(ctx.splits, epochs, train_loss=losses[-1] if losses else None,
                          train_texts_truncated=truncated)
