"""sentences.ini expansion through the real rhasspy-nlu, and our error messages."""

from __future__ import annotations

import re
import textwrap
import time
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


@pytest.mark.bad_input
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


# --- slot names are paths: nothing outside the slots / slot programs directories --------------

def evil_program(tmp_path: Path) -> Path:
    """A program outside every configured directory that would leave a marker if it ran."""
    marker = tmp_path / "MARKER"
    script = tmp_path / "evil"
    script.write_text("#!/bin/sh\ntouch '%s'\necho hallo\n" % marker, encoding="utf-8")
    script.chmod(0o755)
    return marker


@pytest.fixture
def programs(tmp_path: Path) -> Path:
    directory = tmp_path / "programs"
    (directory / "a").mkdir(parents=True)  # so that programs/a/../../evil exists for the OS
    return directory


@pytest.mark.bad_input
@pytest.mark.parametrize("reference,problem", [
    ("$/bin/sh,-c,touch MARKER", "is an absolute path"),
    ("$/TMP/evil,x", "is an absolute path"),
    ("$../evil", r"contains a '\.\.' path component"),
    ("$a/../../evil", r"contains a '\.\.' path component"),
    ("$farbe,../../evil", r"contains a '\.\.' path component"),
    ("$a\\..\\..\\evil", "contains a backslash"),
    ("$a\x00b", r"contains the control character '\\x00'"),
    ("$./evil", r"contains an empty or '\.' path component"),
    ("$a//evil", r"contains an empty or '\.' path component"),
    ("$,1,2", "has no name before its arguments"),
])
def test_unsafe_slot_names_are_refused(tmp_path, slots, programs, reference, problem):
    marker = evil_program(tmp_path)
    reference = reference.replace("TMP", str(tmp_path).lstrip("/"))
    path = write(tmp_path, "[A]\nhallo\nsag $farbe und %s\n" % reference)
    with pytest.raises(SentencesError) as caught:
        sentences.expand_files([path], [slots], [programs])
    message = str(caught.value)
    assert message.startswith("%s:3: slot name $" % path)
    assert re.search(problem, message), message
    assert "rename the slot" in message
    assert not marker.exists()


def test_slot_names_are_checked_before_any_program_runs(tmp_path, programs):
    ran = tmp_path / "RAN"
    script = programs / "zahl"
    script.write_text("#!/bin/sh\ntouch '%s'\necho eins\n" % ran, encoding="utf-8")
    script.chmod(0o755)
    path = write(tmp_path, "[A]\nsag $zahl\nsag $zz/../../evil\n")
    with pytest.raises(SentencesError, match=r"sentences\.ini:3: slot name \$zz/\.\./\.\./evil "):
        sentences.expand_files([path], slot_programs_dirs=[programs])
    assert not ran.exists()


@pytest.mark.bad_input
def test_symlinks_out_of_the_slot_directories_are_refused(tmp_path, slots, programs):
    marker = evil_program(tmp_path)
    (programs / "link").symlink_to(tmp_path / "evil")
    path = write(tmp_path, "[A]\nsag $link\n")
    with pytest.raises(SentencesError, match=r"sentences\.ini:2: slot \$link: .*programs/link "
                       r"resolves to .*/evil, which is outside the slot programs directory"):
        sentences.expand_files([path], slot_programs_dirs=[programs])
    (programs / "sub").symlink_to(tmp_path)  # a linked directory escapes just as well
    path = write(tmp_path, "[A]\nsag $sub/evil\n")
    with pytest.raises(SentencesError, match=r"sentences\.ini:2: slot \$sub/evil: .* outside the "
                       r"slot programs directory .*; put the file itself into"):
        sentences.expand_files([path], slot_programs_dirs=[programs])
    assert not marker.exists()
    secret = tmp_path / "secret"
    secret.write_text("geheim\n", encoding="utf-8")
    (slots / "farben").symlink_to(secret)
    path = write(tmp_path, "[A]\nsag $farben\n")
    with pytest.raises(SentencesError, match=r"sentences\.ini:2: slot \$farben: .*slots/farben "
                       r"resolves to .*/secret, which is outside the slots directory"):
        sentences.expand_files([path], [slots])


def test_legitimate_slot_names_still_work(tmp_path, slots, programs):
    (slots / "farben").write_text("gelb\n", encoding="utf-8")
    (slots / "sub").mkdir()
    (slots / "sub" / "name").write_text("anna\nberta\n", encoding="utf-8")
    (slots / "alias").symlink_to("farbe")  # a link that stays inside the directory is fine
    (programs / "tools").mkdir()
    script = programs / "tools" / "wort"
    script.write_text('#!/bin/sh\nfor w in "$@"; do echo "$w"; done\n', encoding="utf-8")
    script.chmod(0o755)
    path = write(tmp_path, "[A]\n$farben\n$sub/name\n$alias\n$tools/wort,haus,baum\n"
                           "nummer $rhasspy/number,1,3\nstufe (4..5)\n")
    _, items = sentences.expand_files([path], [slots], [programs])
    assert [item.text for item in items] == [
        "gelb", "anna", "berta", "rot", "blau", "grün", "haus", "baum",
        "nummer eins", "nummer zwei", "nummer drei", "stufe vier", "stufe fünf"]


def test_number_ranges_still_expand(tmp_path):
    path = write(tmp_path, "[A]\n(1..5) mal\n")
    _, items = sentences.expand_files([path])
    assert [item.text for item in items] == ["eins mal", "zwei mal", "drei mal", "vier mal",
                                             "fünf mal"]


@pytest.mark.fault
def test_failing_or_silent_slot_programs_name_the_line(tmp_path, programs):
    script = programs / "kaputt"
    script.write_text("#!/bin/sh\necho 'kein Zugriff' >&2\nexit 3\n", encoding="utf-8")
    script.chmod(0o755)
    (programs / "leer").write_text("#!/bin/sh\n", encoding="utf-8")
    (programs / "leer").chmod(0o755)
    (programs / "regel").write_text("#!/bin/sh\necho 'a <x>'\n", encoding="utf-8")
    (programs / "regel").chmod(0o755)
    path = write(tmp_path, "[A]\nx = $regel\nhallo\nsag $kaputt\n")
    with pytest.raises(SentencesError, match=r"sentences\.ini:4: slot program .*kaputt \(for "
                       r"\$kaputt\) failed with exit code 3: kein Zugriff"):
        sentences.expand_files([path], slot_programs_dirs=[programs])
    path = write(tmp_path, "[A]\nsag $leer\n")
    with pytest.raises(SentencesError, match=r"sentences\.ini:2: slot program .*leer .* printed "
                       r"no values"):
        sentences.expand_files([path], slot_programs_dirs=[programs])
    path = write(tmp_path, "[A]\nx = (eins | $regel)\nsag <x>\n")
    with pytest.raises(SentencesError, match=r"sentences\.ini:2: output line 1 of slot program "
                       r".*regel: slot values cannot reference rules or other slots"):
        sentences.expand_files([path], slot_programs_dirs=[programs])


@pytest.mark.fault
def test_a_hung_slot_program_is_stopped_with_its_line(tmp_path, programs, monkeypatch):
    """A program that never ends (and a child holding its output open) is killed, not waited for."""
    script = programs / "haengt"
    script.write_text("#!/bin/sh\necho eins\nsleep 300 &\nsleep 300\n", encoding="utf-8")
    script.chmod(0o755)
    monkeypatch.setattr(sentences, "SLOT_PROGRAM_TIMEOUT", 1.0)
    path = write(tmp_path, "[A]\n\nsag $haengt\n")
    started = time.monotonic()
    with pytest.raises(SentencesError, match=r"sentences\.ini:3: slot program .*haengt \(for "
                       r"\$haengt\) did not finish within 1 s \(SLOT_PROGRAM_TIMEOUT\)"):
        sentences.expand_files([path], slot_programs_dirs=[programs])
    assert time.monotonic() - started < 30


# --- recursive rules ---------------------------------------------------------------------------

@pytest.mark.bad_input
@pytest.mark.parametrize("text,pattern", [
    ("[A]\nx = (eins | <y>)\ny = (zwei | <x>)\nsag <x>\n",
     r":2: recursive rule: <x> -> <y> -> <x> \(<x> is defined at .*sentences\.ini:2, <y> is "
     r"defined at .*sentences\.ini:3\); a rule cannot refer back to itself"),
    ("[A]\n\nx = (eins | zwei <x>)\nsag <x>\n",
     r":3: recursive rule: <x> -> <x> \(<x> is defined at .*sentences\.ini:3\)"),
    ("[A]\nsag <a>\na = <b> [<c>]\nb = wort\nc = (<B.d> | nichts)\n"
     "[B]\nhallo\nd = <A.a> mal\n",
     r":3: recursive rule: <A\.a> -> <A\.c> -> <B\.d> -> <A\.a> \(<A\.a> is defined at "
     r".*:3, <A\.c> is defined at .*:5, <B\.d> is defined at .*:8\)"),
    ("[A]\nsag hallo\nx = <y>\ny = <x>\n",  # even when no sentence uses them
     r":3: recursive rule: <x> -> <y> -> <x>"),
])
def test_recursive_rules_are_refused_before_expanding(tmp_path, text, pattern):
    path = write(tmp_path, text)
    with pytest.raises(SentencesError, match=re.escape(str(path)) + pattern):
        sentences.expand_files([path])


def test_shared_and_chained_rules_are_not_a_cycle(tmp_path):
    chain = "".join("r%d = (w%d | <r%d>)\n" % (n, n, n + 1) for n in range(49))  # 50 deep
    path = write(tmp_path, "[A]\nsag <a> <b>\na = <c> eins\nb = <c> zwei\nc = (x | y)\n"
                           "zähl <r0>\nr49 = ende\n" + chain)
    _, items = sentences.expand_files([path])
    assert [item.text for item in items] == (
        ["sag %s eins %s zwei" % (a, b) for a in "xy" for b in "xy"]
        + ["zähl w%d" % n for n in range(49)] + ["zähl ende"])


@pytest.mark.bad_input
def test_a_chain_of_rules_that_each_use_the_next_twice_is_refused_without_walking_it_exponentially(tmp_path, monkeypatch):
    """30 lines that allow 2**30 sentences: refused by max_sentences, and parsing visits each rule body a
    bounded number of times (walking through every reference would visit the last one 2**30 times)."""
    from rhasspynlu import jsgf

    chain = "".join("r%d = (<r%d> | <r%d>)\n" % (n, n + 1, n + 1) for n in range(30))
    path = write(tmp_path, "[A]\nsag <r0>\nr30 = (ja | nein)\n" + chain)
    calls = []
    walk = jsgf.walk_expression

    def counting_walk(expression, visit, replacements=None):
        calls.append(1)
        if len(calls) > 100000:
            raise AssertionError("the templates were walked through their references (over 100000 visits)")
        return walk(expression, visit, replacements)

    monkeypatch.setattr(jsgf, "walk_expression", counting_walk)
    with pytest.raises(SentencesError, match=r"allow 2147483648 sentences .* limit of 200000"):
        sentences.expand_files([path])
    assert len(calls) < 2000, len(calls)
    # Each rule saying the next one twice in a row: 2**(2**30) sentences, a number no one can print.
    squared = "".join("r%d = <r%d> <r%d>\n" % (n, n + 1, n + 1) for n in range(30))
    path = write(tmp_path, "[A]\nsag <r0>\nr30 = (ja | nein)\n" + squared)
    with pytest.raises(SentencesError, match=r"allow over 10\^18 sentences \(largest intents: A=over 10\^18\)"):
        sentences.expand_files([path])


@pytest.mark.bad_input
def test_too_deep_templates_are_refused_not_a_recursion_error(tmp_path):
    chain = "".join("r%d = (w%d | <r%d>)\n" % (n, n, n + 1) for n in range(3000))
    path = write(tmp_path, "[A]\n\nsag <r0>\nr3000 = ende\n" + chain)
    with pytest.raises(SentencesError, match=r"sentences\.ini:5: rule <A\.r0> nests 3001 rules "
                       r"deep \(<A\.r0> -> <A\.r1> -> <A\.r2> -> \.\.\. -> <A\.r2999> -> "
                       r"<A\.r3000>\), more than the limit of 50 \(MAX_NESTING\)"):
        sentences.expand_files([path])
    path = write(tmp_path, "[A]\nsag " + "(a | " * 400 + "b" + ")" * 400 + "\n")
    with pytest.raises(SentencesError, match=r"sentences\.ini:2: the group '\(' at column 255 is "
                       r"nested 51 brackets deep, more than the limit of 50"):
        sentences.expand_files([path])
    path = write(tmp_path, "[A]\nsag " + "(a | " * 50 + "b" + ")" * 50 + "\n")
    assert len(sentences.expand_files([path])[1]) == 51


def test_slot_values_cannot_bring_a_rule_back_in(tmp_path, slots):
    (slots / "farbe").write_text("rot\n<x>\n", encoding="utf-8")
    path = write(tmp_path, "[A]\nx = (eins | $farbe)\nsag <x>\n")
    with pytest.raises(SentencesError, match=r"slots/farbe:2: slot values cannot reference rules "
                       r"or other slots \('<x>'\)"):
        sentences.expand_files([path], [slots])


# --- size limit --------------------------------------------------------------------------------

@pytest.mark.bad_input
def test_oversized_sentences_file_is_refused_unread(tmp_path):
    path = write(tmp_path, "[A]\nhallo\n")
    size = sentences.MAX_FILE_BYTES + 1
    with path.open("r+b") as handle:  # sparse: no disk space used, nothing to read
        handle.truncate(size)
    with pytest.raises(SentencesError) as caught:
        sentences.expand_files([path])
    assert str(caught.value) == (
        "%s: the sentences file is %d bytes (16.0 MiB), more than the limit of 16777216 bytes "
        "(16.0 MiB) (MAX_FILE_BYTES); split it into several files or describe the sentences "
        "with rules and slots" % (path, size))
    path.write_bytes(b"[A]\n" + b"a" * (sentences.MAX_FILE_BYTES - 4))  # exactly the limit
    assert sentences.read_entries(path)[0].intent == "A"


@pytest.mark.bad_input
def test_oversized_slot_file_and_program_output_are_refused(tmp_path, slots, programs):
    with (slots / "farbe").open("r+b") as handle:
        handle.truncate(sentences.MAX_FILE_BYTES + 5)
    path = write(tmp_path, "[A]\nmach es $farbe\n")
    with pytest.raises(SentencesError, match=r"slots/farbe: the slot file is 16777221 bytes "
                       r"\(16\.0 MiB\), more than the limit of 16777216 bytes"):
        sentences.expand_files([path], [slots])
    script = programs / "endlos"
    script.write_text("#!/bin/sh\nexec yes hallo\n", encoding="utf-8")
    script.chmod(0o755)
    path = write(tmp_path, "[A]\nsag $endlos\n")
    with pytest.raises(SentencesError, match=r"sentences\.ini:2: slot program .*endlos \(for "
                       r"\$endlos\) printed more than the limit of 16777216 bytes"):
        sentences.expand_files([path], slot_programs_dirs=[programs])


@pytest.mark.bad_input
def test_not_utf8_is_refused_with_its_line(tmp_path):
    path = tmp_path / "sentences.ini"
    path.write_bytes(b"[A]\nhallo\nsch\xf6n\n")
    with pytest.raises(SentencesError, match=r"sentences\.ini:3: not valid UTF-8"):
        sentences.expand_files([path])
