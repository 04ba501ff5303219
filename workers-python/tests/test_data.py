import json
from collections import Counter

import pytest

from conftest import EXAMPLES, LABELS, jsonl
from makam_worker.training.data import load_splits, split_indices
from makam_worker.training.errors import TrainingError


def write(tmp_path, name, rows):
    path = tmp_path / name
    path.write_bytes(jsonl(rows) if isinstance(rows, list) else rows)
    return path


def test_stratified_split_keeps_label_shares_and_sorted_names(tmp_path):
    splits = load_splits(write(tmp_path, "t.jsonl", EXAMPLES), None, 0.25, seed=1)
    assert splits.label_names == LABELS
    assert len(splits.train_texts) + len(splits.validation_texts) == len(EXAMPLES)
    assert Counter(splits.validation_labels) == {0: 6, 1: 6, 2: 6}


def test_split_is_seeded():
    labels = [e["label"] for e in EXAMPLES]
    assert split_indices(labels, 0.2, seed=3) == split_indices(labels, 0.2, seed=3)
    assert split_indices(labels, 0.2, seed=3) != split_indices(labels, 0.2, seed=4)


def test_too_small_to_stratify_falls_back_keeping_every_label_in_training():
    labels = ["a"] * 6 + ["b"] * 2 + ["c"]  # "c" has a single example: stratifying is impossible
    train, val = split_indices(labels, 0.2, seed=0)
    assert sorted(train + val) == list(range(len(labels)))
    assert val and {labels[i] for i in train} == {"a", "b", "c"}


def test_validation_dataset_is_used_as_given(tmp_path):
    val = EXAMPLES[:5]
    splits = load_splits(write(tmp_path, "t.jsonl", EXAMPLES), write(tmp_path, "v.jsonl", val), 0.1, seed=1)
    assert len(splits.train_texts) == len(EXAMPLES) and splits.validation_texts == [r["text"] for r in val]


@pytest.mark.parametrize(
    ("train", "validation", "message"),
    [
        ([], None, "no examples"),
        ([{"text": "bir", "label": "x"}, {"text": "iki", "label": "x"}], None, "single label"),
        (EXAMPLES, [{"text": "yeni", "label": "caz"}], "unseen in training"),
        (b'{"text": "a", "label": "x"}\nnot json\n', None, "line 2"),
        ([{"text": "", "label": "x"}], None, "'text'"),
        ([{"text": "a", "label": None}], None, "'label'"),
    ],
)
def test_refuses_data_that_cannot_train_a_classifier(tmp_path, train, validation, message):
    val_path = write(tmp_path, "v.jsonl", validation) if validation is not None else None
    with pytest.raises(TrainingError, match=message) as info:
        load_splits(write(tmp_path, "t.jsonl", train), val_path, 0.1, seed=1)
    assert info.value.code == "invalid_dataset" and not info.value.retryable


def test_error_messages_never_quote_dataset_text(tmp_path):
    secret = "gizli şarkı sözü"
    path = write(tmp_path, "t.jsonl", f'{{"text": "{secret}", "label": 3.5}}\n'.encode())
    with pytest.raises(TrainingError) as info:
        load_splits(path, None, 0.1, seed=1)
    assert secret not in info.value.message
