"""Augmentation of the training split ("veri artır"), off by default: each epoch trains on a new draw
of the training texts, with the words of a text deleted, swapped in pairs or masked in a span (EDA,
Wei & Zou 2019; span masking as SpanBERT's, on words) and the lines of a text shuffled (lyrics: the
order of verses carries little of the label). The validation and test splits are never touched.

A draw depends only on (seed, epoch), as trainer.EpochShuffle's order does, so a run resumed at epoch
k+1 trains on the texts an uninterrupted run would. The tokenizer is learnt on the texts as given.
Pure Python (no torch): the rates are hyperparameters a tune job searches like any other number.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any

OPTIONS = ("augment_word_deletion", "augment_word_swap", "augment_span_mask", "augment_line_shuffle")
_PIECES = re.compile(r"[^\S\n]*(\n|[^\s]+)")  # words and line breaks; other whitespace collapses to one space


@dataclass(frozen=True)
class Augmenter:
    deletion: float
    """Probability that each word is deleted (a text keeps at least one)."""
    swap: float
    """Share of a text's words swapped in random pairs (at least one swap when above 0)."""
    span_mask: float
    """Share of a text's words, in one random span, each replaced by `mask` (at least one word)."""
    line_shuffle: float
    """Probability that a text's lines are shuffled."""
    seed: int
    mask: str | None = None
    """A token the tokenizer reads as one special id ([MASK], else its unk); None deletes the span."""

    def texts(self, texts: list[str], epoch: int) -> list[str]:
        """The epoch's draw of `texts`, in their order."""
        rng = random.Random(f"augment:{self.seed}:{epoch}")  # str seeds hash with sha512: the same on every host
        return [self.text(t, rng) for t in texts]

    def text(self, text: str, rng: random.Random) -> str:
        pieces = _PIECES.findall(text)
        before = list(pieces)
        if self.line_shuffle and rng.random() < self.line_shuffle:
            lines = " ".join(pieces).split("\n")
            if len(lines) > 1:
                rng.shuffle(lines)
                pieces = _PIECES.findall("\n".join(lines))
        words = [i for i, p in enumerate(pieces) if p != "\n"]
        if self.swap and len(words) > 1:
            for _ in range(max(1, int(self.swap * len(words)))):
                a, b = rng.sample(words, 2)
                pieces[a], pieces[b] = pieces[b], pieces[a]
        dropped: set[int] = set()
        if self.span_mask and words:
            length = max(1, round(self.span_mask * len(words)))
            start = rng.randrange(len(words) - length + 1)
            for i in words[start : start + length]:
                if self.mask is None:
                    dropped.add(i)
                else:
                    pieces[i] = self.mask
        if self.deletion:
            dropped |= {i for i in words if rng.random() < self.deletion}
        if words and dropped >= set(words):
            dropped.discard(rng.choice(words))  # a text keeps a word
        pieces = [p for i, p in enumerate(pieces) if i not in dropped]
        if pieces == before:
            return text  # unchanged, whitespace and all
        out: list[str] = []
        for p in pieces:
            out.append(p if p == "\n" or not out or out[-1] == "\n" else " " + p)
        return "".join(out)


def for_run(hp: Any, tokenizer: Any) -> Augmenter | None:
    """The run's augmenter, or None when every rate is 0 (the training texts as given)."""
    deletion, swap, span_mask, line_shuffle = (getattr(hp, name) for name in OPTIONS)
    if not (deletion or swap or span_mask or line_shuffle):
        return None
    return Augmenter(deletion, swap, span_mask, line_shuffle, hp.seed, mask_token(tokenizer) if span_mask else None)


def mask_token(tokenizer: Any) -> str | None:
    """The tokenizer's mask token, else its unk token, when it reads it back as that one id."""
    for token in (getattr(tokenizer, "mask_token", None), getattr(tokenizer, "unk_token", None)):
        if token and tokenizer(token, add_special_tokens=False)["input_ids"] == [tokenizer.convert_tokens_to_ids(token)]:
            return token
    return None
