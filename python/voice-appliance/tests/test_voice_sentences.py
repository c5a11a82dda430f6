"""sentences.ini expansion through the real rhasspy-nlu, and our error messages."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from voice_appliance import sentences
from voice_appliance.sentences import SentencesError

TEMPLATES = textwrap.dedent("""\
    # Licht und Timer
    ; a configparser comment

    [ChangeLightState]
    licht = (wohnzimmerlampe | küchenlicht){name}
    schalte [das] <licht> (ein | an){state:on}
    mach das $farbe licht aus{state}

    [SetTimer]
    stelle einen timer auf (1..3){minutes} minuten
    timer für 5 minuten
    (zehn:10){seconds} sekunden
    \\[bitte] warte <ChangeLightState.licht>
    """)


def write(tmp_path: Path, text: str, name: str = "sentences.ini") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def slots(tmp_path: Path) -> Path:
    directory = tmp_path / "slots"
    directory.mkdir()
    (directory / "farbe").write_text("rot\nblau\n\ngrün:green\n", encoding="utf-8")
    return directory


def test_template_features_expand(tmp_path, slots):
    path = write(tmp_path, TEMPLATES)
    _, items = sentences.expand_files([path], [slots])
    got = {(item.intent, item.text) for item in items}
    light = {("ChangeLightState", "schalte %s%s %s" % (art, name, state))
             for art in ("das ", "") for name in ("wohnzimmerlampe", "küchenlicht")
             for state in ("ein", "an")}
    light |= {("ChangeLightState", "mach das %s licht aus" % c) for c in ("rot", "blau", "grün")}
    timer = {("SetTimer", "stelle einen timer auf %s minuten" % n)
             for n in ("eins", "zwei", "drei")}  # number range via the built-in rhasspy/number
    timer |= {("SetTimer", "timer für fünf minuten"),  # digits become German words
              ("SetTimer", "zehn sekunden"),  # substitution: spoken text stays "zehn"
              ("SetTimer", "bitte warte wohnzimmerlampe"), ("SetTimer", "warte wohnzimmerlampe"),
              ("SetTimer", "bitte warte küchenlicht"), ("SetTimer", "warte küchenlicht")}
    assert got == light | timer
    assert len(items) == len(got)


def test_slot_program_directory_of_the_user_wins(tmp_path):
    programs = tmp_path / "programs"
    (programs / "rhasspy").mkdir(parents=True)
    script = programs / "rhasspy" / "number"
    script.write_text("#!/bin/sh\necho 7\n", encoding="utf-8")
    script.chmod(0o755)
    path = write(tmp_path, "[A]\nwarte (1..3) minuten\n")
    _, items = sentences.expand_files([path], slot_programs_dirs=[programs])
    assert [item.text for item in items] == ["warte sieben minuten"]


# --- errors with true line numbers (comments and blank lines before the fault) ----------------

PREAMBLE = "# comment\n\n[Intent]\n# another comment\n\nhallo welt\n"  # fault goes on line 7


@pytest.mark.parametrize("line,pattern", [
    ("schalte (das licht an", r":7: the group '\(' at column 9 is never closed: add '\)'"),
    ("schalte das licht) an", r":7: '\)' at column 18 has no matching '\('"),
    ("schalte [das licht an", r":7: the optional '\[' at column 9 is never closed"),
    ("stelle [a (b] c)", r":7: '\]' at column 13 closes the group '\(' opened at column 11"),
    ("schalte <lampe> an", r":7: rule <lampe> is not defined \(define it as `lampe = \.\.\.` in \[Intent\]\)"),
    ("schalte <Other.lampe> an", r":7: rule <Other.lampe> is not defined"),
    ("mach $nix an", r":7: slot \$nix is not defined: no file 'nix'"),
    ("[bitte] mach an", r":7: '\[bitte\] mach an' starts with '\[' .* section header \[bitte\]"),
    ("    eingerückt", r":7: this line is indented deeper than line 6"),
    ("a b = c", r":7: .*'a b' is not a valid rule name"),
    ("wort:{tag", r":7: the tag '\{' at column 6 is never closed"),
])
def test_malformed_templates_name_file_and_line(tmp_path, slots, line, pattern):
    path = write(tmp_path, PREAMBLE + line + "\n")
    with pytest.raises(SentencesError, match=str(path).replace(".", r"\.") + pattern):
        sentences.expand_files([path], [slots])


def test_undefined_rule_inside_a_rule_names_the_rule_line(tmp_path):
    path = write(tmp_path, "[A]\n\nfarbe = (rot | <blau>)\nmach es <farbe>\n")
    with pytest.raises(SentencesError, match=r"sentences\.ini:3: rule <blau> is not defined"):
        sentences.expand_files([path])


def test_sentence_before_section_and_duplicate_rule(tmp_path):
    path = write(tmp_path, "\nhallo\n[A]\nx\n")
    with pytest.raises(SentencesError, match=r":2: 'hallo' comes before the first \[IntentName\]"):
        sentences.expand_files([path])
    path = write(tmp_path, "[A]\nr = a\nsag <r>\nr = b\n")
    with pytest.raises(SentencesError, match=r":4: rule <r> is already defined in \[A\] on line 2"):
        sentences.expand_files([path])


def test_bad_slot_file_names_its_own_line(tmp_path, slots):
    (slots / "farbe").write_text("rot\n\n(blau\n", encoding="utf-8")
    path = write(tmp_path, "[A]\nmach es $farbe\n")
    with pytest.raises(SentencesError, match=r"slots/farbe:3: the group '\(' at column 1 is never"):
        sentences.expand_files([path], [slots])
    (slots / "farbe").write_text("\n\n", encoding="utf-8")
    with pytest.raises(SentencesError, match=r"sentences\.ini:2: slot \$farbe .* is empty"):
        sentences.expand_files([path], [slots])


def test_too_many_sentences_is_refused_before_expanding(tmp_path):
    path = write(tmp_path, "[A]\n(1..100) mal (1..100)\n")
    with pytest.raises(SentencesError, match=r"allow 10000 sentences .*A=10000.* limit of 500"):
        sentences.expand_files([path], max_sentences=500)


def test_normalize_and_locate(tmp_path, slots):
    path = write(tmp_path, TEMPLATES)
    templates = sentences.parse_templates([path], [slots])
    assert sentences.normalize("  Schließe   DIE Tür ", True, {"ß": "ss"}) == "schliesse die tür"
    assert sentences.locate_word("küchenlicht", templates) == ["%s:5" % path]
    assert sentences.locate_word("grün", templates) == ["%s:4" % (slots / "farbe")]
    assert sentences.locate_word("fünf", templates) == []


def test_cli_prints_sentences(tmp_path, slots, capsys):
    path = write(tmp_path, "[A]\nhallo [du]\n")
    assert sentences.main([str(path), "--intents"]) == 0
    assert capsys.readouterr().out.splitlines() == ["A\thallo du", "A\thallo"]
    bad = write(tmp_path, "[A]\nhallo (du\n", "bad.ini")
    assert sentences.main([str(bad)]) == 1
    assert "bad.ini:2:" in capsys.readouterr().err
