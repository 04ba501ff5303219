"""Each text option does what it says, on the shapes real scraped lyrics have."""

import unicodedata

import pytest

from makam_worker.training.textprep import drop_chords, is_chord_line, prepare_text, turkish_lower, unescape

# As the lyrics rows arrive: a leading \' and literal \r\n, escaped quotes inside, chord lines.
RAW = "\\' \\r\\nSeher vakti gelir\\r\\nAm\\r\\nO\\\\\\'ndan dönüş\\tyiğit\\r\\nDm  G/B\\r\\nIşık İstanbul"


def test_turkish_lower_case_keeps_dotted_and_dotless_i_apart():
    assert turkish_lower("IŞIK İSTANBUL Iğdır") == "ışık istanbul ığdır"
    assert "İ".lower() != "i"  # why: Python's lower() gives i + a combining dot
    assert prepare_text("İZMİR ILICA", lowercase="turkish") == "izmir ılıca"
    assert prepare_text("İZMİR", lowercase="none") == "İZMİR"


def test_escapes_become_real_characters_and_the_leading_artefact_goes():
    assert unescape("\\'Seni\\r\\nseviyorum\\nçok\\tçok") == "Seni\nseviyorum\nçok\tçok"
    assert unescape("O\\\\\\'ndan") == "O'ndan"
    assert prepare_text("\\'\\r\\n\\r\\n Merhaba") == "Merhaba"
    assert prepare_text("\\'Seni\\r\\nseviyorum", unescape_newlines=False) == "\\'Seni\\r\\nseviyorum"


@pytest.mark.parametrize("line", ["Am", "Dm  G/B", "C#m7", "Fmaj7", "(Em)", "Am - F - C - G", "Bb Dsus4 E7", "AM EM"])
def test_chord_lines_are_recognised(line):
    assert is_chord_line(line)


@pytest.mark.parametrize("line", ["Ay, ay mi amor", "Dm 2 kere", "Bir Ev", "", "   ", "Amca geldi", "Gel bana"])
def test_lyric_lines_are_not_chords(line):
    assert not is_chord_line(line)


def test_chord_lines_are_dropped_only_when_asked():
    text = "Demedim inan\nAm\nBelkide tek arzum\nE \nG  D/F#"
    assert drop_chords(text) == "Demedim inan\nBelkide tek arzum"
    assert prepare_text(text) == text
    assert prepare_text(text, drop_chord_lines=True) == "Demedim inan\nBelkide tek arzum"


def test_nfc_composes_letters():
    decomposed = unicodedata.normalize("NFD", "şarkı İçin")
    assert decomposed != "şarkı İçin"
    assert prepare_text(decomposed) == "şarkı İçin"
    assert prepare_text(decomposed, unicode_nfc=False) == decomposed
    # NFC before lower case: a decomposed İ lowers to a plain i.
    assert prepare_text(unicodedata.normalize("NFD", "İ"), lowercase="turkish") == "i"


def test_everything_together_and_idempotent():
    options = {"lowercase": "turkish", "drop_chord_lines": True}
    once = prepare_text(RAW, **options)
    assert once == "seher vakti gelir\no'ndan dönüş\tyiğit\nışık istanbul"
    assert prepare_text(once, **options) == once
