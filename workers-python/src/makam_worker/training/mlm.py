"""The masked-language-model phase of a fine-tune (mlm_epochs > 0; the `encoder` and `scratch` families):
before the classifier is trained, its encoder learns the users' own text by predicting masked tokens,
so a transformer without pretrained weights starts from more than random.

- Texts: the training split's plus the unlabeled dataset's (`texts_for`), never validation or test.
  The family's tokenizer was learnt on the same texts (Splits.tokenizer_texts). Each text is read
  whole: its tokens are cut into pieces of max_length, each wrapped in the special tokens.
- Masking: transformers' DataCollatorForLanguageModeling (mlm_probability of the tokens; of those 80%
  become the mask token, 10% a random token, 10% stay), drawn from the global generators, which the
  checkpoints carry, so a resumed phase masks as the uninterrupted one would.
- Models: `encoder` uses the matching *ForMaskedLM class (AutoModelForMaskedLM from the same config,
  or from the same pretrained weights with their own MLM head), whose encoder starts from the
  classifier's and is copied back into it when the phase ends; `scratch` gets an MLM head
  (ScratchForMaskedLM, tied to the input embeddings) around the classifier's own encoder, used only
  here and never shipped.
- Optimisation: AdamW as the fine-tune's, at mlm_learning_rate (else learning_rate), with warmup and
  a linear decay over the phase's own steps.
- Events: `progress` events with phase "mlm" at the fine-tune's cadence (steps.ProgressReporter;
  epoch, step and total_steps count the phase's own), so a long phase does not look frozen; after
  each epoch a `metrics` event with phase "mlm" and mlm_loss (the mean masked-token cross-entropy of
  the epoch's steps) and, at the run's checkpoint cadence (checkpoint_every_epochs or _minutes, and
  after the phase's last epoch, through train_state.CheckpointWriter), a checkpoint (meta phase "mlm",
  epoch 0 of fine-tuning); a run resumed from one goes on in this phase. The refit's own phase
  (refit.py) sends `progress` events with phase "refit_mlm" (its own epochs and steps) and, per epoch,
  a `log` line, as the refit's fine-tuning does: a `metrics` row would land in the job's series
  beside the first pass's MLM epochs of the same numbers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from transformers import DataCollatorForLanguageModeling, get_linear_schedule_with_warmup
from transformers.modeling_outputs import MaskedLMOutput

from makam_worker.events import EventLog
from makam_worker.layout import RunPaths
from makam_worker.run_spec import ModelSpec
from makam_worker.training.common import Log
from makam_worker.training.config import Hyperparameters
from makam_worker.training.data import Splits
from makam_worker.training.errors import TrainingError
from makam_worker.training.family import Built
from makam_worker.training.train_state import CheckpointWriter, LoopState, Resume

PHASE = "mlm"
REFIT_PHASE = "refit_mlm"


def texts_for(splits: Splits) -> list[str]:
    """What the phase reads: the training split and the unlabeled texts, never validation or test."""
    return splits.train_texts + splits.unlabeled_texts


class ScratchForMaskedLM(nn.Module):
    """BERT's MLM head (dense, GELU, LayerNorm, then a decoder tied to the input embeddings) on the
    scratch classifier's encoder (MakamScratchForSequenceClassification.encode)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        config = model.config
        d = config.hidden_size
        self.model = model
        self.transform = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.LayerNorm(d, eps=config.layer_norm_eps))
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))
        nn.init.normal_(self.transform[0].weight, std=config.initializer_range)
        nn.init.zeros_(self.transform[0].bias)
        self.to(next(model.parameters()).device)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None) -> MaskedLMOutput:
        """With `labels`, the head runs at the masked positions only (labels != -100, ~mlm_probability
        of them): `logits` is (masked tokens, vocab_size), in the order of labels[labels != -100], and
        `loss` their mean cross-entropy, as over every position with ignore_index. Scoring every
        position on the vocabulary was most of a step's time (bench/mlm_step.py). Without `labels`,
        `logits` is (batch, tokens, vocab_size)."""
        hidden = self.model.encode(input_ids, attention_mask)
        if labels is None:
            return MaskedLMOutput(logits=self.scores(hidden))
        masked = labels != -100
        logits = self.scores(hidden[masked])
        return MaskedLMOutput(loss=F.cross_entropy(logits.float(), labels[masked]), logits=logits)

    def scores(self, hidden: torch.Tensor) -> torch.Tensor:
        """The vocabulary's logits for hidden states of any leading shape."""
        return F.linear(self.transform(hidden), self.model.embeddings.weight, self.bias)


def masked_lm(family: str, model_spec: ModelSpec, model: nn.Module) -> nn.Module:
    """The MLM model of the phase; its encoder starts as the classifier's."""
    if family == "scratch":
        return ScratchForMaskedLM(model)
    if family != "encoder":
        raise TrainingError("invalid_hyperparameters", f"mlm_epochs: the {family} family has no masked-LM phase; "
                            "set mlm_epochs to 0", retryable=False)
    from transformers import AutoModelForMaskedLM

    if model_spec.name:  # the same weights with their own pretrained MLM head
        from makam_worker.training.model_limits import hub_only, resolve_model_name

        source = resolve_model_name(model_spec.name)
        with hub_only() if source.hub else contextlib.nullcontext({}) as where:
            mlm = AutoModelForMaskedLM.from_pretrained(source.location, **where)
    else:
        mlm = AutoModelForMaskedLM.from_config(model.config)
    mlm.to(next(model.parameters()).device)
    _copy_encoder(model, mlm)
    head_at_masked_positions(mlm)
    return mlm


def head_at_masked_positions(mlm: nn.Module) -> nn.Module:
    """Makes a Hugging Face *ForMaskedLM run its MLM head at the masked positions only when called with
    `labels`, as ScratchForMaskedLM does; the same loss and gradients. Their forwards share one shape:
    base model, its first output through a position-wise head, cross-entropy over labels.view(-1) with
    -100 ignored. So a pre-hook keeps labels[labels != -100] (as (1, masked tokens)) and a hook on the
    base model keeps the same positions of its first output: `logits` is (1, masked tokens, vocab).
    Hooks, not a wrapper module: the state dict's names (checkpoints, _copy_encoder) stay the model's."""
    selected: list[torch.Tensor] = []

    def gather_labels(_module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        selected.clear()
        labels = kwargs.get("labels")
        if labels is not None:
            masked = labels != -100
            selected.append(masked)
            kwargs = {**kwargs, "labels": labels[masked].unsqueeze(0)}
        return args, kwargs

    def gather_hidden(_module: nn.Module, _args: tuple, output: Any) -> Any:
        if not selected:
            return output
        masked = selected.pop()
        hidden = output[0]
        if hidden.shape[:2] != masked.shape:  # a base model whose output is not one state a token
            raise TrainingError("invalid_model", f"mlm_epochs: {type(mlm).__name__}'s encoder output "
                                f"{tuple(hidden.shape)} does not match its input {tuple(masked.shape)}; set mlm_epochs to 0",
                                retryable=False)
        hidden = hidden[masked].unsqueeze(0)
        if isinstance(output, tuple):
            return (hidden, *output[1:])
        output[next(iter(output.keys()))] = hidden
        return output

    mlm.register_forward_pre_hook(gather_labels, with_kwargs=True)
    mlm.base_model.register_forward_hook(gather_hidden)
    return mlm


def _copy_encoder(source: nn.Module, target: nn.Module) -> None:
    """The encoder (base model) weights of `source` into `target`. The two heads' base models differ
    only in the pooler, which the MLM model has not; any other difference is a bug, not a skip."""
    missing, unexpected = target.base_model.load_state_dict(source.base_model.state_dict(), strict=False)
    odd = [k for k in missing + unexpected if not k.startswith("pooler.")]
    if odd:
        raise TrainingError("invalid_model", f"the masked-LM model's encoder does not match the classifier's: {odd[:3]}")


def carry_back(family: str, mlm: nn.Module, model: nn.Module) -> None:
    """After the phase, the classifier starts fine-tuning from the pretrained encoder."""
    if family == "encoder":
        _copy_encoder(mlm, model)
    # scratch: ScratchForMaskedLM trained the classifier's own modules


def pieces(tokenizer: Any, texts: list[str], max_length: int) -> list[list[int]]:
    """Each text's tokens in pieces of up to max_length, each wrapped in the tokenizer's special tokens."""
    from makam_worker.training.steps import special_affixes

    prefix, suffix = special_affixes(tokenizer)
    budget = max_length - len(prefix) - len(suffix)
    out = []
    for start in range(0, len(texts), 512):  # bounded memory for the tokenizer's batch
        for ids in tokenizer(list(texts[start: start + 512]), add_special_tokens=False, verbose=False)["input_ids"]:
            out.extend(prefix + ids[i: i + budget] + suffix for i in range(0, len(ids), budget))
    return out


def describe(hp: Hyperparameters, splits: Splits, history: list[dict[str, Any]]) -> str:
    """The model card's line about the phase."""
    last = f", last epoch's MLM loss {history[-1]['mlm_loss']:.4f}" if history else ""
    return (f"; then masked-LM pretraining for {hp.mlm_epochs} epoch(s) on {len(splits.train_texts)} training and "
            f"{len(splits.unlabeled_texts)} unlabeled texts ({hp.mlm_probability:.0%} of tokens masked, 80/10/10; "
            f"learning rate {hp.mlm_learning_rate or hp.learning_rate}{last}) before fine-tuning")


def pretrain(
    paths: RunPaths | None, model_spec: ModelSpec, hp: Hyperparameters, splits: Splits, built: Built, events: EventLog | None,
    check_stop: Callable[[], None], log: Log, *, device: torch.device, precision: str, loop: LoopState,
    meta: dict[str, Any] | None = None, meter: Any = None, resume: Resume | None = None,
    checkpoints: CheckpointWriter | None = None, phase: str = PHASE,
) -> None:
    """Runs the phase from loop.mlm_epoch (0, or where `resume`'s checkpoint ended) to hp.mlm_epochs, in
    place on built.model; progress events, per epoch a metrics event and, with `meta` (and `paths`),
    checkpoints at the run's cadence through `checkpoints` (trainer.py passes the fine-tune's own, so
    checkpoint_every_minutes counts across both) or a writer of its own. `events` None: no events.
    `phase` REFIT_PHASE: the refit's phase (refit.py), with progress events of that phase and a log line
    per epoch instead of a metrics event; not checkpointed (no `meta`)."""
    from makam_worker.training.steps import EpochShuffle, ProgressReporter, autocast, optimizer_for, windows

    tokenizer = built.tokenizer
    if tokenizer.mask_token is None:
        raise TrainingError("invalid_model", "mlm_epochs: the tokenizer has no mask token, so it cannot be "
                            "pretrained as a masked LM; set mlm_epochs to 0", retryable=False)
    mlm = masked_lm(hp.family, model_spec, built.model)
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=hp.mlm_probability,
                                               pad_to_multiple_of=8 if device.type == "cuda" else None)
    data = pieces(tokenizer, texts_for(splits), built.max_length)
    batches = DataLoader(data, batch_size=hp.batch_size, sampler=EpochShuffle(len(data), hp.seed),
                         collate_fn=lambda rows: collator([{"input_ids": ids} for ids in rows]),
                         pin_memory=device.type == "cuda")
    steps_per_epoch = math.ceil(len(batches) / hp.gradient_accumulation_steps)
    total_steps = hp.mlm_epochs * steps_per_epoch
    optimizer = optimizer_for(mlm, dataclasses.replace(hp, learning_rate=hp.mlm_learning_rate or hp.learning_rate),
                                      device)
    warmup = hp.warmup_steps if hp.warmup_steps > 0 else math.ceil(hp.warmup_ratio * total_steps)
    scheduler = get_linear_schedule_with_warmup(optimizer, min(warmup, total_steps), total_steps)
    scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None
    # Resume.restore checks the counts against these (they are the phase's, not the fine-tune's).
    phase_meta = {**(meta or {}), "phase": PHASE, "mlm_epochs": hp.mlm_epochs, "steps_per_epoch": steps_per_epoch,
                  "total_steps": total_steps}
    if resume is not None:
        restored, notes = resume.restore(model=mlm, optimizer=optimizer, scheduler=scheduler, scaler=scaler,
                                         meter=meter, device=device, steps_per_epoch=steps_per_epoch,
                                         total_steps=total_steps)
        loop.mlm_epoch, loop.mlm_step, loop.mlm_history = restored.mlm_epoch, restored.mlm_step, restored.mlm_history
        for note in notes:
            if events is not None:
                events.append("log", level="warning", message=note)
    log.info("masked-LM phase: %d texts in %d pieces, %d steps at learning rate %s, from MLM epoch %d",
             len(texts_for(splits)), len(data), total_steps, hp.mlm_learning_rate or hp.learning_rate, loop.mlm_epoch)

    reporter = ProgressReporter(events, total_steps, phase=phase) if events is not None else None
    if events is None or meta is None or paths is None:
        checkpoints = None
    elif checkpoints is None:
        checkpoints = CheckpointWriter(paths, events, log, every_epochs=hp.checkpoint_every_epochs,
                                       every_minutes=hp.checkpoint_every_minutes)
    if checkpoints is not None:
        check_stop = checkpoints.guard(check_stop)
    mlm.train()
    for epoch in range(loop.mlm_epoch + 1, hp.mlm_epochs + 1):
        batches.sampler.set_epoch(epoch)
        losses = torch.zeros((), device=device, dtype=torch.float64)
        steps = 0
        for i, window in enumerate(windows(batches, hp.gradient_accumulation_steps)):
            if checkpoints is not None:
                checkpoints.poll()
            check_stop()
            window_loss = torch.zeros((), device=device, dtype=torch.float64)
            optimizer.zero_grad(set_to_none=True)
            # A batch the collator masked no token of has no loss (a mean over nothing is NaN, which would
            # be the epoch's reported loss): it is left out. Its labels are still on the host: no sync.
            window = [batch for batch in window if bool((batch["labels"] != -100).any())]
            for batch in window:
                inputs = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
                with autocast(device, precision):
                    loss = mlm(**inputs).loss / len(window)
                (scaler.scale(loss) if scaler is not None else loss).backward()
                window_loss += loss.detach()
            if scaler is not None and window:
                scaler.unscale_(optimizer)
            if hp.max_grad_norm > 0 and window:
                torch.nn.utils.clip_grad_norm_(mlm.parameters(), hp.max_grad_norm)
            if scaler is not None:
                if window:  # GradScaler.step refuses a step with no gradient seen
                    scaler.step(optimizer)
                    scaler.update()
            else:
                optimizer.step()  # with no gradient (grads None) AdamW changes nothing
            scheduler.step()  # the schedule counts steps as planned, so a resumed phase lines up either way
            if window:
                losses += window_loss
                steps += 1
            loop.mlm_step += 1
            if reporter is not None:
                reporter.step(epoch, loop.mlm_step, window_loss, scheduler.get_last_lr()[0],
                              epoch_end=i == steps_per_epoch - 1)
        if checkpoints is not None:
            checkpoints.wait()  # the previous epoch's write: its event comes before this epoch's metrics
        row = {"epoch": epoch, "step": loop.mlm_step, "mlm_loss": float(losses) / max(steps, 1)}
        loop.mlm_epoch = epoch
        loop.mlm_history.append(row)
        log.info("MLM epoch %d/%d: loss %.4f", epoch, hp.mlm_epochs, row["mlm_loss"])
        if events is not None and phase == PHASE:
            events.append("metrics", phase=PHASE, **row)
        elif events is not None:
            events.append("log", level="info", message=f"refit: masked-LM epoch {epoch}/{hp.mlm_epochs}, loss {row['mlm_loss']:.4f}")
        if checkpoints is not None and checkpoints.due(epoch, last=epoch == hp.mlm_epochs):
            checkpoints.save(meta={**phase_meta, "mlm_epoch": epoch}, derived=built.derived, model=mlm,
                             optimizer=optimizer, scheduler=scheduler, scaler=scaler, loop=loop, meter=meter,
                             device=device)
    if checkpoints is not None:
        checkpoints.wait()  # the phase's last write is whole before its model is let go
    check_stop()
    carry_back(hp.family, mlm, built.model)
    del mlm, optimizer, scheduler
    if device.type == "cuda":
        torch.cuda.empty_cache()
