"""Expand Rhasspy ``sentences.ini`` templates into the sentences a user can say.

The template language (alternatives ``(a | b)``, optionals ``[x]``, rules ``<name>``, slots
``$name``, number ranges ``(1..10)``, tags ``{name}``, substitutions ``word:out``) is parsed and
expanded by rhasspy-nlu itself. This module adds what rhasspy-nlu lacks:

* exact ``file:line`` positions (rhasspy-nlu's own line numbers are wrong once a file has
  comments or blank lines), and errors it does not raise at all (a stray ``)``, a line that
  ``configparser`` silently reads as a section header, an undefined rule or slot);
* explicit ``raise`` instead of ``assert`` (under ``python -O`` rhasspy-nlu drops sentences);
* the ``rhasspy/number`` slot program behind number ranges, which the library does not ship.

The file is split into sections and entries the way rhasspy-nlu's ``configparser`` set-up reads
it (``#``/``;`` comments, ``key = value`` rules, bare lines as sentences, ``\\[`` escape); each
entry is then parsed by rhasspy-nlu's ``Sentence.parse``/``Rule.parse``.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple

SECTION_RE = re.compile(r"\[(?P<header>.+)\]")  # configparser.SECTCRE, matched at line start
NUMBER_PROGRAM = "rhasspy/number"


class SentencesError(Exception):
    """A problem in the templates; the message starts with ``file:line:``."""


class Entry(NamedTuple):
    file: str
    line: int
    intent: str
    key: str  # the sentence text, or the rule name
    value: Optional[str]  # the rule body; None for a sentence

    @property
    def where(self) -> str:
        return "%s:%d" % (self.file, self.line)

    @property
    def is_rule(self) -> bool:
        return self.value is not None


class Expanded(NamedTuple):
    intent: str
    text: str  # what is spoken (rhasspy's raw_text)


# --- reading the ini structure -----------------------------------------------------------------

def read_entries(path: "os.PathLike[str] | str") -> List[Entry]:
    """Split a sentences file into entries with their true line numbers."""
    path = str(path)
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except OSError as exc:
        raise SentencesError("%s: cannot read: %s" % (path, exc.strerror or exc)) from exc
    except UnicodeDecodeError as exc:
        line = Path(path).read_bytes()[: exc.start].count(b"\n") + 1
        raise SentencesError("%s:%d: not valid UTF-8; save the file as UTF-8" % (path, line)) from exc
    entries: List[Entry] = []
    section: Optional[str] = None
    section_line = 0
    option_indent: Optional[int] = None
    option_line = 0
    rules_seen: Dict[Tuple[str, str], int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith(("#", ";")):
            continue
        indent = len(raw) - len(raw.lstrip())
        if option_indent is not None and indent > option_indent:
            raise SentencesError(
                "%s:%d: this line is indented deeper than line %d, so configparser (used by "
                "Rhasspy) would glue it to that line; remove the indentation"
                % (path, number, option_line))
        header = SECTION_RE.match(stripped)
        if header:
            name = header.group("header")
            rest = stripped[header.end():].strip()
            if rest or not stripped.endswith("]"):
                raise SentencesError(
                    "%s:%d: '%s' starts with '[' and is therefore read as the section header "
                    "[%s]; to start a sentence with an optional word escape it: \\%s"
                    % (path, number, stripped, name, stripped))
            if name.strip() != name or not name:
                raise SentencesError("%s:%d: intent name %r has surrounding spaces"
                                     % (path, number, name))
            if name == "DEFAULT":
                raise SentencesError("%s:%d: [DEFAULT] is special in configparser (its lines would "
                                     "be copied into every intent); rename the section"
                                     % (path, number))
            section, section_line, option_indent = name, number, None
            continue
        if section is None:
            raise SentencesError("%s:%d: %r comes before the first [IntentName] section header"
                                 % (path, number, stripped))
        option_indent, option_line = indent, number
        if "=" in stripped:
            key, value = stripped.split("=", 1)
            key, value = key.strip(), value.strip()
            if not re.match(r"^[^\s<>()\[\]{}|$:]+$", key):
                raise SentencesError(
                    "%s:%d: %r is read as a rule definition (it contains '='), but %r is not a "
                    "valid rule name; rule lines look like `name = body`" % (path, number, stripped, key))
            if not value:
                raise SentencesError("%s:%d: rule <%s> has an empty body" % (path, number, key))
            first = rules_seen.get((section, key))
            if first is not None:
                raise SentencesError("%s:%d: rule <%s> is already defined in [%s] on line %d "
                                     "(Rhasspy would silently use the last one)"
                                     % (path, number, key, section, first))
            rules_seen[(section, key)] = number
            entries.append(Entry(path, number, section, key, value))
        else:
            entries.append(Entry(path, number, section, stripped, None))
    if not entries:
        raise SentencesError("%s: no sentences found (expected [IntentName] sections with one "
                             "sentence per line)" % path)
    return entries


# --- brackets ----------------------------------------------------------------------------------

_PAIRS = {"(": ")", "[": "]", "<": ">", "{": "}"}
_CLOSERS = {v: k for k, v in _PAIRS.items()}
_NAMES = {"(": "group '('", "[": "optional '['", "<": "rule reference '<'", "{": "tag '{'"}


def check_brackets(text: str, where: str) -> None:
    """Raise with ``where`` and a column for unbalanced or crossed brackets."""
    stack: List[Tuple[str, int]] = []
    for column, char in enumerate(text, start=1):
        if char in _PAIRS:
            if stack and stack[-1][0] in "<{":
                raise SentencesError("%s: %r at column %d is inside the %s opened at column %d; "
                                     "close it first" % (where, char, column,
                                                         _NAMES[stack[-1][0]], stack[-1][1]))
            stack.append((char, column))
        elif char in _CLOSERS:
            if not stack:
                raise SentencesError("%s: %r at column %d has no matching %r before it: remove "
                                     "it or add the opening bracket (in %r)"
                                     % (where, char, column, _CLOSERS[char], text))
            opener, at = stack.pop()
            if _PAIRS[opener] != char:
                raise SentencesError("%s: %r at column %d closes the %s opened at column %d, which "
                                     "needs %r (in %r)" % (where, char, column, _NAMES[opener], at,
                                                           _PAIRS[opener], text))
    if stack:
        opener, at = stack[-1]
        raise SentencesError("%s: the %s at column %d is never closed: add %r (in %r)"
                             % (where, _NAMES[opener], at, _PAIRS[opener], text))


# --- slot program ------------------------------------------------------------------------------

_NUMBER_SCRIPT = """#!/bin/sh
# rhasspy/number LOW HIGH [STEP]: print the integers LOW..HIGH (number ranges like (1..10))
exec "{python}" -c 'import sys
a = sys.argv[1:]
if len(a) not in (2, 3): sys.exit("usage: rhasspy/number LOW HIGH [STEP]")
low, high = int(a[0]), int(a[1])
step = int(a[2]) if len(a) == 3 else 1
if step <= 0: sys.exit("rhasspy/number: STEP must be positive")
for n in range(low, high + 1, step): print(n)' "$@"
"""


def write_number_program(directory: Path) -> Path:
    """Create ``directory/rhasspy/number`` (executable) and return ``directory``."""
    program = directory / NUMBER_PROGRAM
    program.parent.mkdir(parents=True, exist_ok=True)
    program.write_text(_NUMBER_SCRIPT.replace("{python}", sys.executable), encoding="utf-8")
    program.chmod(program.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return directory


# --- expansion ---------------------------------------------------------------------------------

def _import_nlu() -> Any:
    try:
        import rhasspynlu  # noqa: F401
        from rhasspynlu import jsgf  # noqa: F401
    except ImportError as exc:
        raise SentencesError(
            "rhasspy-nlu is not installed (%s): install it with `pip install --no-deps -r "
            "requirements-retrain.txt`" % exc) from exc
    import rhasspynlu

    return rhasspynlu


def _references(expression: Any, jsgf: Any) -> Tuple[List[Any], List[Any]]:
    rules: List[Any] = []
    slots: List[Any] = []

    def visit(node: Any) -> None:
        if isinstance(node, jsgf.RuleReference):
            rules.append(node)
        elif isinstance(node, jsgf.SlotReference):
            slots.append(node)
        return None

    jsgf.walk_expression(expression, visit)
    return rules, slots


class Templates(NamedTuple):
    entries: List[Entry]
    sentences: Dict[str, List[Any]]  # intent -> rhasspy Sentence objects
    replacements: Dict[str, List[Any]]  # "<Intent.rule>" / "$slot" -> expressions
    slot_lines: List[Tuple[str, int, str]]  # (file, line, text) of slot values used


def _find_slot(key: str, slots_dirs: Sequence[Path], program_dirs: Sequence[Path]
               ) -> Tuple[str, Optional[Path]]:
    for directory in slots_dirs:
        candidate = directory / key
        if candidate.is_file():
            return "file", candidate
    name = key.split(",", 1)[0]
    for directory in program_dirs:
        candidate = directory / name
        if candidate.is_file():
            return "program", candidate
    return "missing", None


def parse_templates(files: Sequence["os.PathLike[str] | str"],
                    slots_dirs: Sequence["os.PathLike[str] | str"] = (),
                    slot_programs_dirs: Sequence["os.PathLike[str] | str"] = (),
                    language: str = "de") -> Templates:
    """Parse and check the templates; load slots. Raises SentencesError with file:line."""
    nlu = _import_nlu()
    from rhasspynlu import jsgf
    from rhasspynlu.numbers import number_range_transform, number_transform

    if not files:
        raise SentencesError("no sentences file given")
    slot_dirs = [Path(d) for d in slots_dirs]
    user_program_dirs = [Path(d) for d in slot_programs_dirs]
    entries: List[Entry] = []
    for path in files:
        entries.extend(read_entries(path))
    sentences: Dict[str, List[Any]] = {}
    replacements: Dict[str, List[Any]] = {}
    rule_where: Dict[str, Entry] = {}
    parsed: List[Tuple[Entry, Any]] = []
    for entry in entries:
        sentences.setdefault(entry.intent, [])
        body = entry.value if entry.is_rule else entry.key
        body = body.replace("\\[", "[")
        check_brackets(body, entry.where)
        metadata = jsgf.ParseMetadata(file_name=entry.file, line_number=entry.line,
                                      intent_name=entry.intent)
        try:
            if entry.is_rule:
                rule = jsgf.Rule.parse("<%s> = (%s);" % (entry.key, body), metadata=metadata)
                key = "<%s.%s>" % (entry.intent, rule.rule_name)
                if key in replacements:
                    raise SentencesError("%s: rule <%s> is also defined at %s"
                                         % (entry.where, key[1:-1], rule_where[key].where))
                replacements[key] = [rule.rule_body]
                rule_where[key] = entry
                parsed.append((entry, rule.rule_body))
            else:
                sentence = jsgf.Sentence.parse(body, metadata=metadata)
                sentences[entry.intent].append(sentence)
                parsed.append((entry, sentence))
        except SentencesError:
            raise
        except Exception as exc:  # rhasspy-nlu reports parse errors as AssertionError
            raise SentencesError("%s: cannot parse %r: %s" % (entry.where, body, exc)) from exc
    # References: every rule must be defined, every slot must exist.
    used_slots: Dict[str, Entry] = {}
    for entry, expression in parsed:
        rules, slots = _references(expression, jsgf)
        for ref in rules:
            key = "<%s>" % ref.full_rule_name
            if key not in replacements:
                local = [k for k in replacements if k.startswith("<%s." % entry.intent)]
                hint = (" (rules of [%s]: %s)" % (entry.intent, ", ".join(sorted(local)))
                        if local else " (define it as `%s = ...` in [%s])"
                        % (ref.rule_name, ref.grammar_name or entry.intent))
                raise SentencesError("%s: rule %s is not defined%s"
                                     % (entry.where, ref.text or key, hint))
        for ref in slots:
            used_slots.setdefault(ref.slot_name, entry)
    # Number ranges (1..10) become $rhasspy/number,1,10,1 slot references.
    for intent_sentences in sentences.values():
        for sentence in intent_sentences:
            jsgf.walk_expression(sentence, number_range_transform, replacements)
    for values in list(replacements.values()):
        for value in values:
            jsgf.walk_expression(value, number_range_transform, replacements)
    for entry, expression in parsed:
        for ref in _references(expression, jsgf)[1]:
            used_slots.setdefault(ref.slot_name, entry)
    builtin = Path(tempfile.mkdtemp(prefix="voice-slot-programs-"))
    try:
        write_number_program(builtin)
        program_dirs = user_program_dirs + [builtin]
        slot_lines = _check_slots(used_slots, slot_dirs, program_dirs, jsgf)
        intents_for_slots = {i: list(s) for i, s in sentences.items()}
        for key, values in replacements.items():
            intents_for_slots.setdefault("__rules__", []).extend(values)

        def slot_visitor(word: Any) -> Any:
            return number_transform(word, language)

        try:
            slot_replacements = nlu.get_slot_replacements(
                intents_for_slots, slots_dirs=slot_dirs, slot_programs_dirs=program_dirs,
                slot_visitor=slot_visitor)
        except Exception as exc:
            raise SentencesError("loading slot values failed: %s" % exc) from exc
    finally:
        shutil.rmtree(str(builtin), ignore_errors=True)
    for key, values in slot_replacements.items():
        if not values:
            entry = used_slots.get(key[1:])
            raise SentencesError("%s: slot %s has no values" % (entry.where if entry else "?", key))
    replacements.update(slot_replacements)
    # Numbers (e.g. "5") become words ("fünf") with the digits as substitution.
    for intent_sentences in sentences.values():
        for sentence in intent_sentences:
            jsgf.walk_expression(sentence, lambda w: number_transform(w, language), replacements)
    for values in list(replacements.values()):
        for value in values:
            jsgf.walk_expression(value, lambda w: number_transform(w, language), replacements)
    empty = [intent for intent, items in sentences.items() if not items]
    if empty:
        first = next(e for e in entries if e.intent == empty[0])
        raise SentencesError("%s: intent [%s] has rules but no sentences" % (first.where, empty[0]))
    return Templates(entries, sentences, replacements, slot_lines)


def _check_slots(used: Dict[str, Entry], slot_dirs: Sequence[Path], program_dirs: Sequence[Path],
                 jsgf: Any) -> List[Tuple[str, int, str]]:
    lines: List[Tuple[str, int, str]] = []
    for name, entry in sorted(used.items()):
        kind, path = _find_slot(name, slot_dirs, program_dirs)
        if kind == "missing":
            tried = ", ".join(str(d) for d in slot_dirs) or "no slots directory configured"
            raise SentencesError(
                "%s: slot $%s is not defined: no file %r in the slots directories (%s) and no "
                "slot program %r" % (entry.where, name, name, tried, name.split(",", 1)[0]))
        if kind == "program":
            continue
        assert path is not None
        try:
            text = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SentencesError("%s: slot file is not valid UTF-8" % path) from exc
        count = 0
        for number, raw in enumerate(text.splitlines(), start=1):
            value = raw.strip()
            if not value:
                continue
            where = "%s:%d" % (path, number)
            check_brackets(value, where)
            try:
                parsed = jsgf.Sentence.parse(value)
            except Exception as exc:
                raise SentencesError("%s: cannot parse slot value %r: %s" % (where, value, exc)) from exc
            rules, slots = _references(parsed, jsgf)
            if rules or slots:
                raise SentencesError("%s: slot values cannot reference rules or other slots (%r)"
                                     % (where, value))
            lines.append((str(path), number, value))
            count += 1
        if not count:
            raise SentencesError("%s: slot $%s (%s) is empty" % (entry.where, name, path))
    return lines


def expand(templates: Templates, max_sentences: int = 200000) -> List[Expanded]:
    """Every sentence the templates allow, as spoken (substitutions and tags do not change
    what is said)."""
    nlu = _import_nlu()
    from rhasspynlu.fsticuffs import sample_by_intent
    from rhasspynlu.ini_jsgf import get_intent_counts

    counts = get_intent_counts(templates.sentences, templates.replacements, exclude_slots=False)
    total = sum(counts.values())
    if total > max_sentences:
        biggest = sorted(counts.items(), key=lambda kv: -kv[1])[:3]
        raise SentencesError(
            "the templates allow %d sentences (largest intents: %s), more than the limit of %d; "
            "narrow the templates (number ranges and slots multiply) or raise max_sentences"
            % (total, ", ".join("%s=%d" % kv for kv in biggest), max_sentences))
    try:
        graph = nlu.sentences_to_graph(templates.sentences, replacements=templates.replacements)
        by_intent = sample_by_intent(graph)
    except Exception as exc:
        raise SentencesError("expanding the templates failed: %s" % exc) from exc
    out: List[Expanded] = []
    for intent in templates.sentences:
        for recognition in by_intent.get(intent, []):
            out.append(Expanded(intent, recognition.raw_text))
    missing = [i for i in templates.sentences if not by_intent.get(i)]
    if missing:
        first = next(e for e in templates.entries if e.intent == missing[0])
        raise SentencesError("%s: intent [%s] expands to no sentence" % (first.where, missing[0]))
    return out


# --- corpus text -------------------------------------------------------------------------------

def normalize(text: str, lowercase: bool = True, transliterate: Optional[Dict[str, str]] = None
              ) -> str:
    if lowercase:
        text = text.lower()
    for source, target in (transliterate or {}).items():
        text = text.replace(source, target)
    return " ".join(text.split())


def locate_word(word: str, templates: Templates, limit: int = 3) -> List[str]:
    """Where a corpus word (lowercased) appears in the template or slot files."""
    places: List[str] = []
    pattern = re.compile(r"(?<![\w])%s(?![\w])" % re.escape(word), re.IGNORECASE)
    for entry in templates.entries:
        text = entry.key if entry.value is None else entry.value
        if pattern.search(text):
            places.append(entry.where)
    for path, line, value in templates.slot_lines:
        if pattern.search(value):
            places.append("%s:%d" % (path, line))
    return places[:limit]


def expand_files(files: Sequence["os.PathLike[str] | str"],
                 slots_dirs: Sequence["os.PathLike[str] | str"] = (),
                 slot_programs_dirs: Sequence["os.PathLike[str] | str"] = (),
                 language: str = "de", max_sentences: int = 200000
                 ) -> Tuple[Templates, List[Expanded]]:
    templates = parse_templates(files, slots_dirs, slot_programs_dirs, language)
    return templates, expand(templates, max_sentences)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m voice_appliance.sentences FILE... [--slots DIR]``: print the sentences."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m voice_appliance.sentences",
                                     description="Print every sentence a sentences.ini allows.")
    parser.add_argument("files", nargs="+")
    parser.add_argument("--slots", action="append", default=[], help="slots directory")
    parser.add_argument("--slot-programs", action="append", default=[])
    parser.add_argument("--language", default="de")
    parser.add_argument("--intents", action="store_true", help="prefix each line with its intent")
    args = parser.parse_args(argv)
    try:
        _, sentences = expand_files(args.files, args.slots, args.slot_programs, args.language)
    except SentencesError as exc:
        print("error: %s" % exc, file=sys.stderr)
        return 1
    for item in sentences:
        print(("%s\t%s" % (item.intent, item.text)) if args.intents else item.text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
