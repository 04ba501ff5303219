"""One run from its RunSpec (spec.json, parsed by child.py) to the packed artifact: data (prepared,
split, leaks reported and removed), then the family's training (trainer.py for the neural
families, tfidf.py for the TF-IDF floor), then with `refit` and a test split the final refit on
train + validation (refit.py). Importing this module does not import torch, so a tfidf
run never loads it.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

from makam_worker.events import EventLog
from makam_worker.layout import RunPaths
from makam_worker.run_spec import RunSpec
from makam_worker.training.common import Log
from makam_worker.training.data import Splits, load_splits
from makam_worker.training.errors import Cancelled, TrainingError
from makam_worker.training import distributed, spans
from makam_worker.training.textprep import OPTIONS


def train_run(paths: RunPaths, spec: RunSpec, events: EventLog, should_stop: Callable[[], bool], log: Log) -> dict:
    """Trains, writes model/, model.tar.gz and its sha256; returns the final metrics. The run's
    `tracker` (trackers.py) is open throughout: report.py finishes it; a failure closes it as failed."""
    from makam_worker.training import trackers

    hp = spec.hyperparameters
    # A rank other than 0 of a multi-device run (distributed.py) writes aside, never read: it tracks nothing.
    kind = hp.tracker if os.environ.get("RANK", "0") == "0" else "none"
    tracker = trackers.open_tracker(kind, run_id=spec.run_id, run_dir=paths.dir, model_dir=paths.model)
    try:
        tracker.start(hp.to_dict())
        return _train_run(paths, spec, events, should_stop, log, tracker)
    except BaseException:
        tracker.close(failed=True)
        raise


def _train_run(paths: RunPaths, spec: RunSpec, events: EventLog, should_stop: Callable[[], bool], log: Log,
               tracker: Any) -> dict:
    def stop_here() -> None:
        if should_stop():
            raise Cancelled()

    check_stop = distributed.agreed(stop_here)  # the ranks of a run on several devices stop at one check

    hp = spec.hyperparameters
    spans.start(paths.dir, events)
    with spans.phase("data preparation", family=hp.family) as span:
        splits = load_splits(
            spec.train_dataset, spec.validation_dataset, hp.validation_fraction, hp.seed,
            test_path=spec.test_dataset, test_fraction=hp.test_fraction,
            prepare={name: getattr(hp, name) for name in OPTIONS}, remove_eval_duplicates=hp.remove_eval_duplicates,
            unlabeled_path=spec.unlabeled_dataset,
        )
        span.update(train_examples=len(splits.train_texts), validation_examples=len(splits.validation_texts),
                    test_examples=len(splits.test_texts))
    log.info("data: %d training, %d validation and %d test examples, %d labels; leaks %s",
             len(splits.train_texts), len(splits.validation_texts), len(splits.test_texts),
             len(splits.label_names), splits.report["leaks"])
    check_stop()

    if spec.ensemble is not None:  # finished jobs' models combined on these splits: nothing to resume
        from makam_worker.training.ensemble import train_ensemble

        return train_ensemble(paths, spec, hp, splits, events, check_stop, log)
    if hp.family == "tfidf":
        if spec.resume_checkpoint_sha256:
            raise TrainingError("invalid_checkpoint", "the tfidf family saves no checkpoints and cannot resume from one")
        from makam_worker.training.families.tfidf import train_tfidf

        def train(p: RunPaths, s: RunSpec, h: Any, sp: Splits, ev: EventLog, refit: Any = None,
                  tracker: Any = None) -> dict:
            return train_tfidf(p, s, h, sp, ev, check_stop, log, tracker=tracker)
    else:
        from makam_worker.training.trainer import train_neural

        def train(p: RunPaths, s: RunSpec, h: Any, sp: Splits, ev: EventLog, refit: Any = None,
                  tracker: Any = None) -> dict:
            return train_neural(p, s, h, sp, ev, check_stop, log, refit=refit, tracker=tracker)

    refit = None
    if hp.family != "tfidf" and hp.refit and splits.has_test:  # without a test split nothing could measure it
        from makam_worker.training.refit import train_refit

        refit = functools.partial(train_refit, paths, spec.model, events, check_stop)
    summary = train(paths, spec, hp, splits, events, refit=refit, tracker=tracker)  # the folds track nothing
    if hp.cv_folds >= 2:  # after the shipped model: a pruned trial pays for no folds
        from makam_worker.training.cross_validation import run_folds

        summary["cross_validation"] = run_folds(paths, spec, splits, events, check_stop, log, train)
    return summary
