"""Text preparation for scraped Turkish text, standard library only.

The worker prepares every split with these functions before training, and ships this file in every
artifact (with the options in preprocessing.json), so predictions see text prepared the same way:

    import json, textprep
    options = json.load(open("model/preprocessing.json"))
    textprep.prepare_text("\\\\'Seni SEVİYORUM\\\\r\\\\nAm", **options)

`prepare_text` is idempotent: preparing prepared text changes nothing.
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
