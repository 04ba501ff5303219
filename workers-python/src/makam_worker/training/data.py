"""Reads the JSONL datasets and splits off a validation set; refuses data that cannot train a classifier."""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from makam_worker.training.errors import TrainingError


@dataclass(frozen=True)
class Splits:
    """Texts and label ids of both splits; `label_names[i]` is the name of label id i (sorted)."""

    label_names: list[str]
    train_texts: list[str]
    train_labels: list[int]
    validation_texts: list[str]
    validation_labels: list[int]

    def label_counts(self) -> dict[str, dict[str, int]]:
        def count(ids: list[int]) -> dict[str, int]:
            counts = Counter(ids)
            return {name: counts.get(i, 0) for i, name in enumerate(self.label_names)}

        return {"train": count(self.train_labels), "validation": count(self.validation_labels)}


def _invalid(message: str) -> TrainingError:
    return TrainingError("invalid_dataset", message, retryable=False)


def read_jsonl(path: Path, name: str) -> tuple[list[str], list[str]]:
    """Texts and label names, one JSON object per line; errors name the line, never its text."""
    texts: list[str] = []
    labels: list[str] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise _invalid(f"the {name} dataset is not UTF-8 (byte {e.start})") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            raise _invalid(f"{name} dataset line {number} is not valid JSON") from None
        if not isinstance(row, dict):
            raise _invalid(f'{name} dataset line {number} must be an object like {{"text": ..., "label": ...}}')
        text, label = row.get("text"), row.get("label")
        if not isinstance(text, str) or not text.strip():
            raise _invalid(f"{name} dataset line {number}: 'text' must be a non-empty string")
        if isinstance(label, int) and not isinstance(label, bool):
            label = str(label)  # numeric labels become names; id2label maps back to these strings
        if not isinstance(label, str) or not label:
            raise _invalid(f"{name} dataset line {number}: 'label' must be a non-empty string")
        texts.append(text)
        labels.append(label)
    if not texts:
        raise _invalid(f"the {name} dataset has no examples")
    return texts, labels


def load_splits(train_path: Path, validation_path: Path | None, validation_fraction: float, seed: int) -> Splits:
    texts, labels = read_jsonl(train_path, "training")
    label_names = sorted(set(labels))
    if len(label_names) < 2:
        raise _invalid(f"the training dataset has a single label ({label_names[0]!r}); a classifier needs at least 2")
    label_ids = {name: i for i, name in enumerate(label_names)}

    if validation_path is not None:
        val_texts, val_labels = read_jsonl(validation_path, "validation")
        unseen = sorted(set(val_labels) - set(label_names))
        if unseen:
            shown = ", ".join(repr(u) for u in unseen[:5])
            raise _invalid(f"the validation dataset has {len(unseen)} label(s) unseen in training: {shown}")
        train_idx, val_idx = list(range(len(texts))), []
    else:
        train_idx, val_idx = split_indices(labels, validation_fraction, seed)
        val_texts, val_labels = [texts[i] for i in val_idx], [labels[i] for i in val_idx]

    return Splits(
        label_names=label_names,
        train_texts=[texts[i] for i in train_idx],
        train_labels=[label_ids[labels[i]] for i in train_idx],
        validation_texts=val_texts,
        validation_labels=[label_ids[label] for label in val_labels],
    )


def split_indices(labels: list[str], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """A stratified seeded split; when a class is too small to stratify, a seeded split that keeps
    one example of every label in training, so no validation label is unseen."""
    from sklearn.model_selection import train_test_split

    indices = list(range(len(labels)))
    try:
        train_idx, val_idx = train_test_split(indices, test_size=fraction, stratify=labels, random_state=seed)
        return sorted(train_idx), sorted(val_idx)
    except ValueError:
        pass  # a label with one example, or fewer held-out examples than labels

    order = indices[:]
    random.Random(seed).shuffle(order)
    seen: set[str] = set()
    pool = []
    for i in order:
        if labels[i] in seen:
            pool.append(i)
        else:
            seen.add(labels[i])  # the first example of each label stays in training
    if not pool:
        raise _invalid("too few examples to hold out a validation split; add examples or upload a validation dataset")
    held_out = set(pool[: max(1, math.ceil(fraction * len(labels)))])
    return [i for i in indices if i not in held_out], sorted(held_out)
