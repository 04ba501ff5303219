"""Augmentation of the training split (augment.py): off by default, a new draw per epoch that depends
only on (seed, epoch), and never applied to the validation or test texts; a real run's encoded texts
are recorded to show what the loop trained and evaluated on."""

from __future__ import annotations

from collections import Counter

import pytest

from conftest import EXAMPLES, SCRATCH, jsonl, read_events, write_run_dir
from makam_worker.training import augment, trainer
from makam_worker.training.augment import Augmenter
from makam_worker.training.child import EXIT_OK, execute
from makam_worker.training.config import Hyperparameters

TEXTS = ["bir iki üç dört beş altı yedi sekiz", "kısa metin", "tek",
         "birinci satır burada\nikinci satır orada\nüçüncü satır şurada\ndördüncü satır"]


def words(text: str) -> list[str]:
    return text.split()


def draw(epoch: int = 1, seed: int = 7, **rates) -> list[str]:
    base = {"deletion": 0.0, "swap": 0.0, "span_mask": 0.0, "line_shuffle": 0.0}
    return Augmenter(**{**base, **rates}, seed=seed, mask="[MASK]").texts(TEXTS, epoch)


@pytest.mark.parametrize("family", ["encoder", "decoder", "scratch"])
def test_off_by_default(family):
    assert augment.for_run(Hyperparameters.from_dict({}, family), tokenizer=None) is None


def test_each_operation_keeps_what_it_should():
    deleted = draw(deletion=0.5)
    assert all(1 <= len(words(d)) <= len(words(t)) for d, t in zip(deleted, TEXTS))
    assert all(set(words(d)) <= set(words(t)) for d, t in zip(deleted, TEXTS)) and deleted != TEXTS
    swapped = draw(swap=0.3)
    assert [Counter(words(s)) for s in swapped] == [Counter(words(t)) for t in TEXTS] and swapped != TEXTS
    assert swapped[2] == "tek"  # one word: nothing to swap
    masked = draw(span_mask=0.25)
    assert [words(m).count("[MASK]") for m in masked] == [2, 1, 1, 3]
    # The masked words are one span: the rest of the text is as it was around it.
    first = words(masked[0])
    start = first.index("[MASK]")
    assert first[:start] + words(TEXTS[0])[start:start + 2] + first[start + 2:] == words(TEXTS[0])
    shuffled = draw(line_shuffle=1.0)
    assert sorted(shuffled[3].split("\n")) == sorted(TEXTS[3].split("\n")) and shuffled[3] != TEXTS[3]
    assert shuffled[:3] == TEXTS[:3]  # one line: nothing to shuffle, the text as it was
    dropped = Augmenter(0.0, 0.0, 0.5, 0.0, seed=7, mask=None).texts(TEXTS, 1)  # no mask token: the span goes
    assert [len(words(d)) for d in dropped] == [4, 1, 1, 5]


def test_a_draw_depends_only_on_the_seed_and_the_epoch():
    rates = {"deletion": 0.2, "swap": 0.2, "span_mask": 0.2, "line_shuffle": 0.5}
    assert draw(3, **rates) == draw(3, **rates)  # a resumed run at epoch 3 draws what an uninterrupted one did
    assert draw(3, **rates) != draw(4, **rates) and draw(3, **rates) != draw(3, seed=8, **rates)


def test_the_mask_is_a_token_the_tokenizer_reads_as_one_id():
    from makam_worker.training.families.encoder import train_wordpiece

    tokenizer = train_wordpiece([e["text"] for e in EXAMPLES], {"vocab_size": 300, "min_frequency": 0})
    assert augment.mask_token(tokenizer) == "[MASK]"


TINY_SCRATCH = {"epochs": 3, "batch_size": 8, "learning_rate": 3e-3, "layers": 1, "heads": 2, "d_model": 32,
                "ff_dim": 64, "vocab_size": 120, "seed": 3, "validation_fraction": 0.25}
AUGMENTS = {"augment_word_deletion": 0.2, "augment_word_swap": 0.2, "augment_span_mask": 0.2,
            "augment_line_shuffle": 0.5}


ENCODE = trainer.TextEncoder.__call__  # the real one, whatever a test patched in before


def recorded_run(tmp_path, monkeypatch, name: str, **extra) -> tuple[list[list[str]], dict]:
    """Trains a tiny scratch model in this process; returns every list of texts the loop encoded."""
    encoded: list[list[str]] = []

    def record(self, texts):
        encoded.append(list(texts))
        return ENCODE(self, texts)

    monkeypatch.setattr(trainer.TextEncoder, "__call__", record)
    rows = [{**e, "text": e["text"] + "\nikinci satır"} if i % 2 else e for i, e in enumerate(EXAMPLES)]
    run_dir = write_run_dir(tmp_path, name, {**TINY_SCRATCH, **extra}, model=dict(SCRATCH), dataset=jsonl(rows))
    assert execute(run_dir) == EXIT_OK, (run_dir / "train.log").read_text()
    return encoded, read_events(run_dir)[-1]["final_metrics"]


def test_a_run_trains_on_a_new_draw_each_epoch_and_evaluates_on_the_texts_as_given(tmp_path, monkeypatch):
    plain, plain_summary = recorded_run(tmp_path, monkeypatch, "plain")
    train, validation = plain  # off: each split encoded once, as given
    assert len(train) == 54 and len(validation) == 18

    on, summary = recorded_run(tmp_path, monkeypatch, "on", **AUGMENTS)
    assert on[:2] == plain  # the tokenizer's texts and the evaluation's are the same
    epochs = on[2:]
    assert len(epochs) == TINY_SCRATCH["epochs"]
    for drawn in epochs:
        assert len(drawn) == len(train) and drawn != train
        assert sum(d != t for d, t in zip(drawn, train)) > len(train) // 2
    assert epochs[0] != epochs[1]
    again, again_summary = recorded_run(tmp_path, monkeypatch, "again", **AUGMENTS)
    assert again == on and again_summary["validation"] == summary["validation"]
    # Validation figures are of the same validation texts; they differ because training did.
    assert summary["validation_examples"] == plain_summary["validation_examples"]


def test_the_refit_trains_on_draws_of_train_and_validation(tmp_path, monkeypatch):
    encoded, summary = recorded_run(tmp_path, monkeypatch, "refit", refit=True, test_fraction=0.2, epochs=2,
                                    **AUGMENTS)
    refit = summary["refit"]
    assert refit is not None and summary["validation_examples"] > 0
    rows = refit["rows"]
    merged = next(texts for texts in encoded if len(texts) == rows)  # the refit's texts as given
    draws = [texts for texts in encoded[encoded.index(merged) + 1:] if len(texts) == rows]
    assert len(draws) == refit["epochs"] and all(d != merged for d in draws)
    assert encoded[-1] == encoded[2]  # the test split, encoded again for the refit model, as given


def test_a_resumed_run_with_augmentation_and_refit_ends_as_an_uninterrupted_one(tmp_path):
    from safetensors.torch import load_file
    from test_checkpoint import RUNS, whole_stopped_resumed

    model, hp = RUNS["scratch"]
    hp = {**hp, **AUGMENTS, "epochs": 4, "refit": True, "test_fraction": 0.2}
    whole, _, resumed = whole_stopped_resumed(tmp_path, model, hp)
    assert [e["resumed_from_epoch"] for e in read_events(resumed) if e["type"] == "started"] == [3]

    def without_timing(run_dir) -> dict:
        summary = read_events(run_dir)[-1]["final_metrics"]
        return {k: v for k, v in summary.items() if k != "throughput"}

    assert without_timing(resumed) == without_timing(whole) and without_timing(whole)["refit"]["epochs"] >= 1
    a, b = load_file(whole / "model" / "model.safetensors"), load_file(resumed / "model" / "model.safetensors")
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
