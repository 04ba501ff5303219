"""The final refit (hyperparameter `refit`): once validation has chosen the number of epochs (the
best epoch of the first pass), a fresh model is trained with the run's seed on train + validation for
that many epochs, evaluated on the test split and shipped in place of the first pass's model, so every
family's shipped model learns from all the labelled data that the test split does not hold out.

Only with a test split: without one, the refit model would have no data left to be measured on
(pipeline.py then passes no refit and the report says so). The refit has no validation split, so the
report keeps the first pass's validation figures and says how the shipped model was trained
(`summary`). tfidf refits in families/tfidf.py (its one fit is its one "epoch").

The neural refit is the loop of trainer.py without validation or early stopping: a fresh build (the
tokenizer, when the family learns one, is learnt on the refit's texts), a schedule over the refit's
own steps, as a run with `epochs` set to the chosen count would have. Its progress events and
checkpoints number epochs and steps on from the first pass's (the refit's epoch r of a first pass
of E epochs and S steps is epoch E + r; total_steps is S + the refit's steps), so a job's progress
and its stored checkpoint only move forward. Its checkpoints (meta.json `phase: "refit"`) carry the
refit's training state and the first pass's loop state: a run resumed from one skips the first pass
and goes on with the refit, ending as an uninterrupted run would.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from makam_worker.events import EventLog
from makam_worker.run_spec import ModelSpec
from makam_worker.layout import RunPaths
from makam_worker.training.data import Splits
from makam_worker.training.first_pass import FIRST_PASS_VALIDATION, first_pass_note

if TYPE_CHECKING:  # torch's: tfidf imports this module for `merged` and `summary` and never loads torch
    from makam_worker.training.family import BuildContext, Built
    from makam_worker.training.throughput import Meter
    from makam_worker.training.train_state import LoopState, Resume

PHASE = "refit"


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
    paths: RunPaths, model_spec: ModelSpec, events: EventLog, check_stop: Callable[[], None],
    ctx: BuildContext, first_pass: LoopState, meter: Meter, resume: Resume | None = None,
) -> tuple[Built, dict[str, Any]]:
    """Builds and trains the refit model for the first pass's best epoch count, or goes on with the one
    `resume` (a refit checkpoint) holds; returns it (on ctx.device, in eval mode) and its `summary`."""
    import torch
    from transformers import set_seed

    from makam_worker.training import augment, distributed, trainer
    from makam_worker.training.train_state import CheckpointWriter, LoopState

    hp, device, precision = ctx.hp, ctx.device, ctx.precision
    epochs = first_pass.best_epoch
    data = merged(ctx.splits)
    set_seed(hp.seed)  # the fresh model starts as the first pass's did
    refit_ctx = dataclasses.replace(ctx, splits=data, work_dir=ctx.work_dir / "refit",
                                    resume_dir=resume.derived if resume is not None else None)
    refit_ctx.work_dir.mkdir(parents=True, exist_ok=True)
    first_pass_file = ctx.work_dir / FIRST_PASS_VALIDATION  # trainer.py wrote it; a resumed refit has it in its checkpoint
    if resume is not None and (resume.derived / FIRST_PASS_VALIDATION).is_file():
        import shutil

        shutil.copyfile(resume.derived / FIRST_PASS_VALIDATION, first_pass_file)
    built = trainer._builder(hp.family)(model_spec, refit_ctx)
    if first_pass_file.is_file():
        built.derived[FIRST_PASS_VALIDATION] = first_pass_file
    model = built.model
    check_stop()
    if hp.mlm_epochs and refit_ctx.resume_dir is None:  # its own masked-LM phase on its texts (mlm.py); a refit checkpoint holds its result
        from makam_worker.training import mlm

        mlm.pretrain(None, model_spec, hp, data, built, events, check_stop, ctx.log, device=device, precision=precision,
                     loop=LoopState(), phase=mlm.REFIT_PHASE)

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
    total_steps = epochs * steps_per_epoch
    scheduler = trainer.scheduler_for(optimizer, hp, total_steps)
    scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None
    loop, notes = LoopState(), list(built.notes)
    if resume is not None:  # last before the loop: it also sets the random generators
        loop, resumed = resume.restore(model=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler,
                                       meter=meter, device=device, steps_per_epoch=steps_per_epoch,
                                       total_steps=total_steps)
        notes += resumed
    events.append("log", level="info", message=(
        f"refit: a fresh model on train + validation ({len(ids)} rows) for {epochs} epoch(s), the best validation "
        f"epoch of the first pass; it is evaluated on test and shipped" if resume is None else
        f"refit: resumed from its checkpoint after refit epoch {loop.epoch} of {epochs} (train + validation, "
        f"{len(ids)} rows); the first pass is not trained again"))
    for note in notes:
        events.append("log", level="warning", message=f"refit: {note}")

    # Numbered on from the first pass (the module's docstring says why).
    first_epochs, first_steps = first_pass.epoch, first_pass.step
    reporter = trainer.ProgressReporter(events, first_steps + total_steps, phase=PHASE)
    checkpoint_meta = {
        "phase": PHASE, "family": hp.family, "model": model_spec.to_dict(), "labels": ctx.splits.label_names,
        "total_steps": total_steps, "steps_per_epoch": steps_per_epoch, "precision": precision, "refit_epochs": epochs,
    }
    first_pass_state = {"first_pass": dataclasses.asdict(dataclasses.replace(first_pass, best_weights=None))}
    checkpoints = CheckpointWriter(paths, events, ctx.log, every_epochs=hp.checkpoint_every_epochs,
                                   every_minutes=hp.checkpoint_every_minutes)
    check_stop = checkpoints.guard(check_stop)
    loop_began = time.monotonic()

    model.train()
    trained = distributed.wrap(model, device)  # DDP in a run of several devices (distributed.py)
    for epoch in range(loop.epoch + 1, epochs + 1):
        epoch_loss, epoch_steps = 0.0, 0
        meter.resume()
        if augmenter is not None:  # as in the first pass (augment.py)
            train_loader = trainer.loader(encode(augmenter.texts(data.train_texts, epoch))[0], data.train_labels,
                                          hp.batch_size, built.pad_token_id, shuffle=True, seed=hp.seed,
                                          group_by_length=hp.group_by_length, **batching)
        train_loader.sampler.set_epoch(epoch)
        for i, window in enumerate(trainer.windows(train_loader, hp.gradient_accumulation_steps)):
            checkpoints.poll()
            check_stop()
            loss = trainer.train_step(trained, window, loss_fn, optimizer, device=device, precision=precision,
                                      max_grad_norm=hp.max_grad_norm, scaler=scaler, scheduler=scheduler)
            meter.samples += sum(b["labels"].numel() for b in window)
            meter.tokens += sum(int(b["attention_mask"].sum()) for b in window)
            loop.step += 1
            if loss is not None:
                epoch_loss += loss
                epoch_steps += 1
            reporter.step(first_epochs + epoch, first_steps + loop.step, loss if loss is not None else 0.0,
                          scheduler.get_last_lr()[0], epoch_end=i == steps_per_epoch - 1)
        meter.pause()
        checkpoints.wait()
        check_stop()
        loop.epoch = epoch
        loop.history.append({"epoch": epoch, "step": loop.step, "train_loss": float(epoch_loss) / max(epoch_steps, 1)})
        events.append("log", level="info",
                      message=f"refit: epoch {epoch}/{epochs}, train loss {loop.history[-1]['train_loss']:.4f}")
        if checkpoints.due(epoch, last=epoch == epochs):
            checkpoints.save(meta={**checkpoint_meta, "epoch": first_epochs + epoch, "step": first_steps + loop.step},
                             derived=built.derived, model=model, optimizer=optimizer, scheduler=scheduler,
                             scaler=scaler, loop=loop, meter=meter, device=device, extra=first_pass_state)
    checkpoints.wait()
    checkpoints.report(time.monotonic() - loop_began, prefix="refit: ")
    model.eval()
    kept = first_pass_note(ctx.splits) if first_pass_file.is_file() else {}
    return built, summary(ctx.splits, epochs, train_loss=loop.history[-1]["train_loss"] if loop.history else None,
                          train_texts_truncated=truncated, **kept)
