"""Reads the JSONL datasets, prepares the texts, makes the train/validation/test splits and reports
leaks between them; refuses data that cannot train a classifier.

Order: read, prepare every text (textprep), drop texts left empty, carve the splits that were not
given (test first, then validation, both stratified and seeded), then count the evaluation texts
that also occur in training (a leak) and, when asked, remove them from the evaluation splits.
"""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from makam_worker.training.errors import TrainingError
from makam_worker.training.textprep import OPTIONS, prepare_text

SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class Splits:
    """Prepared texts and label ids of each split; `label_names[i]` names label id i (sorted).
    The test split is empty when the run has none."""

    label_names: list[str]
    train_texts: list[str]
    train_labels: list[int]
    validation_texts: list[str]
    validation_labels: list[int]
    test_texts: list[str] = field(default_factory=list)
    test_labels: list[int] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)
    """What happened to the data: sources, example counts, leaks, removals, emptied texts, options."""
    unlabeled_texts: list[str] = field(default_factory=list)
    """Prepared texts of the unlabeled dataset: read only by the masked-LM phase (mlm.py) and the
    tokenizer, never trained on as examples."""

    @property
    def tokenizer_texts(self) -> list[str]:
        """What a family learns its tokenizer on: all the text given to train on, labelled or not."""
        return self.train_texts + self.unlabeled_texts

    @property
    def has_test(self) -> bool:
        return bool(self.test_texts)

    def label_counts(self) -> dict[str, dict[str, int]]:
        def count(ids: list[int]) -> dict[str, int]:
            counts = Counter(ids)
            return {name: counts.get(i, 0) for i, name in enumerate(self.label_names)}

        counts = {"train": count(self.train_labels), "validation": count(self.validation_labels)}
        if self.has_test:
            counts["test"] = count(self.test_labels)
        return counts


def _invalid(message: str) -> TrainingError:
    return TrainingError("invalid_dataset", message, retryable=False)


def _json_lines(path: Path, name: str) -> Iterator[tuple[int, Any]]:
    """(line number, parsed JSON) of each non-blank line; errors name the line, never its text."""
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
        yield number, row


def _text_of(row: Any, name: str, number: int) -> str:
    text = row.get("text") if isinstance(row, dict) else None
    if not isinstance(text, str) or not text.strip():
        raise _invalid(f"{name} dataset line {number}: 'text' must be a non-empty string")
    return text


def read_jsonl(path: Path, name: str) -> tuple[list[str], list[str]]:
    """Texts and label names, one JSON object per line; errors name the line, never its text."""
    texts: list[str] = []
    labels: list[str] = []
    for number, row in _json_lines(path, name):
        if not isinstance(row, dict):
            raise _invalid(f'{name} dataset line {number} must be an object like {{"text": ..., "label": ...}}')
        text, label = _text_of(row, name, number), row.get("label")
        if isinstance(label, int) and not isinstance(label, bool):
            label = str(label)  # numeric labels become names; id2label maps back to these strings
        if not isinstance(label, str) or not label:
            raise _invalid(f"{name} dataset line {number}: 'label' must be a non-empty string")
        texts.append(text)
        labels.append(label)
    if not texts:
        raise _invalid(f"the {name} dataset has no examples")
    return texts, labels


def read_texts(path: Path, name: str) -> list[str]:
    """The texts of a text-only dataset (lines of {"text"}; a label is ignored); errors name the line."""
    return [_text_of(row, name, number) for number, row in _json_lines(path, name)]


def load_splits(
    train_path: Path,
    validation_path: Path | None,
    validation_fraction: float,
    seed: int,
    *,
    test_path: Path | None = None,
    test_fraction: float = 0.0,
    prepare: dict[str, Any] | None = None,
    remove_eval_duplicates: bool = True,
    unlabeled_path: Path | None = None,
) -> Splits:
    """The run's splits. `prepare` holds textprep options (None: texts as given); fractions are shares
    of the training dataset, so 0.1 and 0.1 leave 80% to train on."""
    options = {k: v for k, v in (prepare or {}).items() if k in OPTIONS}
    emptied: dict[str, int] = {}

    def read(path: Path, name: str) -> tuple[list[str], list[str]]:
        texts, labels = read_jsonl(path, name)
        if prepare is None:
            return texts, labels
        kept = [(t, label) for t, label in ((prepare_text(t, **options), label) for t, label in zip(texts, labels)) if t]
        emptied[name] = len(texts) - len(kept)
        if not kept:
            raise _invalid(f"every text of the {name} dataset is empty after preparation (chord lines dropped?)")
        return [t for t, _ in kept], [label for _, label in kept]

    texts, labels = read(train_path, "training")
    label_names = sorted(set(labels))
    if len(label_names) < 2:
        raise _invalid(f"the training dataset has a single label ({label_names[0]!r}); a classifier needs at least 2")
    sources = {"train": "given", "validation": "given" if validation_path else "carved", "test": "none"}

    given: dict[str, tuple[list[str], list[str]]] = {}
    for split, path in (("validation", validation_path), ("test", test_path)):
        if path is None:
            continue
        split_texts, split_labels = read(path, split)
        unseen = sorted(set(split_labels) - set(label_names))
        if unseen:
            shown = ", ".join(repr(u) for u in unseen[:5])
            raise _invalid(f"the {split} dataset has {len(unseen)} label(s) unseen in training: {shown}")
        given[split] = (split_texts, split_labels)
        sources[split] = "given"

    rest = list(range(len(texts)))
    carved: dict[str, list[int]] = {}
    if test_path is None and test_fraction > 0:
        rest, carved["test"] = _carve(rest, labels, test_fraction, seed, "test")
        sources["test"] = "carved"
    if validation_path is None:
        # The share is of the whole dataset, so the validation split is the same size with or without a test split.
        rest, carved["validation"] = _carve(rest, labels, validation_fraction * len(texts) / len(rest), seed, "validation")
    for split, idx in carved.items():
        given[split] = ([texts[i] for i in idx], [labels[i] for i in idx])

    train_texts, train_labels = [texts[i] for i in rest], [labels[i] for i in rest]
    eval_splits = {split: given.get(split, ([], [])) for split in ("validation", "test")}
    leaks, removed = _leaks(train_texts, eval_splits, remove_eval_duplicates)
    if not eval_splits["validation"][0]:
        raise _invalid("every validation text also occurs in training; upload a validation dataset without "
                       "duplicates or set remove_eval_duplicates to false")
    if sources["test"] != "none" and not eval_splits["test"][0]:
        raise _invalid("every test text also occurs in training; upload a test dataset without duplicates "
                       "or set remove_eval_duplicates to false")

    ids = {name: i for i, name in enumerate(label_names)}
    splits = Splits(
        label_names=label_names,
        train_texts=train_texts,
        train_labels=[ids[label] for label in train_labels],
        validation_texts=eval_splits["validation"][0],
        validation_labels=[ids[label] for label in eval_splits["validation"][1]],
        test_texts=eval_splits["test"][0],
        test_labels=[ids[label] for label in eval_splits["test"][1]],
    )
    splits.report.update(
        sources=sources,
        examples={"train": len(splits.train_texts), "validation": len(splits.validation_texts),
                  "test": len(splits.test_texts)},
        label_counts=splits.label_counts(),
        leaks=leaks,
        removed_from_evaluation=removed,
        emptied_by_preparation=emptied,
        duplicates_within_train=len(train_texts) - len(set(train_texts)),
        preparation=options if prepare is not None else None,
    )
    if unlabeled_path is not None:
        raw = read_texts(unlabeled_path, "unlabeled")
        prepared = [t for t in (prepare_text(t, **options) for t in raw) if t] if prepare is not None else raw
        # An evaluation text among them would be learnt before it is measured: left out, and counted.
        held_out = set(splits.validation_texts) | set(splits.test_texts)
        unlabeled = [t for t in prepared if t not in held_out]
        splits.unlabeled_texts.extend(unlabeled)
        splits.report["examples"]["unlabeled"] = len(unlabeled)
        splits.report["removed_from_unlabeled"] = len(prepared) - len(unlabeled)
        splits.report["sources"]["unlabeled"] = "given"
    return splits


def _carve(indices: list[int], labels: list[str], fraction: float, seed: int, name: str) -> tuple[list[int], list[int]]:
    sub = [labels[i] for i in indices]
    keep, held = split_indices(sub, fraction, seed, name)
    return [indices[i] for i in keep], [indices[i] for i in held]


def _leaks(
    train_texts: list[str], eval_splits: dict[str, tuple[list[str], list[str]]], remove: bool
) -> tuple[dict[str, int], dict[str, int]]:
    """Counts evaluation texts that also occur in training (and test texts also in validation);
    when `remove`, drops them from the evaluation split, in place of `eval_splits`."""
    train = set(train_texts)
    validation = set(eval_splits["validation"][0])
    leaks = {
        "validation_in_train": sum(t in train for t in eval_splits["validation"][0]),
        "test_in_train": sum(t in train for t in eval_splits["test"][0]),
        "test_in_validation": sum(t in validation and t not in train for t in eval_splits["test"][0]),
    }
    removed = {"validation": 0, "test": 0}
    if remove:
        for split, seen in (("validation", train), ("test", train | validation)):
            texts, labels = eval_splits[split]
            kept = [(t, label) for t, label in zip(texts, labels) if t not in seen]
            removed[split] = len(texts) - len(kept)
            eval_splits[split] = ([t for t, _ in kept], [label for _, label in kept])
    return leaks, removed


def split_indices(labels: list[str], fraction: float, seed: int, name: str = "validation") -> tuple[list[int], list[int]]:
    """A stratified seeded split; when a class is too small to stratify, a seeded split that keeps
    one example of every label in training, so no held-out label is unseen."""
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
        raise _invalid(f"too few examples to hold out a {name} split; add examples or upload a {name} dataset")
    held_out = set(pool[: max(1, math.ceil(fraction * len(labels)))])
    return [i for i in indices if i not in held_out], sorted(held_out)
