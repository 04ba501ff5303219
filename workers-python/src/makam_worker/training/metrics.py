"""Evaluation metrics: accuracy and F1 beside the majority-class baseline (accuracy alone misleads
on imbalanced data), per-class figures and a confusion matrix with label names."""

from __future__ import annotations

from collections import Counter
from typing import Any

from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support


MACRO_F1_OVER = "present_or_predicted"
"""The labels macro F1 averages over: those in the evaluated split or predicted on it, as scikit-learn's
f1_score does by default (labels=None). A dataset label absent from a small split and never predicted
has no F1 to speak of; counting it as 0 would pull the mean down for nothing the model did."""


def classification_metrics(references: list[int], predictions: list[int], label_names: list[str]) -> dict[str, Any]:
    ids = list(range(len(label_names)))
    present = sorted(set(references) | set(predictions))
    precision, recall, f1, support = precision_recall_fscore_support(
        references, predictions, labels=ids, zero_division=0
    )
    return {
        "accuracy": float(accuracy_score(references, predictions)),
        "weighted_f1": float(f1_score(references, predictions, labels=present, average="weighted", zero_division=0)),
        "macro_f1": float(f1_score(references, predictions, labels=present, average="macro", zero_division=0)),
        "macro_f1_over": MACRO_F1_OVER,
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(label_names)
        },
        # Rows are true labels, columns predicted labels, both in the order of `labels`.
        "confusion_matrix": {
            "labels": list(label_names),
            "matrix": confusion_matrix(references, predictions, labels=ids).tolist(),
        },
    }


def majority_label(train_labels: list[int]) -> int:
    """The most common training label; ties go to the lowest id, so the choice is stable."""
    counts = Counter(train_labels)
    return min(counts, key=lambda label: (-counts[label], label))


def majority_baseline_accuracy(train_labels: list[int], evaluation_labels: list[int]) -> float:
    """Accuracy of always predicting the most common training label."""
    majority = majority_label(train_labels)
    return sum(1 for label in evaluation_labels if label == majority) / len(evaluation_labels)


def evaluation_report(
    split: str, references: list[int], predictions: list[int], label_names: list[str], train_labels: list[int],
    loss: float | None = None,
) -> dict[str, Any]:
    """The final evaluation of one split: every metric, the baseline and the majority label."""
    report = classification_metrics(references, predictions, label_names)
    return {
        "split": split,
        "examples": len(references),
        "loss": loss,
        **report,
        "majority_label": label_names[majority_label(train_labels)],
        "majority_baseline_accuracy": majority_baseline_accuracy(train_labels, references),
    }
