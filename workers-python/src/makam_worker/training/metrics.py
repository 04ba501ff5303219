"""Validation metrics: accuracy and F1 beside the majority-class baseline (accuracy alone misleads
on imbalanced data)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support


def classification_metrics(references: list[int], predictions: list[int], label_names: list[str]) -> dict[str, Any]:
    ids = list(range(len(label_names)))
    precision, recall, f1, support = precision_recall_fscore_support(
        references, predictions, labels=ids, zero_division=0
    )
    return {
        "accuracy": float(accuracy_score(references, predictions)),
        "weighted_f1": float(f1_score(references, predictions, labels=ids, average="weighted", zero_division=0)),
        "macro_f1": float(f1_score(references, predictions, labels=ids, average="macro", zero_division=0)),
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(label_names)
        },
        # Rows are true labels, columns predicted labels, both in label id order.
        "confusion_matrix": confusion_matrix(references, predictions, labels=ids).tolist(),
    }


def majority_baseline_accuracy(train_labels: list[int], validation_labels: list[int]) -> float:
    """Accuracy of always predicting the most common training label."""
    majority = Counter(train_labels).most_common(1)[0][0]
    return sum(1 for label in validation_labels if label == majority) / len(validation_labels)
