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

import functools
import hashlib
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


def _parse_sizes(sizes: str) -> tuple:
    low, _, high = sizes.partition("-")
    return int(low), int(high or low)


@functools.lru_cache(maxsize=1 << 16)  # words repeat (Zipf): each distinct word is hashed once
def word_ngram_ids(word: str, buckets: int, sizes: str) -> tuple:
    """fastText-style ids of a word: the character n-grams of "<word>" (lengths `sizes`, "3-5"),
    and the whole "<word>" when longer, each hashed into 1..buckets (0 is padding). The hash is
    blake2b of the UTF-8 bytes, not Python's hash(), which is salted per process: the worker and the
    artifact's loader must compute the same ids."""
    low, high = _parse_sizes(sizes)
    marked = f"<{word}>"
    grams = [marked[i : i + n] for n in range(low, high + 1) for i in range(len(marked) - n + 1)]
    if len(marked) > high:
        grams.append(marked)
    return tuple(
        1 + int.from_bytes(hashlib.blake2b(g.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little") % buckets
        for g in grams
    )


@functools.lru_cache(maxsize=1 << 16)
def word_pair_id(first: str, second: str, buckets: int) -> int:
    """fastText's word bigram: two adjacent words hashed as "first second" into 1..buckets. A space
    never occurs in a word's "<...>" n-grams, so a pair cannot share a character n-gram's string."""
    digest = hashlib.blake2b(f"{first} {second}".encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return 1 + int.from_bytes(digest, "little") % buckets


def char_ngram_ids(text: str, buckets: int, sizes: str, max_words: int, truncation: str = "head",
                   word_bigrams: bool = False) -> list:
    """The hashed character n-gram ids of a text's words (split on white space), of at most
    `max_words` words kept as `truncation` keeps tokens (by default the subword budget, so the
    n-grams see the part of a long text the subword tokens see: a word is one token or more), then,
    with `word_bigrams`, one id per pair of adjacent kept words."""
    words = truncate(text.split(), max_words, truncation)
    ids: list = []
    for word in words:
        ids.extend(word_ngram_ids(word, buckets, sizes))
    if word_bigrams:
        ids.extend(word_pair_id(a, b, buckets) for a, b in zip(words, words[1:]))
    return ids


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
    ngrams = getattr(tokenizer, "char_ngrams", None)  # the scratch tokenizer's, when its model has the branch
    if ngrams:
        out = EncodedIds(out)
        options = getattr(tokenizer, "preprocessing", None) or {}
        # Prepared as the tokenizer prepares (idempotent), so raw text gives the n-grams training saw.
        # max_words and word_bigrams are written only when set (char_ngram_max_words, _word_bigrams).
        max_words, bigrams = ngrams.get("max_words") or max_length, bool(ngrams.get("word_bigrams"))
        out.char_ngrams = [char_ngram_ids(prepare_text(t, **options), ngrams["buckets"], ngrams["sizes"],
                                          max_words, truncation, bigrams) for t in texts]
    return out, truncated


class EncodedIds(list):
    """Input ids that also carry each text's character n-gram ids (`char_ngrams`), so the training
    loop's batches and `encode` hold the same."""

    char_ngrams: list


def pad_char_ngrams(rows: list) -> list:
    """Each text's n-gram ids padded with 0 on the right to the longest (at least 1 column)."""
    width = max((len(row) for row in rows), default=0) or 1
    return [list(row) + [0] * (width - len(row)) for row in rows]


def encode(tokenizer, texts: list, max_length: int, truncation: str = "head", return_tensors=None) -> dict:
    """A batch for model(**batch): `input_ids` from encode_ids and `attention_mask`, padded on the
    right with the tokenizer's pad token as in training, and `char_ngram_ids` (padded with 0) for a
    tokenizer with character n-grams; lists, or torch tensors with return_tensors="pt"."""
    ids, _ = encode_ids(tokenizer, texts, max_length, truncation)
    width = max((len(row) for row in ids), default=0)
    batch = {
        "input_ids": [row + [tokenizer.pad_token_id] * (width - len(row)) for row in ids],
        "attention_mask": [[1] * len(row) + [0] * (width - len(row)) for row in ids],
    }
    ngrams = getattr(ids, "char_ngrams", None)
    if ngrams is not None:
        batch["char_ngram_ids"] = pad_char_ngrams(ngrams)
    if return_tensors == "pt":
        import torch  # only here: the preparation above needs nothing beyond the standard library

        return {key: torch.tensor(value, dtype=torch.long) for key, value in batch.items()}
    if return_tensors is not None:
        raise ValueError(f"return_tensors must be None or 'pt' (got {return_tensors!r})")
    return batch
