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
    splits = load_splits(write(tmp_path, "t.jsonl", EXAMPLES), write(tmp_path, "v.jsonl", val), 0.1, seed=1,
                         remove_eval_duplicates=False)
    assert len(splits.train_texts) == len(EXAMPLES) and splits.validation_texts == [r["text"] for r in val]
    assert splits.report["leaks"]["validation_in_train"] == 5 and not splits.has_test


def test_duplicates_across_splits_are_reported_and_removed_from_evaluation(tmp_path):
    train = EXAMPLES[:60]
    fresh = [{"text": f"yepyeni bir şarkı {i}", "label": LABELS[i % 3]} for i in range(6)]
    validation = EXAMPLES[:4] + fresh[:3]  # 4 texts also in training
    test = EXAMPLES[10:12] + fresh[:1] + fresh[3:]  # 2 in training, 1 in validation
    splits = load_splits(write(tmp_path, "t.jsonl", train), write(tmp_path, "v.jsonl", validation), 0.1, seed=1,
                         test_path=write(tmp_path, "x.jsonl", test))
    assert splits.report["leaks"] == {"validation_in_train": 4, "test_in_train": 2, "test_in_validation": 1}
    assert splits.report["removed_from_evaluation"] == {"validation": 4, "test": 3}
    assert splits.validation_texts == [r["text"] for r in fresh[:3]]
    assert splits.test_texts == [r["text"] for r in fresh[3:]]
    assert splits.report["sources"] == {"train": "given", "validation": "given", "test": "given"}


def test_duplicates_are_kept_but_still_counted_when_asked(tmp_path):
    rows = EXAMPLES + EXAMPLES[:12]  # 12 texts twice: a carved split can put one copy on each side
    splits = load_splits(write(tmp_path, "t.jsonl", rows), None, 0.3, seed=2, remove_eval_duplicates=False)
    kept = splits.report["leaks"]["validation_in_train"]
    assert kept > 0 and splits.report["removed_from_evaluation"]["validation"] == 0
    removed = load_splits(write(tmp_path, "t.jsonl", rows), None, 0.3, seed=2)
    assert removed.report["removed_from_evaluation"]["validation"] == kept
    assert len(removed.validation_texts) == len(splits.validation_texts) - kept
    assert not set(removed.validation_texts) & set(removed.train_texts)


def test_a_test_split_is_carved_stratified_and_seeded(tmp_path):
    path = write(tmp_path, "t.jsonl", EXAMPLES)
    splits = load_splits(path, None, 0.25, seed=1, test_fraction=0.25)
    assert Counter(splits.test_labels) == {0: 6, 1: 6, 2: 6} and Counter(splits.validation_labels) == {0: 6, 1: 6, 2: 6}
    assert len(splits.train_texts) == len(EXAMPLES) - 36 and splits.report["sources"]["test"] == "carved"
    assert not set(splits.test_texts) & (set(splits.train_texts) | set(splits.validation_texts))
    again = load_splits(path, None, 0.25, seed=1, test_fraction=0.25)
    assert again.test_texts == splits.test_texts and again.validation_texts == splits.validation_texts
    assert load_splits(path, None, 0.25, seed=2, test_fraction=0.25).test_texts != splits.test_texts
    assert splits.label_counts()["test"] == dict.fromkeys(LABELS, 6)


def test_a_given_test_dataset_wins_over_test_fraction(tmp_path):
    test = [{"text": "bambaşka bir metin", "label": LABELS[0]}]
    splits = load_splits(write(tmp_path, "t.jsonl", EXAMPLES), None, 0.25, seed=1,
                         test_path=write(tmp_path, "x.jsonl", test), test_fraction=0.3)
    assert splits.test_texts == ["bambaşka bir metin"] and len(splits.train_texts) == 54


def test_texts_are_prepared_before_splitting_and_empty_ones_dropped(tmp_path):
    rows = EXAMPLES + [{"text": "Am\\r\\nDm  G/B", "label": LABELS[0]}, {"text": "\\'İSTANBUL\\r\\nAm\\r\\nIşık", "label": LABELS[2]}]
    options = {"unicode_nfc": True, "lowercase": "turkish", "unescape_newlines": True, "drop_chord_lines": True}
    splits = load_splits(write(tmp_path, "t.jsonl", rows), None, 0.25, seed=1, prepare=options)
    everything = splits.train_texts + splits.validation_texts
    assert "istanbul\nışık" in everything and len(everything) == len(EXAMPLES) + 1
    assert splits.report["emptied_by_preparation"] == {"training": 1}
    assert splits.report["preparation"] == options


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
