"""k-fold cross-validation (hyperparameter `cv_folds`): after the run has trained and packed the model
it ships, the same configuration trains k more times over train + validation, each time validated on
one stratified, seeded fold; the result gains `cross_validation`, each fold's best-epoch validation
figures with their mean and spread. A tune job's objective reads that mean instead of one validation
split (services/shared/src/tuning/search.ts objectiveValue): on a small set one split of a few hundred
texts is too noisy to choose between configurations, and the test split is never touched.

Each fold is a whole run of its own family (trainer.py or families/tfidf.py) in a scratch directory
under the run's work/, with its own event log: the job's events and metrics stay those of the shipped
model, and the job hears one log line per fold. The folds run after the shipped model, so a trial that
its pruner stops pays for none; a run resumed during the folds trains them again (same seed, same
figures). The folds' models are deleted once measured.
"""

from __future__ import annotations

import dataclasses
import shutil
import statistics
from collections.abc import Callable
from typing import Any

from makam_worker.events import EventLog
from makam_worker.layout import RunPaths
from makam_worker.run_spec import RunSpec
from makam_worker.training.common import Log
from makam_worker.training.data import Splits
from makam_worker.training.errors import TrainingError

FIGURES = ("accuracy", "macro_f1", "weighted_f1", "validation_loss")


def folds(splits: Splits, k: int, seed: int) -> list[Splits]:
    """train + validation cut into k stratified folds; fold i validates on its part and trains on the rest.
    The test split is dropped: cross-validation never sees it."""
    from sklearn.model_selection import KFold, StratifiedKFold

    texts = splits.train_texts + splits.validation_texts
    labels = splits.train_labels + splits.validation_labels
    if k > len(texts):
        raise TrainingError("invalid_hyperparameters",
                            f"cv_folds {k} is more than the {len(texts)} training and validation texts: use fewer folds",
                            retryable=False)
    smallest = min((labels.count(label) for label in set(labels)), default=0)
    # Stratified when every label can be in every fold; else plain shuffled folds (a rare label then
    # misses some folds' validation, which macro F1 over present-or-predicted labels allows).
    cutter = StratifiedKFold(k, shuffle=True, random_state=seed) if smallest >= k else KFold(k, shuffle=True, random_state=seed)
    out = []
    for train_idx, val_idx in cutter.split(texts, labels):
        out.append(dataclasses.replace(
            splits,
            train_texts=[texts[i] for i in train_idx], train_labels=[labels[i] for i in train_idx],
            validation_texts=[texts[i] for i in val_idx], validation_labels=[labels[i] for i in val_idx],
            test_texts=[], test_labels=[],
        ))
    return out


def run_folds(
    paths: RunPaths, spec: RunSpec, splits: Splits, events: EventLog, check_stop: Callable[[], None], log: Log,
    train: Callable[[RunPaths, RunSpec, Any, Splits, EventLog], dict[str, Any]],
) -> dict[str, Any]:
    """Trains one model per fold with `train(paths, spec, hp, splits, events)` (the family's own run) and
    returns the report's `cross_validation` entry."""
    hp = spec.hyperparameters
    k = hp.cv_folds
    # Each fold is a plain run: no refit, export, tracker or nested folds; nothing to resume from.
    fold_hp = dataclasses.replace(hp, cv_folds=0, refit=False, export_onnx=False, tracker="none")
    fold_spec = dataclasses.replace(spec, hyperparameters=fold_hp, resume_checkpoint_sha256=None)
    root = paths.work / "cross-validation"
    per_fold: list[dict[str, Any]] = []
    for i, fold in enumerate(folds(splits, k, hp.seed), start=1):
        check_stop()
        fold_paths = RunPaths(root / f"fold-{i}")
        shutil.rmtree(fold_paths.dir, ignore_errors=True)  # a run resumed during the folds starts them again
        fold_paths.work.mkdir(parents=True)
        summary = train(fold_paths, fold_spec, fold_hp, fold, EventLog(fold_paths.events))
        best = summary.get("validation") or {}
        row = {"fold": i, "train_examples": len(fold.train_texts), "validation_examples": len(fold.validation_texts),
               "best_epoch": summary.get("best_epoch"), **{name: best.get(name) for name in FIGURES}}
        per_fold.append(row)
        shutil.rmtree(fold_paths.dir, ignore_errors=True)
        message = (f"cross-validation: fold {i}/{k} ({row['validation_examples']} texts): validation accuracy "
                   f"{row['accuracy']:.4f}, macro F1 {row['macro_f1']:.4f} at epoch {row['best_epoch']}")
        events.append("log", level="info", message=message)
        log.info("%s", message)
    shutil.rmtree(root, ignore_errors=True)

    def spread(name: str) -> tuple[float | None, float | None]:
        values = [r[name] for r in per_fold if isinstance(r[name], (int, float))]
        if len(values) < len(per_fold) or not values:
            return None, None  # tfidf's LinearSVC has no validation loss
        return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0

    stats = {name: spread(name) for name in FIGURES}
    return {
        "folds": k,
        "over": "train+validation",
        "examples": len(splits.train_texts) + len(splits.validation_texts),
        "mean": {name: mean for name, (mean, _) in stats.items()},
        "sd": {name: sd for name, (_, sd) in stats.items()},
        "per_fold": per_fold,
    }
