"""What every family and the run itself use, importing nothing of makam_worker at run time (a leaf,
so that pipeline.py, trainer.py, tfidf.py, family.py and report.py depend on it and not on each other):
the logger type and the log lines about the data."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from makam_worker.training.config import Hyperparameters
    from makam_worker.training.data import Splits

Log = logging.Logger | logging.LoggerAdapter[logging.Logger]


def data_warnings(hp: Hyperparameters, splits: Splits) -> list[str]:
    """Log lines about the data, sent right after the `started` event."""
    warnings = []
    leaks = sum(splits.report["leaks"].values())
    if leaks:
        what = "removed from" if hp.remove_eval_duplicates else "left in (remove_eval_duplicates is false)"
        warnings.append(f"{leaks} evaluation text(s) also occur in training (or test in validation): {what} "
                        "the evaluation splits; see data.leaks in the metrics")
    emptied = sum(splits.report["emptied_by_preparation"].values())
    if emptied:
        warnings.append(f"{emptied} text(s) were empty after preparation and were dropped")
    return warnings
