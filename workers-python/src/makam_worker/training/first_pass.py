"""What a refit run keeps of its first model: the class probabilities it gave the validation split
(rows in the split's order, columns in label order), shipped beside the refit model in the artifact.
They are the validation predictions of a model that never saw those texts, so an ensemble
(ensemble.py) can fit its weights on them and still combine the refit models. A refit checkpoint
carries the file (a derived file, refit.py), so a resumed refit ships it too.

A leaf: trainer.py, refit.py, families/tfidf.py and ensemble.py import it; it imports none of them.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from makam_worker.training.data import Splits

FIRST_PASS_VALIDATION = "validation_probabilities.npy"


def texts_digest(texts: list[str]) -> str:
    """sha256 of the texts in order: ties the probabilities' rows to the split they were read on."""
    h = hashlib.sha256()
    for text in texts:
        data = text.encode("utf-8", "surrogatepass")
        h.update(len(data).to_bytes(8, "little") + data)
    return h.hexdigest()


def keep_first_pass(path: Path, probabilities: Any, splits: Splits) -> dict[str, Any]:
    """Writes the first model's validation probabilities to `path`; returns what the refit's summary
    says of them (first_pass_note)."""
    import numpy as np

    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.shape != (len(splits.validation_texts), len(splits.label_names)):
        raise ValueError(f"first-pass validation probabilities of shape {probabilities.shape}, expected "
                         f"{(len(splits.validation_texts), len(splits.label_names))}")
    np.save(path, probabilities, allow_pickle=False)
    return first_pass_note(splits)


def first_pass_note(splits: Splits) -> dict[str, Any]:
    return {"validation_probabilities": FIRST_PASS_VALIDATION,
            "validation_texts_sha256": texts_digest(splits.validation_texts)}
