"""The artifact a user downloads, loaded exactly as its model card prints, predicts what the worker
evaluated, label for label on the test split, for every family and every `truncation`.

The texts are longer than max_length and their label's evidence sits at the end, so a loader that
truncated otherwise than training did (a tokenizer keeping the head of a head+tail run, say) would
predict something else. The worker's own predictions are read off its evaluation path
(`evaluation_report`, patched to record its arguments) while the run trains in this process.
"""

from __future__ import annotations

import json
import random

import pytest

from card_blocks import run_card_loader
from conftest import SCRATCH, TINY_BERT, TINY_LLAMA, extract, jsonl, read_events, write_run_dir
from makam_worker.training.child import EXIT_OK, execute

# The evidence: the last words of a text name its label.
ENDINGS = {"aşk": "kalbim seni özledi", "doğa": "dağların ardında orman", "şehir": "metro kalabalık trafik"}
# The first word agrees with the label two times in three, so a head-truncated model learns something
# too (confident predictions, no near ties) and still differs from one that reads the tail.
OPENINGS = {"aşk": "sevda", "doğa": "toprak", "şehir": "beton"}
FILLER = ("bugün yarın sabah akşam hava yol ev kapı masa kitap kalem çay kahve ekmek su pencere duvar "
          "sokak köşe gün yıl saat dakika renk ses söz şarkı türkü ezgi").split()
MAX_LENGTH = 32
COMMON = {"batch_size": 8, "max_length": MAX_LENGTH, "seed": 3, "validation_fraction": 0.25}
RUNS = {
    "encoder": ({"family": "encoder", "name": "", "config": dict(TINY_BERT), "tokenizer": {"vocab_size": 300}},
                {**COMMON, "epochs": 10, "learning_rate": 3e-3}),
    "decoder": ({"family": "decoder", "name": "", "config": dict(TINY_LLAMA), "tokenizer": {"vocab_size": 400}},
                {**COMMON, "epochs": 4, "learning_rate": 5e-3, "lora_target_modules": [
                    "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]}),
    "scratch": (dict(SCRATCH),
                {**COMMON, "epochs": 6, "learning_rate": 3e-3, "layers": 2, "heads": 2, "d_model": 32,
                 "ff_dim": 64, "vocab_size": 200}),
    "tfidf": ({"family": "tfidf", "name": "", "config": None, "tokenizer": None}, {"seed": 3}),
}
CASES = [(f, t, {}) for f in ("encoder", "decoder", "scratch") for t in ("head", "tail", "head+tail")] + [
    ("decoder", "head+tail", {"export": "merged"}),  # the other decoder card: a plain model, adapter merged in
    # The character n-gram branch: its ids come from textprep.encode, truncated to the words training kept.
    ("scratch", "tail", {"char_ngram_buckets": 4096, "char_ngram_sizes": "2-4"}),
    # ... and reading every word of a text (past max_length) with word pairs.
    ("scratch", "head+tail", {"char_ngram_buckets": 4096, "char_ngram_max_words": 1000, "char_ngram_word_bigrams": True}),
    ("tfidf", None, {}),
]
IDS = ["-".join([f, *([t] if t else []), *map(str, extra.values())]) for f, t, extra in CASES]


def make_rows(n: int, rng: random.Random) -> list[dict]:
    """`n` texts per label: an opening word, 40-60 filler words, then the label's ending; raw, as
    scraped rows arrive (an escaped line break before the ending, a capitalised opening)."""
    rows = []
    for _ in range(n):
        for label, ending in ENDINGS.items():
            opening = OPENINGS[label] if rng.random() < 2 / 3 else OPENINGS[rng.choice(sorted(OPENINGS))]
            filler = " ".join(rng.choice(FILLER) for _ in range(rng.randint(40, 60)))
            rows.append({"text": f"{opening.capitalize()} {filler}\\r\\n{ending} {ending}", "label": label})
    rng.shuffle(rows)
    return rows


RNG = random.Random(13)
TRAIN, VALIDATION, TEST = make_rows(16, RNG), make_rows(6, RNG), make_rows(8, RNG)


def train_and_download(tmp_path, family: str, hp: dict) -> tuple:
    """Trains `family` on TRAIN, VALIDATION and TEST given as split datasets; returns its run dir and
    its artifact unpacked where a user would have it."""
    model, _ = RUNS[family]
    run_dir = write_run_dir(tmp_path, "run", hp, model=json.loads(json.dumps(model)), dataset=jsonl(TRAIN),
                            validation=jsonl(VALIDATION), test=jsonl(TEST))
    assert execute(run_dir) == EXIT_OK, read_events(run_dir)[-1]
    artifact = tmp_path / "downloaded" / "model"
    extract(run_dir / "model.tar.gz", artifact)  # the packed files, as the user gets them
    return run_dir, artifact


@pytest.fixture()
def worker_predictions(monkeypatch):
    """The label names the run's final evaluation predicted, in the split's order, and its references."""
    from makam_worker.training import trainer
    from makam_worker.training.families import tfidf

    seen: list[tuple] = []
    for module in (trainer, tfidf):
        original = module.evaluation_report

        def recording(split, references, predictions, names, *args, _original=original, **kwargs):
            seen.append((split, [names[i] for i in references], [names[i] for i in predictions]))
            return _original(split, references, predictions, names, *args, **kwargs)

        monkeypatch.setattr(module, "evaluation_report", recording)
    return seen


@pytest.mark.parametrize(("family", "truncation", "extra"), CASES, ids=IDS)
def test_the_card_loader_predicts_what_the_worker_evaluated(tmp_path, worker_predictions, family, truncation, extra):
    hp = {**RUNS[family][1], **({"truncation": truncation} if truncation else {}), **extra}
    run_dir, artifact = train_and_download(tmp_path, family, hp)
    split, references, evaluated = worker_predictions[-1]
    assert split == "test" and references == [row["label"] for row in TEST]
    summary = read_events(run_dir)[-1]["final_metrics"]
    assert summary["accuracy"] == pytest.approx(sum(p == y for p, y in zip(evaluated, references)) / len(TEST))

    card = (artifact / "README.md").read_text()
    predicted = run_card_loader(artifact, [row["text"] for row in TEST])
    assert predicted == evaluated

    if truncation:
        metrics = json.loads((artifact / "metrics.json").read_text())
        # Every text was cut, so a loader truncating otherwise than training would see other tokens.
        assert metrics["model"]["train_texts_truncated"] == summary["train_examples"] == len(TRAIN)
        assert f"- Truncation: {truncation}, to {MAX_LENGTH} tokens" in card
        if truncation != "head":
            # The evidence at the end was learnt (chance is 1/3), so a head-only loader would disagree.
            assert summary["accuracy"] >= 0.8, summary


def test_encode_pads_on_the_right_as_training_collates_and_refuses_an_unknown_truncation():
    import torch

    from makam_worker.training import textprep
    from makam_worker.training.families.encoder import train_wordpiece
    from makam_worker.training.trainer import TextEncoder, collate

    words = [f"w{i}" for i in range(30)]
    tokenizer = train_wordpiece([" ".join(words)], {"vocab_size": 200, "min_frequency": 0})
    texts = [" ".join(words), "w1 w2"]
    ids, _ = TextEncoder(tokenizer, 12, "head+tail")(texts)
    collated = collate([(i, x, 0) for i, x in enumerate(ids)], tokenizer.pad_token_id)
    batch = textprep.encode(tokenizer, texts, max_length=12, truncation="head+tail", return_tensors="pt")
    assert torch.equal(batch["input_ids"], collated["input_ids"])
    assert torch.equal(batch["attention_mask"], collated["attention_mask"])
    assert textprep.encode(tokenizer, ["w1 w2"], max_length=12)["input_ids"] == [ids[1]]
    with pytest.raises(ValueError, match="truncation must be one of"):
        textprep.encode(tokenizer, texts, max_length=12, truncation="middle")
