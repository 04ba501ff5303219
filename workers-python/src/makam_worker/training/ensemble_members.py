"""Class probabilities of finished makam models, and an ensemble's combination of them.

Shipped in every ensemble artifact beside textprep.py, and imported by the worker's ensemble run
(training/ensemble.py): the numbers the job reports and the numbers the downloaded artifact gives
come from this one file. Needs numpy, scikit-learn (tfidf members, the stacker) and, for neural
members, torch and transformers (peft for a decoder adapter); never makam.

Each member directory is an unpacked makam artifact, loaded as its own model card says. Members
take texts already prepared (textprep.prepare_text with the ensemble's preprocessing.json): every
member of an ensemble was trained with the same preparation, so texts are prepared once.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

try:  # in the worker
    from makam_worker.training import textprep
except ImportError:  # in a downloaded artifact, where textprep.py sits beside this file
    import textprep  # type: ignore[no-redef]

BATCH = 32


def softmax(scores: np.ndarray) -> np.ndarray:
    shifted = scores - scores.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=1, keepdims=True)


def _read(d: Path, name: str) -> Any:
    return json.loads((d / name).read_text(encoding="utf-8"))


def member_probabilities(d: str | os.PathLike, texts: list[str]) -> np.ndarray:
    """(len(texts), labels) probabilities of the artifact in `d`, columns in its labels.json order.
    A tfidf LinearSVC has no probabilities: its decision_function goes through a softmax (a binary
    one's single score s as the pair [0, s]), which keeps its ranking and so its predictions."""
    d = Path(d)
    labels = _read(d, "labels.json")
    metrics = _read(d, "metrics.json")
    family = metrics["model"]["family"]
    if family == "tfidf":
        import joblib

        return pipeline_probabilities(joblib.load(d / "model.joblib"), labels, texts)
    return _neural_probabilities(d, family, labels, metrics, texts)


def pipeline_probabilities(pipeline: Any, labels: list[str], texts: list[str]) -> np.ndarray:
    """A tfidf pipeline's probabilities (its decision scores softmaxed, for a LinearSVC), columns in
    `labels` order; also what a refit tfidf run keeps of its first model on validation."""
    if hasattr(pipeline, "predict_proba") and hasattr(pipeline.named_steps["classifier"], "predict_proba"):
        probabilities = pipeline.predict_proba(texts)
    else:
        scores = np.asarray(pipeline.decision_function(texts), dtype=np.float64)
        if scores.ndim == 1:
            scores = np.stack([np.zeros_like(scores), scores], axis=1)
        probabilities = softmax(scores)
    order = [list(pipeline.classes_).index(name) for name in labels]
    return np.asarray(probabilities, dtype=np.float64)[:, order]


def _neural_probabilities(d: Path, family: str, labels: list[str], metrics: dict, texts: list[str]) -> np.ndarray:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    remote = family == "scratch"
    tokenizer = AutoTokenizer.from_pretrained(d, trust_remote_code=remote)
    if (d / "adapter_config.json").is_file():  # a decoder's LoRA adapter, as its card loads it
        from peft import PeftConfig, PeftModel

        base = d / "base" if (d / "base").is_dir() else PeftConfig.from_pretrained(d).base_model_name_or_path
        model = AutoModelForSequenceClassification.from_pretrained(
            base, num_labels=len(labels), id2label=dict(enumerate(labels)),
            label2id={name: i for i, name in enumerate(labels)}, pad_token_id=tokenizer.pad_token_id)
        model = PeftModel.from_pretrained(model, d)
    else:
        model = AutoModelForSequenceClassification.from_pretrained(d, trust_remote_code=remote)
    model.eval()
    max_length = metrics["model"]["max_length"]
    truncation = metrics["hyperparameters"]["truncation"]
    out = []
    with torch.no_grad():
        for start in range(0, len(texts), BATCH):
            batch = textprep.encode(tokenizer, texts[start:start + BATCH], max_length=max_length,
                                    truncation=truncation, return_tensors="pt")
            out.append(torch.softmax(model(**batch).logits.float(), dim=-1).double().numpy())
    return np.concatenate(out) if out else np.zeros((0, len(labels)))


def calibrated(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log p / temperature): the member's probabilities sharpened (< 1) or flattened (> 1),
    its predictions unchanged."""
    return softmax(np.log(np.clip(probabilities, 1e-12, None)) / temperature)


def stacked_features(probabilities: list[np.ndarray]) -> np.ndarray:
    """The stacker's input: every member's probabilities side by side, in member order."""
    return np.concatenate(probabilities, axis=1)


def combine(manifest: dict, probabilities: list[np.ndarray], stacker: Any = None) -> np.ndarray:
    """The ensemble's probabilities from its members': the weighted mean (`average`, of each member's
    probabilities at its temperature, when the manifest has them) or the stacker's predict_proba
    (`stack`), columns in label order."""
    if manifest["method"] == "average":
        temperatures = manifest.get("temperatures") or [1.0] * len(probabilities)
        return sum(w * calibrated(p, t) for w, t, p in zip(manifest["weights"], temperatures, probabilities))
    # The stacker knows only the labels the validation split has: the others get probability 0.
    out = np.zeros((len(probabilities[0]), len(manifest["labels"])))
    out[:, stacker.classes_] = stacker.predict_proba(stacked_features(probabilities))
    return out


def predict(d: str | os.PathLike, texts: list[str]) -> list[str]:
    """Label names for raw texts, from the unpacked ensemble artifact in `d` (what its card runs)."""
    d = Path(d)
    manifest = _read(d, "ensemble.json")
    options = _read(d, "preprocessing.json")
    prepared = [textprep.prepare_text(t, **options) for t in texts]
    probabilities = [member_probabilities(d / m["path"], prepared) for m in manifest["members"]]
    stacker = None
    if manifest["method"] == "stack":
        import joblib

        stacker = joblib.load(d / "stacker.joblib")
    combined = combine(manifest, probabilities, stacker)
    return [manifest["labels"][i] for i in combined.argmax(axis=1)]
