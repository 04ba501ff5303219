"""The training state a neural run saves in its checkpoints and a resumed run restores: everything a run
resumed at epoch k+1 needs to go on exactly as the run that saved epoch k would have. trainer.py saves
it at the end of every checkpoint_every_epochs-th epoch (or after checkpoint_every_minutes) and of the
last, through CheckpointWriter (copied to CPU memory, then written in a background thread); the checkpoint file's layout (meta.json, state.pt, derived/) and the
store of uploaded ones are makam_worker/checkpoint_store.py.

state.pt (torch.save, read back with weights_only=True) holds:
- weights: the trainable parameters (all of them for encoder and scratch; LoRA and the head for decoder)
- optimizer, scheduler, scaler: their state_dicts (scaler None without fp16)
- rng: the Python, NumPy, torch CPU and (on CUDA) the training device's generator states
- loop: the LoopState below, with the best epoch's weights only when they are not the current ones
- meter: training samples, tokens and seconds so far, so the throughput covers every attempt
- first_pass: in a refit's checkpoint (refit.py) only, the first pass's LoopState without weights
"""

from __future__ import annotations

import copy
import dataclasses
import os
import pickle
import random
import shutil
import tarfile
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from makam_worker.checkpoint_store import DERIVED, FORMAT, STATE, CheckpointInfo, HashingWriter, meta_member, read_meta, write_info
from makam_worker.events import EventLog
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


def _cpu_copy(value: Any) -> Any:
    """`value` with every tensor copied to CPU memory: what the next step changes in place (weights,
    the optimizer's moments) must not reach a checkpoint still being written."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {k: _cpu_copy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_cpu_copy(v) for v in value)
    return copy.deepcopy(value)


def capture(
    *, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any, scaler: Any, loop: LoopState,
    meter: Meter, device: torch.device, extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The training state as state.pt holds it, copied to CPU memory now (the step waits only for this)."""
    loop_state = dataclasses.asdict(dataclasses.replace(loop, best_weights=None))  # asdict would deep-copy tensors
    # CPU copies already, never changed in place (snapshot() makes a new dict): shared, not copied again.
    loop_state["best_weights"] = loop.best_weights if loop.best_epoch != loop.epoch else None  # else: the current ones
    return {
        **_cpu_copy({
            "weights": {n: p for n, p in model.named_parameters() if p.requires_grad},
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict() if scaler is not None else None,
            "rng": rng_state(device),
            "meter": {"samples": meter.samples, "tokens": meter.tokens, "seconds": meter.seconds},
            **(extra or {}),
        }),
        "loop": loop_state,
    }


def write(paths: RunPaths, *, meta: dict[str, Any], state: dict[str, Any], derived: dict[str, Path]) -> CheckpointInfo:
    """Writes paths.checkpoint (to a temporary name, fsynced, then renamed in: a crash mid-write
    leaves the previous checkpoint whole) and its record; returns what FetchCheckpoint sends."""
    paths.work.mkdir(parents=True, exist_ok=True)
    staged = paths.work / f".{STATE}"
    tmp = paths.dir / f".{paths.checkpoint.name}.tmp"
    loop = state["loop"]
    # meta may number epoch and step itself (the refit's go on from the first pass's).
    header = {"epoch": loop["epoch"], "step": loop["step"], **meta, "format": FORMAT,
              "stopped_early": loop["stopped_early"], "created_unix_s": int(time.time())}
    try:
        torch.save(state, staged)
        with tmp.open("wb") as raw:
            out = HashingWriter(raw)
            with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
                info, data = meta_member(header)
                info.mtime = int(time.time())
                tar.addfile(info, data)  # first: the server reads it without unpacking the rest
                tar.add(staged, arcname=STATE)
                for name, path in sorted(derived.items()):
                    tar.add(path, arcname=f"{DERIVED}/{name}")
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, paths.checkpoint)
        _fsync_dir(paths.dir)  # the rename itself survives a power cut
    finally:
        tmp.unlink(missing_ok=True)
        staged.unlink(missing_ok=True)
    checkpoint = CheckpointInfo(header["epoch"], header["step"], out.size, out.digest.hexdigest())
    write_info(paths, checkpoint)
    return checkpoint


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save(
    paths: RunPaths, *, meta: dict[str, Any], model: torch.nn.Module, optimizer: torch.optim.Optimizer,
    scheduler: Any, scaler: Any, loop: LoopState, meter: Meter, device: torch.device, derived: dict[str, Path],
) -> CheckpointInfo:
    """A checkpoint written now, in this thread (CheckpointWriter writes them in the background)."""
    state = capture(model=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler, loop=loop, meter=meter,
                    device=device)
    return write(paths, meta=meta, state=state, derived=derived)


class CheckpointWriter:
    """When to checkpoint (hyperparameters checkpoint_every_epochs and checkpoint_every_minutes, and
    always after the last epoch) and the writing, in a background thread so the next step does not
    wait for the disk: the state is copied to CPU memory at once (`capture`), then written while
    training goes on. One write at a time: the next one, and the end of the loop, wait for it. Its
    `checkpoint` event is appended from the training thread (`poll`, `wait`) once the file is whole,
    as the dispatcher fetches the file when it reads the event."""

    background = True
    """False writes in the training thread (bench/checkpoints.py compares the two)."""

    def __init__(self, paths: RunPaths, events: EventLog, log: Any, *, every_epochs: int, every_minutes: float) -> None:
        self.paths, self.events, self.log = paths, events, log
        self.every_epochs, self.every_s = every_epochs, every_minutes * 60
        self.last_saved = time.monotonic()
        self.count = 0
        self.seconds = 0.0
        """Time the training thread spent on checkpoints (copying, and waiting for a write)."""
        self._pool: ThreadPoolExecutor | None = None
        self._pending: tuple[Future[CheckpointInfo], float] | None = None

    def due(self, epoch: int, *, last: bool) -> bool:
        return (last or epoch % self.every_epochs == 0
                or (self.every_s > 0 and time.monotonic() - self.last_saved >= self.every_s))

    def save(self, *, meta: dict[str, Any], derived: dict[str, Path], **state: Any) -> None:
        """Captures the state now and writes it (in the background unless `background` is off)."""
        self.wait()
        began = time.monotonic()
        snapshot_ = capture(**state)
        if self.background:
            self._pool = self._pool or ThreadPoolExecutor(max_workers=1, thread_name_prefix="makam-checkpoint")
            self._pending = (self._pool.submit(write, self.paths, meta=meta, state=snapshot_, derived=derived), began)
        else:
            future: Future[CheckpointInfo] = Future()
            future.set_result(write(self.paths, meta=meta, state=snapshot_, derived=derived))
            self._pending = (future, began)
            self.poll()
        self.last_saved = time.monotonic()
        self.seconds += self.last_saved - began
        self.count += 1

    def poll(self) -> None:
        """Announces the write in progress if it has finished; returns at once."""
        if self._pending is not None and self._pending[0].done():
            self._announce()

    def wait(self) -> None:
        """Waits for the write in progress, if any, and announces it."""
        if self._pending is not None:
            began = time.monotonic()
            self._pending[0].result()
            self.seconds += time.monotonic() - began
            self._announce()

    def _announce(self) -> None:
        assert self._pending is not None
        future, began = self._pending
        self._pending = None
        saved = future.result()  # a failed write fails the run here, in the training thread
        self.log.info("checkpoint of epoch %d saved: %d bytes, %.2fs after it was taken",
                      saved.epoch, saved.size_bytes, time.monotonic() - began)
        self.events.append("checkpoint", epoch=saved.epoch, step=saved.step)  # only once the file is whole

    def report(self, loop_s: float, prefix: str = "") -> None:
        """A log event with what checkpoints cost the training thread, for users and bench/checkpoints.py."""
        self.events.append("log", level="info", message=(
            f"{prefix}checkpoints: {self.count} saved, {self.seconds:.3f}s of the training loop's {loop_s:.3f}s "
            f"({100 * self.seconds / max(loop_s, 1e-9):.1f}%)"))

    def guard(self, check_stop: Callable[[], None]) -> Callable[[], None]:
        """`check_stop` that, when the run is asked to stop, first lets the write in progress finish
        (a whole checkpoint, announced, rather than one cut off by the exit)."""
        def guarded() -> None:
            try:
                check_stop()
            except BaseException:
                self.wait()
                raise
        return guarded


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
    elif meta.get("phase") == "refit":  # saved during the refit on train + validation (refit.py)
        if not (hp.refit and splits.has_test):
            raise invalid("it was saved during a refit on train + validation and this run does no refit "
                          "(refit off, or no test split)")
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

    @property
    def refit(self) -> bool:
        """Saved during the refit (refit.py): its state is the refit model's, its first pass done."""
        return self.meta.get("phase") == "refit"

    def first_pass(self) -> LoopState:
        """A refit checkpoint's record of the first pass (its history, best epoch, early stop), without
        weights: the refit model replaces the first pass's."""
        state = self._load_state()
        try:
            return LoopState(**{**state["first_pass"], "best_weights": {}})
        except (KeyError, TypeError) as e:
            raise invalid(f"its record of the first pass cannot be read: {e}") from None

    def _load_state(self) -> dict[str, Any]:
        try:
            with tarfile.open(self.path, mode="r:") as tar:
                member = tar.extractfile(STATE)
                if member is None:
                    raise KeyError(STATE)
                return torch.load(member, map_location="cpu", weights_only=True)
        except (KeyError, tarfile.TarError, RuntimeError, pickle.UnpicklingError, EOFError, OSError) as e:
            raise invalid(f"its {STATE} cannot be read: {e}") from None

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
        state = self._load_state()

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
