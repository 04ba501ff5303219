"""The `scratch` family: the guide's improved from-scratch transformer (modeling_makam_scratch.py),
with a SentencePiece tokenizer (BPE or unigram) trained on the training split only.

Everything comes from the hyperparameters (no model.name or model.config). The artifact ships the
modeling file and textprep.py, so it loads with trust_remote_code and no makam installed.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path
from typing import Any

from makam_worker.run_spec import ModelSpec
from makam_worker.training import tokenizer_cache
from makam_worker.training.errors import TrainingError
from makam_worker.training.family import BuildContext, Built, parameter_counts
from makam_worker.training.modeling_makam_scratch import (
    MakamScratchConfig,
    MakamScratchForSequenceClassification,
    MakamScratchTokenizer,
)
from makam_worker.training.textprep import OPTIONS

PAD, UNK, BOS, EOS = 0, 1, 2, 3
# Learned positions, as BERT; the config also takes "sinusoidal" (not a hyperparameter).
POSITIONS = "learned"

LOADING = """\
from transformers import AutoModelForSequenceClassification, AutoTokenizer
model = AutoModelForSequenceClassification.from_pretrained(d, trust_remote_code=True).eval()
tokenizer = AutoTokenizer.from_pretrained(d, trust_remote_code=True)
batch = textprep.encode(tokenizer, texts, max_length={max_length}, truncation={truncation!r}, return_tensors="pt")
labels = [model.config.id2label[i] for i in model(**batch).logits.argmax(-1).tolist()]"""


def cached_sentencepiece(texts: list[str], vocab_size: int, model_type: str) -> bytes:
    """train_sentencepiece, once per texts and settings on a worker (tokenizer_cache.py)."""
    def train(directory: Path) -> None:
        (directory / "tokenizer.model").write_bytes(train_sentencepiece(texts, vocab_size, model_type))

    settings = {"vocab_size": vocab_size, "model_type": model_type}
    with tokenizer_cache.cached("sentencepiece", texts, settings, train) as directory:
        return (directory / "tokenizer.model").read_bytes()


def train_sentencepiece(texts: list[str], vocab_size: int, model_type: str) -> bytes:
    """A SentencePiece model trained on `texts` (one text a sentence), with <pad>=0, <unk>=1, <s>=2,
    </s>=3. Deterministic: all texts are used, in order. vocab_size is a soft limit on small data."""
    import sentencepiece as spm

    out = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(texts), model_writer=out, vocab_size=vocab_size, model_type=model_type,
            pad_id=PAD, unk_id=UNK, bos_id=BOS, eos_id=EOS,
            pad_piece="<pad>", unk_piece="<unk>", bos_piece="<s>", eos_piece="</s>",
            character_coverage=1.0, input_sentence_size=0, shuffle_input_sentence=False,
            max_sentence_length=1 << 20, hard_vocab_limit=False, num_threads=1, minloglevel=2,
        )
    except RuntimeError as e:
        raise TrainingError(
            "invalid_hyperparameters",
            f"the SentencePiece {model_type} tokenizer could not be trained with vocab_size {vocab_size}: "
            f"{str(e).strip().splitlines()[-1]}",
        ) from None
    return out.getvalue()


def build(model_spec: ModelSpec, ctx: BuildContext) -> Built:
    if model_spec.name or model_spec.config:
        raise TrainingError("invalid_model", "the scratch family takes no model name or config: "
                            "its shape comes from the hyperparameters (layers, heads, d_model, ff_dim)")
    hp, labels = ctx.hp, ctx.splits.label_names
    ctx.work_dir.mkdir(parents=True, exist_ok=True)
    vocab_file = ctx.work_dir / "tokenizer.model"
    if ctx.resume_dir is not None:  # a resumed run: the vocabulary its checkpoint carries
        shutil.copyfile(ctx.resume_dir / "tokenizer.model", vocab_file)
    else:
        vocab_file.write_bytes(cached_sentencepiece(ctx.splits.tokenizer_texts, hp.vocab_size, hp.tokenizer_model))
    preprocessing = {name: getattr(hp, name) for name in OPTIONS}
    # The tokenizer carries the n-gram settings, so textprep.encode (the card's loader and the loop) adds them.
    char_ngrams = None
    if hp.char_ngram_buckets:  # the optional keys only when set: an artifact without them loads as before
        char_ngrams = {"buckets": hp.char_ngram_buckets, "sizes": hp.char_ngram_sizes}
        if hp.char_ngram_max_words is not None:
            char_ngrams["max_words"] = hp.char_ngram_max_words
        if hp.char_ngram_word_bigrams:
            char_ngrams["word_bigrams"] = True
    tokenizer = MakamScratchTokenizer(vocab_file=str(vocab_file), preprocessing=preprocessing,
                                      char_ngrams=char_ngrams, model_max_length=hp.max_length)
    if hp.mlm_epochs:  # the masked-LM phase's mask token (mlm.py); a run without the phase keeps the vocabulary as it was
        tokenizer.add_special_tokens({"mask_token": "<mask>"})
    config = MakamScratchConfig(
        vocab_size=len(tokenizer),
        hidden_size=hp.d_model,
        num_hidden_layers=hp.layers,
        num_attention_heads=hp.heads,
        intermediate_size=hp.ff_dim,
        hidden_dropout_prob=hp.dropout,
        max_position_embeddings=hp.max_length,
        position_embedding_type=POSITIONS,
        pooling=hp.pooling,
        char_ngram_buckets=hp.char_ngram_buckets,
        char_ngram_sizes=hp.char_ngram_sizes,
        pad_token_id=tokenizer.pad_token_id,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={name: i for i, name in enumerate(labels)},
    )
    model = MakamScratchForSequenceClassification(config).to(ctx.device)

    def save(model_dir: Path) -> None:
        # Registered here, so save_pretrained writes auto_map and copies the modeling file and textprep.py.
        MakamScratchConfig.register_for_auto_class()
        MakamScratchForSequenceClassification.register_for_auto_class("AutoModelForSequenceClassification")
        MakamScratchTokenizer.register_for_auto_class("AutoTokenizer")
        model.save_pretrained(model_dir)
        tokenizer.save_pretrained(model_dir)

    return Built(
        model=model, tokenizer=tokenizer, max_length=hp.max_length, pad_token_id=tokenizer.pad_token_id, save=save,
        source=f"from scratch: {hp.layers} pre-norm blocks, d_model {hp.d_model}, {hp.heads} heads, "
               f"ff_dim {hp.ff_dim}, {POSITIONS} positions, {hp.pooling} pooling; "
               f"SentencePiece {hp.tokenizer_model} vocabulary of {len(tokenizer)}"
               + (f"; character {hp.char_ngram_sizes}-grams of each word"
                  + (" and adjacent word pairs" if hp.char_ngram_word_bigrams else "")
                  + f" hashed into {hp.char_ngram_buckets} buckets, over at most {hp.char_ngram_max_words or hp.max_length} words"
                  if hp.char_ngram_buckets else ""),
        loading=LOADING.format(max_length=hp.max_length, truncation=hp.truncation),
        info={**parameter_counts(model), "vocab_size": len(tokenizer)},
        derived={"tokenizer.model": vocab_file},
    )
