"""The `encoder` family: BERT-like models through AutoModelForSequenceClassification.

A model comes either from `model.name` (a Hugging Face id or local path, read from HF_HOME's cache,
offline when HF_HUB_OFFLINE=1) or from `model.config` (an untrained architecture), in which case a
WordPiece tokenizer is trained on the training split only, so validation text never shapes it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import (
    BertTokenizerFast,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from makam_worker.run_spec import ModelSpec
from makam_worker.training import tokenizer_cache
from makam_worker.training.errors import TrainingError
from makam_worker.training.family import BuildContext, Built, ensure_pad_token, parameter_counts
from makam_worker.training.families.hf_models import (
    attention_notes, enable_gradient_checkpointing, from_config, from_pretrained, tokenizer_settings,
)
from makam_worker.training.model_limits import check_fits, resolve_model_name

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


LOADING = """\
from transformers import AutoModelForSequenceClassification, AutoTokenizer
model = AutoModelForSequenceClassification.from_pretrained(d).eval()
tokenizer = AutoTokenizer.from_pretrained(d)
batch = textprep.encode(tokenizer, texts, max_length={max_length}, truncation={truncation!r}, return_tensors="pt")
labels = [model.config.id2label[i] for i in model(**batch).logits.argmax(-1).tolist()]"""


def build(model_spec: ModelSpec, ctx: BuildContext) -> Built:
    """The `encoder` family for the training loop; gradient checkpointing when asked. A config-built
    model's trained tokenizer is kept for checkpoints, and a resumed run reuses the one it carries."""
    saved = ctx.resume_dir / "tokenizer" if ctx.resume_dir is not None else None
    model, tokenizer = build_encoder(model_spec, ctx.splits.label_names, ctx.splits.tokenizer_texts, saved_tokenizer=saved,
                                     fits=lambda config: check_fits(config, ctx, family="encoder"))
    derived = {}
    if model_spec.config:
        derived["tokenizer"] = ctx.work_dir / "tokenizer"
        tokenizer.save_pretrained(derived["tokenizer"])
    if ctx.hp.gradient_checkpointing:
        enable_gradient_checkpointing(model)
    model.to(ctx.device)
    notes = ensure_pad_token(tokenizer, model) + attention_notes(model)
    max_length = min(ctx.hp.max_length, tokenizer.model_max_length)
    if max_length < ctx.hp.max_length:
        notes.append(f"max_length lowered to the model's limit of {max_length}")

    def save(model_dir: Path) -> None:
        model.save_pretrained(model_dir)
        tokenizer.save_pretrained(model_dir)

    source = model_spec.name or f"untrained {model_spec.config.get('model_type')} built from a config"
    return Built(
        model=model, tokenizer=tokenizer, max_length=max_length, pad_token_id=tokenizer.pad_token_id, save=save,
        source=source, loading=LOADING.format(max_length=max_length, truncation=ctx.hp.truncation), notes=notes,
        info={**parameter_counts(model), "vocab_size": len(tokenizer)}, derived=derived,
    )


def build_encoder(
    model_spec: ModelSpec, label_names: list[str], train_texts: list[str], saved_tokenizer: Path | None = None,
    fits: Callable[[PretrainedConfig], Any] | None = None,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The model, with a classification head for `label_names` in id order, and its tokenizer; with
    a config, the tokenizer in `saved_tokenizer` when given (a resumed run), else one trained anew.
    `fits` sees the model's config before the model is allocated (and may refuse it)."""
    id2label = dict(enumerate(label_names))
    label2id = {name: i for i, name in id2label.items()}
    if model_spec.name:
        source = resolve_model_name(model_spec.name)
        return from_pretrained(source.location, id2label, label2id, hub=source.hub, fits=fits)
    if model_spec.config:
        if saved_tokenizer is not None:
            tokenizer = BertTokenizerFast.from_pretrained(saved_tokenizer)
        else:
            tokenizer = cached_wordpiece(train_texts, tokenizer_settings(model_spec.tokenizer or {}))
        return from_config(dict(model_spec.config), tokenizer, id2label, label2id, fits=fits), tokenizer
    raise TrainingError("invalid_model", "the model needs a name (id or local path) or a config", retryable=False)


def cached_wordpiece(texts: list[str], settings: dict[str, int]) -> PreTrainedTokenizerBase:
    """train_wordpiece, once per texts and settings on a worker (tokenizer_cache.py); always loaded
    from its saved files, so a run gets the same tokenizer whether it was just trained or reused."""
    with tokenizer_cache.cached("wordpiece", texts, settings,
                                lambda d: train_wordpiece(texts, settings).save_pretrained(d)) as directory:
        return BertTokenizerFast.from_pretrained(directory)


def train_wordpiece(texts: list[str], settings: dict[str, int]) -> PreTrainedTokenizerBase:
    """A cased WordPiece tokenizer with BERT's special tokens, loadable with AutoTokenizer.

    The same texts always give the same vocabulary: see `_continuation_tokens`.
    """
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    # Cased and accent-keeping: Turkish letters such as ı/İ and ş/ç carry meaning.
    tok.normalizer = normalizers.BertNormalizer(lowercase=False, strip_accents=False, clean_text=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(
        vocab_size=settings["vocab_size"],
        min_frequency=settings["min_frequency"],
        special_tokens=SPECIAL_TOKENS + _continuation_tokens(tok, texts),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)

    # Rebuild from the learnt vocabulary so that only BERT's tokens are special.
    vocab = tok.get_vocab(with_added_tokens=False)
    final = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]"))
    final.normalizer, final.pre_tokenizer = tok.normalizer, tok.pre_tokenizer
    final.add_special_tokens(SPECIAL_TOKENS)
    cls_id, sep_id = final.token_to_id("[CLS]"), final.token_to_id("[SEP]")
    final.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    final.decoder = decoders.WordPiece(prefix="##")
    return BertTokenizerFast(tokenizer_object=final, do_lower_case=False)


def _continuation_tokens(tok: Tokenizer, texts: list[str]) -> list[str]:
    """Every "##c" the trainer will need, sorted. The trainer gives these ids in hash-map order,
    and merge ties are broken by id, so without fixing them first the vocabulary changes from run
    to run; passed ahead of training, they take fixed ids and the merges become reproducible."""
    chars: set[str] = set()
    for text in texts:
        for word, _ in tok.pre_tokenizer.pre_tokenize_str(tok.normalizer.normalize_str(text)):
            chars.update(word[1:])
    return [f"##{c}" for c in sorted(chars)]
