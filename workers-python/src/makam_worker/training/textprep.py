"""Text preparation for scraped Turkish text, standard library only.

The worker prepares every split with these functions before training, and ships this file in every
artifact (with the options in preprocessing.json), so predictions see text prepared the same way:

    import json, textprep
    options = json.load(open("model/preprocessing.json"))
    textprep.prepare_text("\\\\'Seni SEVİYORUM\\\\r\\\\nAm", **options)

`prepare_text` is idempotent: preparing prepared text changes nothing.

`encode` turns prepared texts into the model input the worker trained and evaluated on, with the
run's truncation (`head`, `tail` or `head+tail`, which no tokenizer option gives); the training loop
calls the same functions, so the model card's loader predicts what the run reported:

    batch = textprep.encode(tokenizer, texts, max_length=128, truncation="head+tail", return_tensors="pt")
    logits = model(**batch).logits
"""

from __future__ import annotations

import re
import unicodedata

# A chord name: root, accidental, quality, extensions, an optional bass note (Am, C#m7, G/B, Fmaj7, Dsus4, Bb).
_CHORD = re.compile(
    r"[A-G](?:#|b)?(?:maj|min|dim|aug|sus|add|m|M|\+|°)?\d*(?:(?:maj|sus|add|b|#|\+|-)\d+)*(?:/[A-G](?:#|b)?)?"
)
# Characters around chord names on a chord line: brackets, bars, dashes, commas.
_SEPARATORS = "()[]{}|-–.,:;*"
_ESCAPED_QUOTE = re.compile(r"\\+(['\"])")


def unescape(text: str) -> str:
    """Literal backslash sequences as real characters: a leading \\' (an artefact of scraped rows) is
    dropped, \\r\\n and \\n become a line break, \\t a tab, and backslash-escaped quotes inside the
    text (O\\\\\\'ndan) a plain quote."""
    while text.startswith("\\'"):
        text = text[2:]
    text = text.replace("\\r\\n", "\n").replace("\\n", "\n").replace("\\r", "\n").replace("\\t", "\t")
    return _ESCAPED_QUOTE.sub(r"\1", text)


def is_chord_line(line: str) -> bool:
    """True for a line made only of chord names (and separators), such as "Am  F  C/E" or "(Dm)"."""
    chords = 0
    for token in line.split():
        token = token.strip(_SEPARATORS)
        if not token:
            continue
        if not _CHORD.fullmatch(token):
            return False
        chords += 1
    return chords > 0


def drop_chords(text: str) -> str:
    return "\n".join(line for line in text.split("\n") if not is_chord_line(line))


def turkish_lower(text: str) -> str:
    """Lower case with Turkish dotted and dotless i: I -> ı, İ -> i, then str.lower()."""
    return text.replace("I", "ı").replace("İ", "i").lower()


def prepare_text(
    text: str,
    *,
    unicode_nfc: bool = True,
    lowercase: str = "none",
    unescape_newlines: bool = True,
    drop_chord_lines: bool = False,
) -> str:
    """Applies the options in a fixed order: unescape, NFC, drop chord lines, lower case, strip."""
    if unescape_newlines:
        text = unescape(text)
    if unicode_nfc:
        text = unicodedata.normalize("NFC", text)
    if drop_chord_lines:
        text = drop_chords(text)
    if lowercase == "turkish":
        text = turkish_lower(text)
    elif lowercase != "none":
        raise ValueError(f"lowercase must be 'none' or 'turkish' (got {lowercase!r})")
    return text.strip()


OPTIONS = ("unicode_nfc", "lowercase", "unescape_newlines", "drop_chord_lines")
TRUNCATIONS = ("head", "tail", "head+tail")


def truncate(ids: list, budget: int, mode: str) -> list:
    """At most `budget` ids: the first (head), the last (tail), or both (head+tail: 128 of every 510
    from the head and the rest from the tail, the best split in Sun et al. 2019, "How to Fine-Tune
    BERT for Text Classification")."""
    if mode not in TRUNCATIONS:
        raise ValueError(f"truncation must be one of {', '.join(TRUNCATIONS)} (got {mode!r})")
    if len(ids) <= budget:
        return list(ids)
    if budget <= 0:
        return []
    if mode == "head":
        return list(ids[:budget])
    if mode == "tail":
        return list(ids[-budget:])
    head = round(budget * 128 / 510)
    tail = budget - head
    return list(ids[:head]) + (list(ids[-tail:]) if tail else [])


def special_affixes(tokenizer) -> tuple:
    """The special token ids a Hugging Face tokenizer puts before and after a single text
    ([CLS] / [SEP], <s> / none), found by tokenizing a sample with and without them."""
    sample = "a b"
    plain = tokenizer(sample, add_special_tokens=False)["input_ids"]
    full = tokenizer(sample, add_special_tokens=True)["input_ids"]
    for start in range(len(full) - len(plain) + 1):
        if full[start : start + len(plain)] == plain:
            return list(full[:start]), list(full[start + len(plain) :])
    raise ValueError("the tokenizer's special tokens could not be told apart from the text")


def encode_ids(tokenizer, texts: list, max_length: int, truncation: str = "head") -> tuple:
    """Each text's input ids, as the worker made them for training and evaluation: tokenized without
    special tokens, cut to the budget the special tokens leave, then wrapped in them. Returns the
    ids and how many texts were cut."""
    prefix, suffix = special_affixes(tokenizer)
    budget = max_length - len(prefix) - len(suffix)
    if budget < 1:
        raise ValueError(f"max_length {max_length} leaves no room for text")
    out, truncated = [], 0
    for start in range(0, len(texts), 512):  # bounded memory for the tokenizer's batch
        # verbose=False: texts longer than the model's limit are expected; they are cut here.
        for ids in tokenizer(list(texts[start : start + 512]), add_special_tokens=False, verbose=False)["input_ids"]:
            truncated += len(ids) > budget
            out.append(prefix + truncate(ids, budget, truncation) + suffix)
    return out, truncated


def encode(tokenizer, texts: list, max_length: int, truncation: str = "head", return_tensors=None) -> dict:
    """A batch for model(**batch): `input_ids` from encode_ids and `attention_mask`, padded on the
    right with the tokenizer's pad token as in training; lists, or torch tensors with
    return_tensors="pt"."""
    ids, _ = encode_ids(tokenizer, texts, max_length, truncation)
    width = max((len(row) for row in ids), default=0)
    batch = {
        "input_ids": [row + [tokenizer.pad_token_id] * (width - len(row)) for row in ids],
        "attention_mask": [[1] * len(row) + [0] * (width - len(row)) for row in ids],
    }
    if return_tensors == "pt":
        import torch  # only here: the preparation above needs nothing beyond the standard library

        return {key: torch.tensor(value, dtype=torch.long) for key, value in batch.items()}
    if return_tensors is not None:
        raise ValueError(f"return_tensors must be None or 'pt' (got {return_tensors!r})")
    return batch
