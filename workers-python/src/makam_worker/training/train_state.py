"""The training state a neural run saves in its checkpoints and a resumed run restores: everything a run
resumed at epoch k+1 needs to go on exactly as the run that saved epoch k would have. trainer.py saves
it at the end of every epoch; the checkpoint file's layout (meta.json, state.pt, derived/) and the
store of uploaded ones are makam_worker/checkpoint_store.py.

state.pt (torch.save, read back with weights_only=True) holds:
- weights: the trainable parameters (all of them for encoder and scratch; LoRA and the head for decoder)
- optimizer, scheduler, scaler: their state_dicts (scaler None without fp16)
- rng: the Python, NumPy, torch CPU and (on CUDA) the training device's generator states
- loop: the LoopState below, with the best epoch's weights only when they are not the current ones
- meter: training samples, tokens and seconds so far, so the throughput covers every attempt
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import random
import shutil
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from makam_worker.checkpoint_store import DERIVED, FORMAT, STATE, CheckpointInfo, HashingWriter, meta_member, read_meta, write_info
from makam_worker.layout import RunPaths
from makam_worker.run_spec import RunSpec
from makam_worker.training.config import Hyperparameters
from makam_worker.training.data import Splits
from makam_worker.training.errors import TrainingError
from makam_worker.training.throughput import Meter


@dataclass
class LoopState:
    """What the training loop carries from one epoch to the next; a checkpoint keeps all of it."""

    epoch: int = 0
    """Epochs done."""
    step: int = 0
    """Optimizer steps done."""
    history: list[dict[str, Any]] = field(default_factory=list)
    """The `metrics` row of every epoch done."""
    best_value: float | None = None
    """The best value of metric_for_best_model so far."""
    best_epoch: int = 0
    best_row: dict[str, Any] | None = None
    best_weights: dict[str, torch.Tensor] | None = None
    """The trainable weights of the best epoch (on CPU): evaluated and exported at the end."""
    since_best: int = 0
    """Epochs since the best one, for early stopping."""
    stopped_early: bool = False
    mlm_epoch: int = 0
    """Epochs of the masked-LM phase done (mlm.py); a checkpoint of that phase has `epoch` 0."""
    mlm_step: int = 0
    mlm_history: list[dict[str, Any]] = field(default_factory=list)
    """The phase's `metrics` rows (epoch, step, mlm_loss), kept for the report."""


def snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The trainable weights (all that training changes), copied to CPU memory."""
    return {n: p.detach().to("cpu", copy=True) for n, p in model.named_parameters() if p.requires_grad}


@torch.no_grad()
def restore(model: torch.nn.Module, weights: dict[str, torch.Tensor]) -> None:
    for name, param in model.named_parameters():
        if name in weights:
            param.copy_(weights[name].to(param.device, param.dtype))


def invalid(message: str) -> TrainingError:
    return TrainingError("invalid_checkpoint", f"cannot resume from this checkpoint: {message}", retryable=False)


# --- random number generators -------------------------------------------------------------------


def rng_state(device: torch.device) -> dict[str, Any]:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
    }


def set_rng_state(state: dict[str, Any], device: torch.device) -> list[str]:
    """Restores the generators; returns notes for the log about what could not be restored."""
    random.setstate(state["python"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if device.type == "cuda":
        if state.get("cuda") is None:
            return ["the checkpoint was made without CUDA: this run's CUDA random numbers start from the seed"]
        torch.cuda.set_rng_state(state["cuda"], device)
    return []


# --- saving -------------------------------------------------------------------------------------


def save(
    paths: RunPaths, *, meta: dict[str, Any], model: torch.nn.Module, optimizer: torch.optim.Optimizer,
    scheduler: Any, scaler: Any, loop: LoopState, meter: Meter, device: torch.device, derived: dict[str, Path],
) -> CheckpointInfo:
    """Writes paths.checkpoint (aside, then renamed in) and its record; returns what FetchCheckpoint sends."""
    loop_state = dataclasses.asdict(dataclasses.replace(loop, best_weights=None))  # asdict would deep-copy tensors
    loop_state["best_weights"] = loop.best_weights if loop.best_epoch != loop.epoch else None  # else: the current ones
    state = {
        # Detached, not copied: torch.save writes GPU tensors as they are, and map_location brings them back.
        "weights": {n: p.detach() for n, p in model.named_parameters() if p.requires_grad},
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else None,
        "rng": rng_state(device),
        "loop": loop_state,
        "meter": {"samples": meter.samples, "tokens": meter.tokens, "seconds": meter.seconds},
    }
    paths.work.mkdir(parents=True, exist_ok=True)
    staged = paths.work / f".{STATE}"
    tmp = paths.dir / f".{paths.checkpoint.name}.tmp"
    try:
        torch.save(state, staged)
        with tmp.open("wb") as raw:
            out = HashingWriter(raw)
            with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
                info, data = meta_member({**meta, "format": FORMAT, "epoch": loop.epoch, "step": loop.step,
                                          "stopped_early": loop.stopped_early, "created_unix_s": int(time.time())})
                info.mtime = int(time.time())
                tar.addfile(info, data)  # first: the server reads it without unpacking the rest
                tar.add(staged, arcname=STATE)
                for name, path in sorted(derived.items()):
                    tar.add(path, arcname=f"{DERIVED}/{name}")
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, paths.checkpoint)
    finally:
        tmp.unlink(missing_ok=True)
        staged.unlink(missing_ok=True)
    checkpoint = CheckpointInfo(loop.epoch, loop.step, out.size, out.digest.hexdigest())
    write_info(paths, checkpoint)
    return checkpoint


# --- resuming -----------------------------------------------------------------------------------


def _check_meta(meta: dict[str, Any], spec: RunSpec, hp: Hyperparameters, splits: Splits) -> None:
    if meta.get("family") != hp.family:
        raise invalid(f"it was saved by a run of the {meta.get('family')} family and this run is {hp.family}")
    if meta.get("labels") != splits.label_names:
        raise invalid(f"its labels {meta.get('labels')} are not this run's {splits.label_names}")
    if meta.get("model") != spec.model.to_dict():
        raise invalid("it is of another model (model.name, model.config or model.tokenizer differ)")
    if meta.get("phase") == "mlm":  # saved in the masked-LM phase, before fine-tuning (mlm.py)
        if hp.mlm_epochs != meta.get("mlm_epochs"):
            raise invalid(f"it was saved in a masked-LM phase of {meta.get('mlm_epochs')} epochs and this run has "
                          f"mlm_epochs {hp.mlm_epochs}")
    elif not 1 <= meta["epoch"] <= hp.epochs:
        raise invalid(f"it ends epoch {meta['epoch']} and this run has {hp.epochs} epochs")


class Resume:
    """The checkpoint a run resumes from (paths.resume): checked against the run before the model is
    built, its derived files unpacked into work/resume/derived for the family's builder; then
    `restore` puts the training state back once the model, optimizer and scheduler exist."""

    def __init__(self, path: Path, meta: dict[str, Any], unpacked: Path) -> None:
        self.path, self.meta, self.unpacked = path, meta, unpacked

    @property
    def epoch(self) -> int:
        return self.meta["epoch"]

    @property
    def derived(self) -> Path:
        return self.unpacked / DERIVED

    @classmethod
    def open(cls, paths: RunPaths, spec: RunSpec, hp: Hyperparameters, splits: Splits) -> Resume:
        target = paths.work / "resume"
        try:
            with tarfile.open(paths.resume, mode="r:") as tar:
                meta = read_meta(tar)
                _check_meta(meta, spec, hp, splits)
                shutil.rmtree(target, ignore_errors=True)
                members = [m for m in tar.getmembers() if m.name == DERIVED or m.name.startswith(f"{DERIVED}/")]
                _extract(tar, target, members)
        except FileNotFoundError:
            raise invalid("the run has no resume.tar") from None
        except (tarfile.TarError, ValueError, OSError) as e:
            raise invalid(str(e)) from None
        return cls(paths.resume, meta, target)

    def restore(
        self, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any, scaler: Any, meter: Meter,
        device: torch.device, steps_per_epoch: int, total_steps: int,
    ) -> tuple[LoopState, list[str]]:
        """Loads the state into the model, optimizer, scheduler, scaler and meter and sets the random
        generators (so call it last before the loop); returns the loop state and notes for the log."""
        meta = self.meta
        if (meta.get("steps_per_epoch"), meta.get("total_steps")) != (steps_per_epoch, total_steps):
            raise invalid(
                f"its run takes {meta.get('total_steps')} optimizer steps, {meta.get('steps_per_epoch')} per epoch, "
                f"and this one {total_steps}, {steps_per_epoch} per epoch: the data or hyperparameters differ")
        try:
            with tarfile.open(self.path, mode="r:") as tar:
                member = tar.extractfile(STATE)
                if member is None:
                    raise KeyError(STATE)
                state = torch.load(member, map_location="cpu", weights_only=True)
        except (KeyError, tarfile.TarError, RuntimeError, pickle.UnpicklingError, EOFError, OSError) as e:
            raise invalid(f"its {STATE} cannot be read: {e}") from None

        weights: dict[str, torch.Tensor] = state["weights"]
        expected = {n: tuple(p.shape) for n, p in model.named_parameters() if p.requires_grad}
        found = {n: tuple(t.shape) for n, t in weights.items()}
        if found != expected:
            differ = sorted(set(found) ^ set(expected)) or sorted(n for n in found if found[n] != expected[n])
            raise invalid(f"its trainable weights do not fit this model (first difference: {differ[0]})")
        restore(model, weights)
        notes = []
        try:
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            if scaler is not None and state["scaler"] is not None:
                scaler.load_state_dict(state["scaler"])
            elif scaler is not None or state["scaler"] is not None:
                notes.append("the checkpoint and this run differ in fp16 gradient scaling: the scale starts afresh")
        except (KeyError, ValueError, RuntimeError) as e:
            raise invalid(f"its optimizer or scheduler state does not fit: {e}") from None

        loop = LoopState(**state["loop"])
        if loop.best_weights is None and loop.best_epoch:
            loop.best_weights = snapshot(model)  # the best epoch is the last one saved
        counts = state["meter"]
        meter.samples, meter.tokens, meter.seconds = counts["samples"], counts["tokens"], counts["seconds"]
        notes += set_rng_state(state["rng"], device)
        return loop, notes


def _extract(tar: tarfile.TarFile, target: Path, members: list[tarfile.TarInfo]) -> None:
    """Extracts with tarfile's "data" filter where this Python has it (3.11.4+); on older ones the
    same refusals by hand: no absolute paths, no "..", only plain files and folders."""
    if hasattr(tarfile, "data_filter"):
        tar.extractall(target, members=members, filter="data")
        return
    for m in members:
        parts = Path(m.name).parts
        if Path(m.name).is_absolute() or ".." in parts or not (m.isfile() or m.isdir()):
            raise ValueError(f"unsafe member in checkpoint: {m.name!r}")
    tar.extractall(target, members=members)
