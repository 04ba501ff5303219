"""Trained tokenizers reused by content (training/tokenizer_cache.py): one training per texts and
settings on a worker, byte-identical files for every run that reuses it, a new one when a setting
or a text changes, entries stored whole or not at all."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from conftest import EXAMPLES, QUICK, write_run_dir
from makam_worker.training import tokenizer_cache
from makam_worker.training.child import EXIT_OK, execute
from makam_worker.training.families.scratch import cached_sentencepiece

TEXTS = [e["text"] for e in EXAMPLES]


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "tokenizers"
    monkeypatch.setenv(tokenizer_cache.ENV, str(root))  # as the worker names it to its runs
    return root


def entries(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir()) if root.exists() else []


def files_of(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def test_a_tokenizer_is_trained_once_per_texts_and_settings(cache):
    trained = []

    def train(settings):
        def write(directory: Path) -> None:
            trained.append(settings)
            (directory / "vocab.txt").write_text(f"{settings}\n")
        return write

    def use(texts, settings):
        with tokenizer_cache.cached("wordpiece", texts, settings, train(settings)) as directory:
            return files_of(directory)

    first = use(TEXTS, {"vocab_size": 300})
    assert use(TEXTS, {"vocab_size": 300}) == first and len(trained) == 1
    use(TEXTS, {"vocab_size": 400})  # another setting
    use(TEXTS[:-1], {"vocab_size": 300})  # other texts
    use(TEXTS[:-2] + [TEXTS[-2] + TEXTS[-1]], {"vocab_size": 300})  # the same characters, split elsewhere
    assert len(trained) == 4 and len(entries(cache)) == 4


def test_a_failed_training_stores_nothing(cache):
    def fail(directory: Path) -> None:
        (directory / "half.txt").write_text("half")
        raise RuntimeError("the trainer gave up")

    with pytest.raises(RuntimeError):
        with tokenizer_cache.cached("wordpiece", TEXTS, {"vocab_size": 300}, fail):
            pass
    assert entries(cache) == []  # no entry, and no temporary directory left


def test_sentencepiece_is_reused_byte_for_byte_and_retrained_for_another_model_type(cache):
    first = cached_sentencepiece(TEXTS, 60, "bpe")
    assert cached_sentencepiece(TEXTS, 60, "bpe") == first
    assert len(entries(cache)) == 1
    cached_sentencepiece(TEXTS, 60, "unigram")
    assert len(entries(cache)) == 2


def test_two_runs_on_the_same_data_train_the_tokenizer_once_and_a_new_setting_again(cache, tmp_path, caplog):
    """Real runs (the child's `execute`): a config-built encoder, whose WordPiece is trained on the split."""
    caplog.set_level(logging.INFO, logger="makam_worker.training")
    model = {"family": "encoder", "name": "", "config": {"model_type": "bert", "hidden_size": 16,
             "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32,
             "max_position_embeddings": 64}}
    hp = {**QUICK, "epochs": 1}

    def run(name: str, tokenizer: dict) -> dict[str, bytes]:
        run_dir = write_run_dir(tmp_path / "runs", name, hp, model={**model, "tokenizer": tokenizer})
        assert execute(run_dir) == EXIT_OK
        return files_of(run_dir / "work" / "tokenizer")  # what its checkpoints carry

    first = run("first", {"vocab_size": 300})
    second = run("second", {"vocab_size": 300})
    assert first and second == first
    assert len(entries(cache)) == 1
    messages = [r.getMessage() for r in caplog.records if "wordpiece tokenizer" in r.getMessage()]
    assert ["trained" in m for m in messages] == [True, False] and "reused" in messages[1]

    run("third", {"vocab_size": 250})
    assert len(entries(cache)) == 2
