"""The scratch model's character n-gram branch (`char_ngram_buckets`, `char_ngram_sizes`,
`char_ngram_max_words`, `char_ngram_word_bigrams`): off by
default with the model as it was, hashed ids that every process computes alike, and a run that
trains with it and ships it (the card loader's parity is in test_artifact_parity.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import SCRATCH, extract, jsonl, read_events, write_run_dir
from makam_worker.training import textprep
from makam_worker.training.child import EXIT_OK, execute
from makam_worker.training.config import Hyperparameters

TINY = {"layers": 1, "heads": 2, "d_model": 16, "ff_dim": 32, "vocab_size": 120, "max_length": 32,
        "epochs": 8, "batch_size": 8, "learning_rate": 3e-3, "seed": 5, "validation_fraction": 0.25}
# Label by the word's ending, on stems the tokenizer barely sees twice: what character n-grams are for.
STEMS = ("kalem kitap masa kapı pencere duvar sokak köşe bahçe çiçek ağaç deniz göl nehir dağ tepe "
         "şarkı türkü ezgi ses söz yol ev oda").split()
ROWS = [{"text": f"{stem}{suffix} {other} geldi", "label": label}
        for i, stem in enumerate(STEMS) for suffix, label in (("ler", "çoğul"), ("ci", "meslek"))
        for other in (STEMS[(i + 3) % len(STEMS)], STEMS[(i + 7) % len(STEMS)])]
TEXT = "Kalemler masada, ÇİÇEKLER bahçede: güzel günler"


def ids_in_fresh_interpreter(hash_seed: str) -> list[int]:
    code = ("import json, sys; sys.path.insert(0, sys.argv[1]); import textprep; "
            f"print(json.dumps(textprep.char_ngram_ids({TEXT!r}, 65536, '3-5', 32)))")
    done = subprocess.run([sys.executable, "-I", "-c", code, os.path.dirname(textprep.__file__)],
                          capture_output=True, text=True, env={"PYTHONHASHSEED": hash_seed}, check=True)
    return json.loads(done.stdout)


def test_ngram_ids_are_the_same_in_every_process():
    here = textprep.char_ngram_ids(TEXT, 65536, "3-5", 32)
    # Python's hash() of a str differs between these two processes; the ids must not.
    assert ids_in_fresh_interpreter("1") == ids_in_fresh_interpreter("2") == here
    assert all(1 <= i <= 65536 for i in here) and len(set(here)) > 40


def test_ngrams_of_a_word_are_fasttext_style():
    # "<ev>" in 2..4: 3 + 2 + 1 n-grams, no whole-word extra (not longer than 4); "<kalem>" in 3..5:
    # 5 + 4 + 3, plus "<kalem>" whole.
    assert len(textprep.word_ngram_ids("ev", 1 << 20, "2-4")) == 6
    assert len(textprep.word_ngram_ids("kalem", 1 << 20, "3-5")) == 13
    # Shared substrings share ids (the point of the branch): "<kal" of kalem and kalemler.
    assert set(textprep.word_ngram_ids("kalem", 1 << 20, "3-5")) & set(textprep.word_ngram_ids("kalemler", 1 << 20, "3-5"))
    # Words kept as truncation keeps tokens: the last two words with "tail".
    assert textprep.char_ngram_ids("a b c", 100, "1-2", 2, "tail") == textprep.char_ngram_ids("b c", 100, "1-2", 2)


def test_the_branch_reads_the_words_it_is_told_and_word_pairs():
    words = "kalem kitap masa kapı sokak".split()
    text = " ".join(words)
    per_word = [list(textprep.word_ngram_ids(w, 1 << 20, "3-5")) for w in words]
    assert textprep.char_ngram_ids(text, 1 << 20, "3-5", 2) == per_word[0] + per_word[1]
    whole = textprep.char_ngram_ids(text, 1 << 20, "3-5", 100, "head", word_bigrams=True)
    pairs = [textprep.word_pair_id(a, b, 1 << 20) for a, b in zip(words, words[1:])]
    assert whole == sum(per_word, []) + pairs
    # A pair is its own feature: not any n-gram of the words, and order matters.
    assert not set(pairs) & set(sum(per_word, [])) and len(set(pairs)) == 4
    assert textprep.word_pair_id("kitap", "kalem", 1 << 20) != pairs[0]


def test_an_artifact_reads_as_many_words_as_its_run_did(tmp_path):
    """max_words and word_bigrams travel in tokenizer_config.json, so textprep.encode on the download
    reads a long text's n-grams as training did, past max_length words."""
    from transformers import AutoTokenizer

    long_text = " ".join(STEMS * 3)  # 72 words, max_length 32
    hp = {**TINY, "epochs": 1, "char_ngram_buckets": 4096, "char_ngram_max_words": 1000, "char_ngram_word_bigrams": True}
    run_dir = write_run_dir(tmp_path, "run", hp, model=SCRATCH, dataset=jsonl(ROWS))
    assert execute(run_dir) == EXIT_OK, read_events(run_dir)[-1]
    model_dir = tmp_path / "model"
    extract(run_dir / "model.tar.gz", model_dir)
    assert json.loads((model_dir / "tokenizer_config.json").read_text())["char_ngrams"] == {
        "buckets": 4096, "sizes": "3-5", "max_words": 1000, "word_bigrams": True}
    tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=True)
    batch = textprep.encode(tokenizer, [long_text], max_length=32)
    expected = textprep.char_ngram_ids(long_text, 4096, "3-5", 1000, "head", word_bigrams=True)
    assert batch["char_ngram_ids"] == [expected]
    assert len(expected) > len(textprep.char_ngram_ids(long_text, 4096, "3-5", 32)) + 71


def test_off_by_default_gives_the_model_as_before():
    from makam_worker.training.modeling_makam_scratch import MakamScratchConfig, MakamScratchForSequenceClassification

    hp = Hyperparameters.from_dict({}, "scratch")
    assert hp.char_ngram_buckets == 0
    config = MakamScratchConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                intermediate_size=32, max_position_embeddings=32, num_labels=3,
                                char_ngram_buckets=hp.char_ngram_buckets)
    model = MakamScratchForSequenceClassification(config)
    block = ["norm1.weight", "norm1.bias", "attn.qkv.weight", "attn.qkv.bias", "attn.out.weight", "attn.out.bias",
             "norm2.weight", "norm2.bias", "ff.0.weight", "ff.0.bias", "ff.2.weight", "ff.2.bias"]
    assert sorted(model.state_dict()) == sorted(["embeddings.weight", "positions.weight", "norm.weight", "norm.bias",
                                                 "classifier.weight", "classifier.bias"] + [f"blocks.0.{k}" for k in block])
    assert model.classifier.weight.shape == (3, 16)
    assert "char_ngram" not in config.to_json_string()  # config.json is written as a diff from the defaults


def test_a_run_with_the_branch_trains_and_ships_it(tmp_path):
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    hp = {**TINY, "char_ngram_buckets": 4096, "char_ngram_sizes": "2-4"}
    run_dir = write_run_dir(tmp_path, "run", hp, model=SCRATCH, dataset=jsonl(ROWS))
    assert execute(run_dir) == EXIT_OK, read_events(run_dir)[-1]
    events = read_events(run_dir)
    losses = [e["train_loss"] for e in events if e["type"] == "metrics"]
    assert losses[-1] < losses[0]
    summary = events[-1]["final_metrics"]
    assert summary["accuracy"] >= 0.75, summary  # by the endings, which the n-grams share across stems

    model_dir = tmp_path / "model"
    extract(run_dir / "model.tar.gz", model_dir)
    assert json.loads((model_dir / "config.json").read_text())["char_ngram_buckets"] == 4096
    assert json.loads((model_dir / "tokenizer_config.json").read_text())["char_ngrams"] == {"buckets": 4096, "sizes": "2-4"}
    assert load_file(model_dir / "model.safetensors")["char_ngrams.weight"].shape == (4097, 16)

    model = AutoModelForSequenceClassification.from_pretrained(model_dir, trust_remote_code=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=True)
    sys.path.insert(0, str(model_dir))
    try:
        batch = textprep.encode(tokenizer, [r["text"] for r in ROWS], max_length=32, return_tensors="pt")
    finally:
        sys.path.remove(str(model_dir))
    assert batch["char_ngram_ids"].shape[0] == len(ROWS)
    with torch.no_grad():
        logits = model(**batch).logits
        # The branch is read: without its n-grams (all padding) the logits change.
        blank = model(**{**batch, "char_ngram_ids": torch.zeros_like(batch["char_ngram_ids"])}).logits
    assert not torch.allclose(logits, blank)
    with pytest.raises(ValueError, match="char_ngram_ids"):
        model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])


def test_a_run_without_it_ships_no_ngram_settings(tmp_path):
    run_dir = write_run_dir(tmp_path, "run", {**TINY, "epochs": 1}, model=SCRATCH, dataset=jsonl(ROWS))
    assert execute(run_dir) == EXIT_OK, read_events(run_dir)[-1]
    model_dir = tmp_path / "model"
    extract(run_dir / "model.tar.gz", model_dir)
    assert "char_ngram" not in (model_dir / "config.json").read_text()
    assert "char_ngrams" not in (model_dir / "tokenizer_config.json").read_text()


def test_a_run_with_the_branch_resumes_exactly_and_refits(tmp_path):
    import torch
    from safetensors.torch import load_file

    from test_checkpoint import whole_stopped_resumed

    hp = {**TINY, "epochs": 4, "char_ngram_buckets": 1024}
    whole, _, resumed = whole_stopped_resumed(tmp_path / "resume", SCRATCH, hp)
    a, b = load_file(whole / "model" / "model.safetensors"), load_file(resumed / "model" / "model.safetensors")
    assert "char_ngrams.weight" in a and a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    # refit: a fresh model on train + validation, its batches carrying n-grams through refit.py's loader.
    run_dir = write_run_dir(tmp_path, "refit", {**hp, "refit": True, "test_fraction": 0.2}, model=SCRATCH,
                            dataset=jsonl(ROWS))
    assert execute(run_dir) == EXIT_OK, read_events(run_dir)[-1]
    assert read_events(run_dir)[-1]["final_metrics"]["trained_on"] == "train+validation"
    assert "char_ngrams.weight" in load_file(run_dir / "model" / "model.safetensors")
