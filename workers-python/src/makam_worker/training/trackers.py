"""Experiment trackers (`tracker`): the run's hyperparameters, per-step and per-epoch metrics and final
report, to TensorBoard event files in the artifact (tensorboard/) or to Weights & Biases.

One interface for both, called by the training loop (trainer.py) and tfidf.py: `start` once,
`step` after each optimizer step (losses stay on the device until the epoch's `epoch` call, so
tracking costs no host sync per step), `epoch` with the validation row, `finish` with the final
metrics just before the artifact is packed, and `close` (idempotent; a failed run closes without
`finish`). W&B takes its credentials, mode and project from the worker's environment
(WANDB_API_KEY, WANDB_MODE, WANDB_PROJECT, WANDB_DIR...), never from the request.
"""

from __future__ import annotations

import functools
import importlib
import json
import numbers
import os
from pathlib import Path
from typing import Any

from makam_worker.training.errors import TrainingError

TENSORBOARD_DIR = "tensorboard"  # inside the model directory, so the artifact carries it
WANDB_PROJECT = "makam"  # when WANDB_PROJECT is unset


@functools.lru_cache(maxsize=1)
def wandb_import_error() -> str | None:
    """None when wandb imports on this worker, else why not (capabilities.py and `open_tracker` say it)."""
    try:
        importlib.import_module("wandb")
    except Exception as e:  # an installed wandb can fail on a missing dependency: not only ImportError
        return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, numbers.Real):
        return float(value)
    if hasattr(value, "item"):  # a tensor on the device, read at flush time
        return float(value.item())
    return None


def scalars(metrics: dict[str, Any]) -> dict[str, float]:
    """The numeric entries of a metrics row or report (None, strings and nested values left out)."""
    return {k: n for k, v in metrics.items() if (n := _number(v)) is not None}


class Tracker:
    """The `none` tracker, and the interface: every call is a no-op."""

    name = "none"

    def __init__(self) -> None:
        self._steps: list[tuple[int, Any, float]] = []
        self._closed = False

    def start(self, hyperparameters: dict[str, Any]) -> None:
        pass

    def step(self, step: int, loss: Any, learning_rate: float) -> None:
        """`loss` may be a tensor on the device (read at the next `epoch`) or None (a skipped step)."""
        if self.name != "none":
            self._steps.append((step, loss, learning_rate))

    def epoch(self, epoch: int, step: int, row: dict[str, Any]) -> None:
        self._flush_steps()
        self._write({f"epoch/{k}": v for k, v in scalars(row).items() if k not in ("epoch", "step")} | {"epoch": epoch},
                    step)

    def finish(self, summary: dict[str, Any], step: int) -> None:
        """The final metrics (final_metrics of report.py), then close."""
        self._flush_steps()
        final = scalars(summary)
        test = summary.get("test") or {}
        final.update({f"{summary.get('evaluated_on', 'test')}_{k}": v for k, v in scalars(test).items()})
        self._final(final, step)
        self.close()

    def close(self, failed: bool = False) -> None:
        if not self._closed:
            self._closed = True
            self._close(failed)

    def _flush_steps(self) -> None:
        for step, loss, lr in self._steps:
            row = {"step/learning_rate": lr}
            if loss is not None:
                row["step/train_loss"] = _number(loss)
            self._write(row, step)
        self._steps = []

    def _write(self, values: dict[str, float], step: int) -> None:
        pass

    def _final(self, values: dict[str, float], step: int) -> None:
        pass

    def _close(self, failed: bool) -> None:
        pass


def _hparam_value(value: Any) -> Any:
    """TensorBoard's hparams take numbers, strings and booleans: others as JSON."""
    if isinstance(value, (bool, int, float, str)):
        return value
    return json.dumps(value, ensure_ascii=False)


class TensorBoard(Tracker):
    """Event files in <model dir>/tensorboard/, read with `tensorboard --logdir` after unpacking."""

    name = "tensorboard"
    FINAL = ("accuracy", "macro_f1", "weighted_f1")  # the hparams dashboard's metric columns

    def __init__(self, log_dir: Path) -> None:
        super().__init__()
        from torch.utils.tensorboard import SummaryWriter

        self.log_dir = log_dir
        self.writer = SummaryWriter(log_dir=str(log_dir))

    def start(self, hyperparameters: dict[str, Any]) -> None:
        from torch.utils.tensorboard.summary import hparams

        # Written into this run's own event file (SummaryWriter.add_hparams would start another run
        # directory); the final/ scalars written by `finish` fill the metric columns.
        for summary in hparams({k: _hparam_value(v) for k, v in hyperparameters.items()},
                               {f"final/{m}": 0.0 for m in self.FINAL}):
            self.writer.file_writer.add_summary(summary)
        self.writer.add_text("hyperparameters", "```\n" + json.dumps(hyperparameters, indent=2, ensure_ascii=False)
                             + "\n```")

    def _write(self, values: dict[str, float], step: int) -> None:
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)

    def _final(self, values: dict[str, float], step: int) -> None:
        for tag, value in values.items():
            self.writer.add_scalar(f"final/{tag}", value, step)

    def _close(self, failed: bool) -> None:
        self.writer.close()


class WandB(Tracker):
    """A W&B run named after the makam run; WANDB_MODE=offline keeps its files on the worker (under
    WANDB_DIR, else the run's directory), for `wandb sync` later."""

    name = "wandb"

    def __init__(self, run_id: str, run_dir: Path) -> None:
        super().__init__()
        self.run_id, self.run_dir = run_id, run_dir
        self.run: Any = None

    def start(self, hyperparameters: dict[str, Any]) -> None:
        import wandb

        self.run = wandb.init(
            project=os.environ.get("WANDB_PROJECT") or WANDB_PROJECT, name=self.run_id, config=hyperparameters,
            dir=os.environ.get("WANDB_DIR") or str(self.run_dir), job_type="train",
        )

    def _write(self, values: dict[str, float], step: int) -> None:
        if self.run is not None:
            self.run.log(values, step=step)

    def _final(self, values: dict[str, float], step: int) -> None:
        if self.run is not None:
            self.run.summary.update(values)

    def _close(self, failed: bool) -> None:
        if self.run is not None:
            self.run.finish(exit_code=1 if failed else 0)


def open_tracker(kind: str, *, run_id: str, run_dir: Path, model_dir: Path) -> Tracker:
    """The tracker a run's `tracker` hyperparameter asks for; wandb that cannot import fails the run
    before any training, naming the field."""
    if kind == "tensorboard":
        return TensorBoard(model_dir / TENSORBOARD_DIR)
    if kind == "wandb":
        error = wandb_import_error()
        if error is not None:
            raise TrainingError(
                "tracker_unavailable",
                f"tracker 'wandb' needs the wandb package on the worker, which cannot import it ({error}); "
                "use tracker 'tensorboard' or 'none', or run on a worker with wandb",
            )
        return WandB(run_id, run_dir)
    return Tracker()
