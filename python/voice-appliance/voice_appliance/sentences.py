"""Expand Rhasspy ``sentences.ini`` templates into the sentences a user can say.

The template language (alternatives ``(a | b)``, optionals ``[x]``, rules ``<name>``, slots
``$name``, number ranges ``(1..10)``, tags ``{name}``, substitutions ``word:out``) is parsed by
rhasspy-nlu itself. This module adds what rhasspy-nlu lacks:

* exact ``file:line`` positions (rhasspy-nlu's own line numbers are wrong once a file has
  comments or blank lines), and errors it does not raise at all (a stray ``)``, a line that
  ``configparser`` silently reads as a section header, an undefined rule or slot);
* explicit ``raise`` instead of ``assert`` (under ``python -O`` rhasspy-nlu drops sentences);
* the ``rhasspy/number`` slot program behind number ranges, which the library does not ship;
* safety for a file that whoever may edit ``sentences.ini`` controls: slot names are checked
  before they are used as paths (no absolute names, no ``..``, nothing that resolves outside the
  slots / slot programs directory, even through a symbolic link), recursive rules are refused
  before anything is expanded, and files and slot program output are read only up to
  ``MAX_FILE_BYTES``. Slots are therefore loaded here, from the checked paths, and not by
  rhasspy-nlu's ``get_slot_replacements`` (which looks every name up again, unchecked);
* expansion as a stream (``stream``): the parsed templates are walked depth-first and each
  sentence is handed out as it is reached, saying exactly what rhasspy-nlu's graph expansion
  (``sentences_to_graph`` + ``sample_by_intent``) says, in its order, without building that graph
  or any list of sentences (which took most of the memory of a large retrain). ``expand`` is
  ``list(stream(...))`` for callers that want the list.

The file is split into sections and entries the way rhasspy-nlu's ``configparser`` set-up reads
it (``#``/``;`` comments, ``key = value`` rules, bare lines as sentences, ``\\[`` escape); each
entry is then parsed by rhasspy-nlu's ``Sentence.parse``/``Rule.parse``.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from pathlib import Path, PurePath
from typing import (Any, Callable, Dict, Iterator, List, NamedTuple, Optional, Sequence, Set,
                    Tuple)

SECTION_RE = re.compile(r"\[(?P<header>.+)\]")  # configparser.SECTCRE, matched at line start
NUMBER_PROGRAM = "rhasspy/number"
# Largest sentences file, slot file or slot program output that is read (bytes). Anything
# bigger is refused instead of being read into memory: a corpus that large would not fit the
# appliance's memory once expanded anyway.
MAX_FILE_BYTES = 16 * 1024 * 1024
# Deepest chain of rules (<a> using <b> using <c> ...) and deepest bracket nesting in one line.
# rhasspy-nlu walks templates recursively; far deeper templates end in a Python RecursionError.
MAX_NESTING = 50


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

def _size_text(size: int) -> str:
    return "%d bytes (%.1f MiB)" % (size, size / (1024.0 * 1024.0))


def read_limited(path: str, what: str, fix: str, name: Optional[str] = None) -> bytes:
    """The bytes of ``path``; refuse a file larger than MAX_FILE_BYTES without reading more
    than that, with a message naming the file (``name``, default ``path``), ``what`` it is, its
    size, the limit and ``fix``."""
    name = name or path
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            data = b"" if size > MAX_FILE_BYTES else handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise SentencesError("%s: cannot read: %s" % (name, exc.strerror or exc)) from exc
    if max(size, len(data)) > MAX_FILE_BYTES:  # a growing or special file has no fixed size
        actual = (_size_text(size) if size > MAX_FILE_BYTES
                  else "more than %d bytes" % MAX_FILE_BYTES)
        raise SentencesError("%s: the %s is %s, more than the limit of %s (MAX_FILE_BYTES); %s"
                             % (name, what, actual, _size_text(MAX_FILE_BYTES), fix))
    return data


def _decode(data: bytes, where: str) -> str:
    """UTF-8 text; ``where`` is a file name (the line is added) or a ``file:line: ...`` prefix."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise SentencesError("%s:%d: not valid UTF-8; save the file as UTF-8"
                             % (where, line)) from exc


def read_entries(path: "os.PathLike[str] | str") -> List[Entry]:
    """Split a sentences file into entries with their true line numbers."""
    path = str(path)
    text = _decode(read_limited(path, "sentences file", "split it into several files or "
                                "describe the sentences with rules and slots"), path)
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
            if len(stack) > MAX_NESTING:
                raise SentencesError("%s: the %s at column %d is nested %d brackets deep, more "
                                     "than the limit of %d (MAX_NESTING); use a rule instead"
                                     % (where, _NAMES[char], column, len(stack), MAX_NESTING))
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


def slot_name_problem(key: str) -> Optional[str]:
    """Why the slot reference ``key`` (``$key`` without the ``$``) cannot be used, or None.

    ``key`` is looked up as a file below each slots directory and its part before the first
    ``,`` as a program below each slot programs directory, so both must be plain relative names
    (sub-directories like ``rhasspy/number`` are allowed)."""
    name = key.split(",", 1)[0]
    control = [c for c in key if ord(c) < 32 or ord(c) == 127]
    if control:
        return "contains the control character %r" % control[0]
    if not name:
        return "has no name before its arguments" if key else "is empty"
    if "\\" in name:
        return "contains a backslash"
    if name.startswith("/") or PurePath(name).is_absolute():
        return "is an absolute path"
    if ".." in key.split("/"):
        return "contains a '..' path component"
    if any(part in ("", ".") for part in name.split("/")):
        return "contains an empty or '.' path component"
    return None


class SlotSource(NamedTuple):
    kind: str  # "file" or "program"
    path: Path  # as found: a configured directory / the slot name (for messages)
    real: Path  # with symbolic links resolved, inside that directory (what is read or run)


def _lookup(directory: Path, relative: str, kind: str, key: str, where: str
            ) -> Optional[SlotSource]:
    """The file ``directory/relative``, None if there is none; refuse one that resolves
    (through a symbolic link) outside ``directory``."""
    candidate = directory / relative
    try:
        if not candidate.is_file():
            return None
    except OSError as exc:  # e.g. a name too long for the file system
        raise SentencesError("%s: slot $%s cannot be looked up in %s: %s; rename the slot"
                             % (where, key, directory, exc.strerror or exc)) from exc
    base = Path(os.path.realpath(str(directory)))
    real = Path(os.path.realpath(str(candidate)))
    if base not in real.parents:
        raise SentencesError(
            "%s: slot $%s: %s resolves to %s, which is outside the %s directory %s (through a "
            "symbolic link); put the file itself into %s instead of linking to it"
            % (where, key, candidate, real, "slots" if kind == "file" else "slot programs",
               directory, directory))
    return SlotSource(kind, candidate, real)


def _find_slot(key: str, slots_dirs: Sequence[Path], program_dirs: Sequence[Path],
               where: str) -> Optional[SlotSource]:
    """The file or program for the slot reference ``key`` (None if there is none), looked up
    the way Rhasspy does: the whole key as a file in the slots directories, then its part
    before the first ``,`` as a program in the slot programs directories. ``where`` (the
    referencing line) starts the message of every refusal."""
    problem = slot_name_problem(key)
    if problem:
        raise SentencesError(
            "%s: slot name $%s %s; slot names are looked up as files below the slots and slot "
            "programs directories, so they must be relative names like $farben, $sub/name or "
            "$rhasspy/number,1,10 — rename the slot" % (where, key, problem))
    for directory in slots_dirs:
        found = _lookup(directory, key, "file", key, where)
        if found is not None:
            return found
    name = key.split(",", 1)[0]
    for directory in program_dirs:
        found = _lookup(directory, name, "program", key, where)
        if found is not None:
            return found
    return None


def _rule_cycle(references: Dict[str, List[str]]) -> Optional[List[str]]:
    """A cycle ``[a, b, ..., a]`` in the rule reference graph, or None (iterative, so long
    chains of rules cannot exhaust the Python stack)."""
    done: Set[str] = set()
    for start in references:
        if start in done:
            continue
        path = [start]
        on_path = {start}
        pending = [iter(references[start])]
        while path:
            target = next(pending[-1], None)
            if target is None:
                on_path.discard(path[-1])
                done.add(path.pop())
                pending.pop()
            elif target in on_path:
                return path[path.index(target):] + [target]
            elif target not in done and target in references:
                path.append(target)
                on_path.add(target)
                pending.append(iter(references[target]))
    return None


def _deepest_rule_chain(references: Dict[str, List[str]]) -> List[str]:
    """The longest chain ``[a, b, ...]`` of rules where each uses the next (no cycles)."""
    depth: Dict[str, int] = {}
    deepest: Dict[str, Optional[str]] = {}
    for start in references:
        stack = [start]
        while stack:
            key = stack[-1]
            if key in depth:
                stack.pop()
                continue
            todo = [target for target in references[key] if target not in depth]
            if todo:
                stack.extend(todo)
                continue
            stack.pop()
            child = max(references[key], key=lambda target: depth[target], default=None)
            depth[key] = 1 + (depth[child] if child is not None else 0)
            deepest[key] = child
    chain: List[str] = []
    link: Optional[str] = max(references, key=lambda rule: depth[rule], default=None)
    while link is not None:
        chain.append(link)
        link = deepest[link]
    return chain


def _too_deep(exc: RecursionError) -> SentencesError:
    return SentencesError("the templates nest rules and brackets too deeply for rhasspy-nlu (%s); "
                          "flatten the deepest rules" % exc)


def _share_plain_words(expression: Any, jsgf: Any, shared: Dict[str, Any]) -> None:
    """Make every plain word in ``expression`` (no tag, substitution or converter) the one
    ``Word`` object of its spelling in ``shared``. A large sentences file repeats a few thousand
    words hundreds of thousands of times; one object per spelling instead of per occurrence is
    most of the memory its parsed templates take. Plain words are never changed in place except
    by ``number_transform``, which turns every copy of a number into the same words anyway."""
    stack = [expression]
    while stack:
        node = stack.pop()
        if not isinstance(node, jsgf.Sequence):
            continue
        items = node.items
        for index, item in enumerate(items):
            if type(item) is jsgf.Word:
                if item.tag is not None or item.substitution is not None or item.converters:
                    continue
                known = shared.get(item.text)
                if (known is not None and known.text == item.text and known.tag is None
                        and known.substitution is None and not known.converters):
                    items[index] = known
                else:
                    shared[item.text] = item
            elif isinstance(item, jsgf.Sequence):
                stack.append(item)


def parse_templates(files: Sequence["os.PathLike[str] | str"],
                    slots_dirs: Sequence["os.PathLike[str] | str"] = (),
                    slot_programs_dirs: Sequence["os.PathLike[str] | str"] = (),
                    language: str = "de") -> Templates:
    """Parse and check the templates; load slots. Raises SentencesError with file:line."""
    _import_nlu()
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
    shared: Dict[str, Any] = {}  # spelling -> the one plain Word object of it
    for entry in entries:
        sentences.setdefault(entry.intent, [])
        body = (entry.key if entry.value is None else entry.value).replace("\\[", "[")
        check_brackets(body, entry.where)
        metadata = jsgf.ParseMetadata(file_name=entry.file, line_number=entry.line,
                                      intent_name=entry.intent)
        try:
            if entry.is_rule:
                rule = jsgf.Rule.parse("<%s> = (%s);" % (entry.key, body), metadata=metadata)
                _share_plain_words(rule.rule_body, jsgf, shared)
                key = "<%s.%s>" % (entry.intent, rule.rule_name)
                if key in replacements:
                    raise SentencesError("%s: rule <%s> is also defined at %s"
                                         % (entry.where, key[1:-1], rule_where[key].where))
                replacements[key] = [rule.rule_body]
                rule_where[key] = entry
                parsed.append((entry, rule.rule_body))
            else:
                sentence = jsgf.Sentence.parse(body, metadata=metadata)
                _share_plain_words(sentence, jsgf, shared)
                sentences[entry.intent].append(sentence)
                parsed.append((entry, sentence))
        except SentencesError:
            raise
        except Exception as exc:  # rhasspy-nlu reports parse errors as AssertionError
            raise SentencesError("%s: cannot parse %r: %s" % (entry.where, body, exc)) from exc
    # References: every rule must be defined, every slot must exist.
    used_slots: Dict[str, Entry] = {}
    rule_references: Dict[str, List[str]] = {key: [] for key in replacements}
    rule_key = {entry: key for key, entry in rule_where.items()}
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
            if entry in rule_key:
                rule_references[rule_key[entry]].append(key)
        for ref in slots:
            used_slots.setdefault(ref.slot_name, entry)
    # A rule that refers back to itself would be expanded forever (RecursionError in rhasspy-nlu).
    cycle = _rule_cycle(rule_references)
    if cycle:
        same_intent = len({rule_where[key].intent for key in cycle}) == 1
        shown = {key: "<%s>" % (key[1:-1].split(".", 1)[1] if same_intent else key[1:-1])
                 for key in cycle}
        raise SentencesError(
            "%s: recursive rule: %s (%s); a rule cannot refer back to itself, directly or through "
            "other rules, because it would expand forever — remove one of these references"
            % (rule_where[cycle[0]].where, " -> ".join(shown[key] for key in cycle),
               ", ".join("%s is defined at %s" % (shown[key], rule_where[key].where)
                         for key in cycle[:-1])))
    chain = _deepest_rule_chain(rule_references)
    if len(chain) > MAX_NESTING:
        names = [key[1:-1] for key in chain]
        shown_chain = names if len(names) <= 6 else names[:3] + ["..."] + names[-2:]
        raise SentencesError(
            "%s: rule <%s> nests %d rules deep (%s), more than the limit of %d (MAX_NESTING) "
            "that rhasspy-nlu can expand; flatten the chain"
            % (rule_where[chain[0]].where, names[0], len(chain),
               " -> ".join(name if name == "..." else "<%s>" % name for name in shown_chain),
               MAX_NESTING))

    # Every sentence and every rule body or slot value once, each on its own: following rule references
    # (rhasspy-nlu's walk does when given the replacements) would walk a rule's body again at every
    # reference, and a chain of rules that each use the next twice would take exponential time.
    def walk_all(visit: Callable[[Any], Any]) -> None:
        try:
            for expressions in list(sentences.values()) + list(replacements.values()):
                for index, expression in enumerate(expressions):
                    replaced = jsgf.walk_expression(expression, visit)
                    if replaced is not None and replaced is not True and replaced is not False:
                        expressions[index] = replaced
        except RecursionError as exc:
            raise _too_deep(exc) from exc

    # Number ranges (1..10) become $rhasspy/number,1,10,1 slot references.
    walk_all(number_range_transform)
    for entry, expression in parsed:
        for ref in _references(expression, jsgf)[1]:
            used_slots.setdefault(ref.slot_name, entry)
    builtin = Path(tempfile.mkdtemp(prefix="voice-slot-programs-"))
    try:
        write_number_program(builtin)
        program_dirs = user_program_dirs + [builtin]

        def slot_visitor(word: Any) -> Any:
            return number_transform(word, language)

        slot_replacements, slot_lines = _load_slots(used_slots, slot_dirs, program_dirs, jsgf,
                                                    slot_visitor, shared)
    finally:
        shutil.rmtree(str(builtin), ignore_errors=True)
    replacements.update(slot_replacements)
    # Numbers (e.g. "5") become words ("fünf") with the digits as substitution.
    walk_all(lambda word: number_transform(word, language))
    empty = [intent for intent, items in sentences.items() if not items]
    if empty:
        first = next(e for e in entries if e.intent == empty[0])
        raise SentencesError("%s: intent [%s] has rules but no sentences" % (first.where, empty[0]))
    return Templates(entries, sentences, replacements, slot_lines)


# Seconds a slot program may run before it is killed (a hung program must not hang the retrain).
SLOT_PROGRAM_TIMEOUT = 60.0


def _run_slot_program(source: SlotSource, key: str, where: str,
                      timeout: Optional[float] = None) -> str:
    """The output of the slot program for ``$key`` (arguments after the first ``,``), at most
    MAX_FILE_BYTES of it, within ``timeout`` (default SLOT_PROGRAM_TIMEOUT) seconds."""
    import threading

    limit = SLOT_PROGRAM_TIMEOUT if timeout is None else timeout
    program = source.path
    command = [str(source.real)] + key.split(",")[1:]
    with tempfile.TemporaryFile() as errors:
        try:
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                       stderr=errors, start_new_session=True)
        except OSError as exc:
            raise SentencesError("%s: slot program %s (for $%s) cannot be run: %s; make it "
                                 "executable and start it with a #! line"
                                 % (where, program, key, exc.strerror or exc)) from exc
        def stop() -> None:  # the program and whatever it started (they hold its output open)
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except OSError:
                pass

        timer = threading.Timer(limit, stop)
        timer.start()
        with process:
            data = process.stdout.read(MAX_FILE_BYTES + 1) if process.stdout else b""
            if len(data) > MAX_FILE_BYTES:
                process.kill()
                raise SentencesError(
                    "%s: slot program %s (for $%s) printed more than the limit of %s "
                    "(MAX_FILE_BYTES); narrow its arguments (e.g. a smaller number range)"
                    % (where, program, key, _size_text(MAX_FILE_BYTES)))
            returncode = process.wait()
        timed_out = not timer.is_alive()
        timer.cancel()
        if timed_out and returncode < 0:
            raise SentencesError("%s: slot program %s (for $%s) did not finish within %g s "
                                 "(SLOT_PROGRAM_TIMEOUT) and was stopped; make it print its values "
                                 "and exit" % (where, program, key, limit))
        errors.seek(0)
        message = errors.read(4096).decode("utf-8", "replace").strip()
    if returncode != 0:
        raise SentencesError("%s: slot program %s (for $%s) failed with exit code %d%s"
                             % (where, program, key, returncode,
                                (": " + message) if message else ""))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SentencesError("%s: output line %d of slot program %s (for $%s) is not valid UTF-8; "
                             "make the program print UTF-8" % (where, data[: exc.start].count(b"\n")
                                                                + 1, program, key)) from exc


def _load_slots(used: Dict[str, Entry], slot_dirs: Sequence[Path], program_dirs: Sequence[Path],
                jsgf: Any, visitor: Callable[[Any], Any], shared: Optional[Dict[str, Any]] = None
                ) -> Tuple[Dict[str, List[Any]], List[Tuple[str, int, str]]]:
    """Replacements ``{"$key": [values]}`` for the used slots, and (file, line, text) of every
    value read from a slot file. All names are checked before any slot program runs."""
    found = {name: _find_slot(name, slot_dirs, program_dirs, entry.where)
             for name, entry in sorted(used.items())}
    replacements: Dict[str, List[Any]] = {}
    lines: List[Tuple[str, int, str]] = []
    for name, entry in sorted(used.items()):
        source = found[name]
        if source is None:
            tried = ", ".join(str(d) for d in slot_dirs) or "no slots directory configured"
            raise SentencesError(
                "%s: slot $%s is not defined: no file %r in the slots directories (%s) and no "
                "slot program %r" % (entry.where, name, name, tried, name.split(",", 1)[0]))
        kind, path = source.kind, source.path
        if kind == "file":
            text = _decode(read_limited(str(source.real), "slot file", "split the slot into "
                                        "several slots", str(path)), str(path))
        else:
            text = _run_slot_program(source, name, entry.where)
        values: List[Any] = []
        for number, raw in enumerate(text.splitlines(), start=1):
            value = raw.strip()
            if not value:
                continue
            if kind == "file":
                where = "%s:%d" % (path, number)
            else:
                where = "%s: output line %d of slot program %s" % (entry.where, number, path)
            check_brackets(value, where)
            try:
                sentence = jsgf.Sentence.parse(value)
            except Exception as exc:
                raise SentencesError("%s: cannot parse slot value %r: %s" % (where, value, exc)) from exc
            rules, slots = _references(sentence, jsgf)
            if rules or slots:
                raise SentencesError("%s: slot values cannot reference rules or other slots (%r)"
                                     % (where, value))
            if shared is not None:
                _share_plain_words(sentence, jsgf, shared)
            jsgf.walk_expression(sentence, visitor)
            values.append(sentence)
            if kind == "file":
                lines.append((str(path), number, value))
        if not values:
            if kind == "file":
                raise SentencesError("%s: slot $%s (%s) is empty" % (entry.where, name, path))
            raise SentencesError("%s: slot program %s (for $%s) printed no values"
                                 % (entry.where, path, name))
        replacements["$" + name] = values
    return replacements, lines


# --- expansion: a depth-first walk that yields one sentence at a time -------------------------
#
# What is spoken along one path through the templates is what rhasspy-nlu's graph expansion
# (``sentences_to_graph`` + ``sample_by_intent``) reports as ``raw_text``; the walk below
# reproduces it without building the graph or any list of sentences:
#
# * Every word is spoken as written (a substitution ``spoken:written`` only changes what is
#   written); words are joined by single spaces and empty words (the empty alternative of an
#   optional ``[x]``) are left out.
# * A converter (``!int``, also on tags ``{name!int}`` and on number ranges) really runs, on what
#   is written inside it, as in the library; a word that is written exactly as it is spoken (no
#   substitution of its own, none around it) is held back until the converter ends and then
#   follows the words that were not held back, so ``(Guten Morgen:morgen)!lower`` is spoken
#   "Morgen Guten", as Rhasspy trains it. A converter that fails ends the expansion with the
#   sentence's file:line, as rhasspy-nlu fails on it.
# * Branches that make no graph state at all (an empty group ``()``, a rule whose body is
#   empty) are one path however many there are in one alternative (or in one intent), and it
#   comes after the other branches: the graph joins them with one edge, added last.
#
# Memory: the stack of open alternatives and the current sentence's words; templates are walked
# in place (rules and slots are shared, never copied per use).

_EXPR, _TOKEN = 0, 1
_CONVERT, _CONVERTED = "__convert__", "__converted__"
# A continuation is a linked list ((kind, ...), rest) of what is still to be spoken after the
# current point; alternatives share their continuation instead of copying it.
_Cont = Optional[Tuple[Tuple[Any, ...], Any]]


def _labels(substitution: Any) -> List[str]:
    """The written tokens of a substitution (a string or a list of strings)."""
    return [substitution] if isinstance(substitution, str) else list(substitution)


class _Walker:
    """Walks rhasspy-nlu expression trees depth-first with explicit stacks (no recursion, so a
    deep but legal template costs memory, not the Python stack)."""

    def __init__(self, replacements: Dict[str, List[Any]], jsgf: Any,
                 converters: Dict[str, Callable[..., Any]]) -> None:
        self.replacements = replacements
        self.jsgf = jsgf
        self.converters = converters
        self._options: Dict[Tuple[Any, bool], List[Any]] = {}

    def _resolve(self, expression: Any, where: str) -> List[Any]:
        jsgf = self.jsgf
        if isinstance(expression, jsgf.RuleReference):
            key = "<%s>" % expression.full_rule_name
            what = "rule <%s>" % expression.full_rule_name
        else:
            key = "$" + expression.slot_name
            what = "slot $%s" % expression.slot_name
        values = self.replacements.get(key)
        if not values:
            raise SentencesError("%s: %s is not defined" % (where, what))
        return values

    def makes_no_state(self, expression: Any, in_substitution: bool) -> bool:
        """Whether rhasspy-nlu's graph gets no state for ``expression``: a group (or a rule)
        holding nothing but such groups, without tag, converter or (outside another
        substitution) substitution. ``in_substitution``: inside a substitution already."""
        jsgf = self.jsgf
        stack = [(expression, in_substitution)]
        seen: Set[Tuple[int, bool]] = set()
        while stack:
            node, inside = stack.pop()
            if (id(node), inside) in seen:
                continue
            seen.add((id(node), inside))
            if isinstance(node, (jsgf.Word, jsgf.SlotReference)):
                return False
            if isinstance(node, jsgf.Taggable) and node.tag:
                return False
            if isinstance(node, jsgf.Substitutable):
                if node.converters or (node.substitution and not inside):
                    return False
                inside = inside or bool(node.substitution)
            if isinstance(node, jsgf.Sequence):
                if node.type == jsgf.SequenceType.ALTERNATIVE:
                    return False
                stack.extend((item, inside) for item in node.items)
            elif isinstance(node, jsgf.RuleReference):
                values = self.replacements.get("<%s>" % node.full_rule_name)
                if not values:
                    return False  # the walk reports it
                stack.append((values[0], inside))
        return True

    def options(self, key: Any, items: List[Any], in_substitution: bool) -> List[Any]:
        """The branches of an alternative in the order the graph enumerates them: those that
        make states in their order, then the first stateless one (the others are the same
        path)."""
        cached = self._options.get((key, in_substitution))
        if cached is not None:
            return cached
        making: List[Any] = []
        stateless: List[Any] = []
        for item in items:
            (stateless if self.makes_no_state(item, in_substitution) else making).append(item)
        result = items if not stateless and len(making) == len(items) else making + stateless[:1]
        self._options[(key, in_substitution)] = result
        return result

    def paths(self, root: Any, where: str) -> Iterator[str]:
        """What is spoken along each path through ``root`` (a sentence), one at a time."""
        jsgf = self.jsgf
        word_type, sequence_type = jsgf.Word, jsgf.Sequence
        alternative, substitutable = jsgf.SequenceType.ALTERNATIVE, jsgf.Substitutable
        rule_type, slot_type = jsgf.RuleReference, jsgf.SlotReference
        out: List[Tuple[str, Any]] = []  # (spoken, written) of the path so far
        # open alternatives: [branches, next branch, substitution depth, continuation, len(out)]
        frames: List[List[Any]] = []
        cont: _Cont = ((_EXPR, root, 0), None)
        while True:
            while cont is not None:
                step, cont = cont
                if step[0] == _TOKEN:
                    out.append(step[1])
                    continue
                expression, depth = step[1], step[2]
                tag = getattr(expression, "tag", None)
                if isinstance(expression, substitutable):
                    substitution, converters = expression.substitution, expression.converters
                else:
                    substitution, converters = None, []
                if (type(expression) is word_type and tag is None and substitution is None
                        and not converters):  # the common case: a plain word
                    out.append((expression.text, expression.text if depth <= 0 else ""))
                    continue
                inner = depth + (1 if substitution else 0) + (1 if tag and tag.substitution else 0)
                if tag:
                    out.extend(("", _CONVERT + name) for name in reversed(tag.converters))
                out.extend(("", _CONVERT + name) for name in reversed(converters))
                after: List[Tuple[str, Any]] = []
                if substitution and inner - 1 <= 0:
                    after.extend(("", label) for label in _labels(substitution))
                if tag and tag.substitution:
                    after.extend(("", label) for label in _labels(tag.substitution))
                after.extend(("", _CONVERTED + name) for name in converters)
                if tag:
                    after.extend(("", _CONVERTED + name) for name in tag.converters)
                rest = cont
                for token in reversed(after):
                    rest = ((_TOKEN, token), rest)
                branches: Optional[List[Any]] = None
                if isinstance(expression, word_type):
                    written = expression.text if substitution is None and inner <= 0 else ""
                    out.append((expression.text, written))
                    cont = rest
                elif isinstance(expression, sequence_type):
                    if expression.type == alternative:
                        branches = self.options(id(expression), expression.items, inner > 0)
                    else:
                        for item in reversed(expression.items):
                            rest = ((_EXPR, item, inner), rest)
                        cont = rest
                elif isinstance(expression, rule_type):
                    cont = ((_EXPR, self._resolve(expression, where)[0], inner), rest)
                elif isinstance(expression, slot_type):
                    values = self._resolve(expression, where)
                    inner += 1 if substitution else 0
                    branches = self.options("$" + expression.slot_name, values, inner > 0)
                else:
                    cont = rest  # nothing else is spoken
                if branches is not None:
                    if not branches:
                        break  # a dead end: no path
                    frames.append([branches, 1, inner, rest, len(out)])
                    cont = ((_EXPR, branches[0], inner), rest)
            else:
                yield self.spoken(out, where)
            while frames:  # back to the latest alternative with a branch left
                frame = frames[-1]
                if frame[1] < len(frame[0]):
                    branch = frame[0][frame[1]]
                    frame[1] += 1
                    del out[frame[4]:]
                    cont = ((_EXPR, branch, frame[2]), frame[3])
                    break
                frames.pop()
            else:
                return

    def spoken(self, out: List[Tuple[str, Any]], where: str) -> str:
        """The spoken text of one path: its words in order, except that a word written as
        spoken inside a converter follows the converter's other words (see above)."""
        words: List[str] = []
        open_converters: List[Tuple[str, List[Tuple[str, Any]]]] = []
        for spoken, written in out:
            if written and open_converters and written[:2] != "__":
                open_converters[-1][1].append((spoken, written))
            elif written[:11] == _CONVERT:
                open_converters.append((written[11:], []))
            elif written[:13] == _CONVERTED:
                name, held = open_converters.pop()
                held_spoken = [text for text, _ in held if text]
                values = [value for _, value in held if value]
                converted = self._convert(name, values, out, where)
                if open_converters:
                    open_converters[-1][1].extend(
                        itertools.zip_longest(held_spoken, converted, fillvalue=""))
                else:
                    words.extend(held_spoken)
            elif spoken:
                words.append(spoken)
        return " ".join(words)

    def _convert(self, key: str, values: List[Any], out: List[Tuple[str, Any]],
                 where: str) -> List[Any]:
        name, *arguments = key.split(",")
        function = self.converters.get(name)
        sentence = " ".join(text for text, _ in out if text)
        if function is None:
            raise SentencesError(
                "%s: converter !%s (in %r) is not one of rhasspy-nlu's converters (%s), so the "
                "sentence cannot be expanded; remove it or use one of those"
                % (where, name, sentence, ", ".join(sorted(self.converters))))
        try:
            return list(function(*values, **({"converter_args": arguments} if arguments else {})))
        except Exception as exc:
            raise SentencesError(
                "%s: converter !%s cannot convert %s (in %r): %s; give the words a substitution "
                "it accepts (e.g. zehn:10 for !int) or remove the converter"
                % (where, key, ", ".join(repr(v) for v in values) or "nothing", sentence,
                   exc)) from exc


# Counts saturate here: a few lines can allow 2**(2**30) sentences (a chain of rules that each say the next
# one twice), a number too large to compute or print.
COUNT_CAP = 10 ** 18


def _count_text(count: int) -> str:
    return "over 10^18" if count >= COUNT_CAP else str(count)


def count_sentences(templates: Templates) -> Dict[str, int]:
    """How many sentences each intent allows, counted without expanding them (as rhasspy-nlu's
    ``get_intent_counts(..., exclude_slots=False)`` counts: alternatives add, sequences
    multiply, rules and slots count their values; at least 1 per intent). Iterative; a rule or
    slot is counted once however often it is used."""
    _import_nlu()
    from rhasspynlu import jsgf

    known: Dict[str, int] = {}
    counts: Dict[str, int] = {}
    for intent, items in templates.sentences.items():
        total = 0
        for sentence in items:
            results: List[int] = []
            # (expression, None) = count it; (expression, n) = combine its n counted parts
            work: List[Tuple[Any, Optional[int]]] = [(sentence, None)]
            while work:
                node, parts = work.pop()
                if parts is None:
                    if isinstance(node, jsgf.Word):
                        results.append(1)
                        continue
                    if isinstance(node, jsgf.Sequence):
                        children = node.items
                    elif isinstance(node, (jsgf.RuleReference, jsgf.SlotReference)):
                        key = ("<%s>" % node.full_rule_name if isinstance(node, jsgf.RuleReference)
                               else "$" + node.slot_name)
                        if key in known:
                            results.append(known[key])
                            continue
                        if key not in templates.replacements:
                            raise SentencesError("%s is not defined" % key)
                        children = templates.replacements[key]
                    else:
                        results.append(0)
                        continue
                    work.append((node, len(children)))
                    work.extend((child, None) for child in reversed(children))
                    continue
                values = results[len(results) - parts:]
                del results[len(results) - parts:]
                if isinstance(node, jsgf.Sequence) and node.type != jsgf.SequenceType.ALTERNATIVE:
                    count = 1
                    for value in values:
                        count = min(count * value, COUNT_CAP)
                else:
                    count = min(sum(values), COUNT_CAP)
                if isinstance(node, jsgf.RuleReference):
                    known["<%s>" % node.full_rule_name] = count
                elif isinstance(node, jsgf.SlotReference):
                    known["$" + node.slot_name] = count
                results.append(count)
            total += results[0]
        counts[intent] = min(max(1, total), COUNT_CAP)
    return counts


def _check_count(templates: Templates, max_sentences: int) -> None:
    counts = count_sentences(templates)
    total = min(sum(counts.values()), COUNT_CAP)
    if total > max_sentences:
        biggest = sorted(counts.items(), key=lambda kv: -kv[1])[:3]
        raise SentencesError(
            "the templates allow %s sentences (largest intents: %s), more than the limit of %d; "
            "narrow the templates (number ranges and slots multiply) or raise max_sentences"
            % (_count_text(total), ", ".join("%s=%s" % (intent, _count_text(n)) for intent, n in biggest), max_sentences))


def stream(templates: Templates, max_sentences: int = 200000) -> Iterator[Expanded]:
    """Every sentence the templates allow, as spoken (substitutions and tags do not change what
    is said), one at a time: intents in order, each intent's sentences depth-first in the order
    rhasspy-nlu's ``sample_by_intent`` lists them. Nothing but the current path is held.

    Templates that allow more than ``max_sentences`` are refused here, before anything is
    expanded; errors found while expanding (a converter that fails, an intent without any
    sentence) are raised by the iterator when it reaches them."""
    _check_count(templates, max_sentences)
    return _stream(templates)


def _stream(templates: Templates) -> Iterator[Expanded]:
    _import_nlu()
    from rhasspynlu import jsgf
    from rhasspynlu.fsticuffs import get_default_converters

    walker = _Walker(templates.replacements, jsgf, get_default_converters())
    first: Dict[str, Entry] = {}
    lines: Dict[str, List[Entry]] = {}
    for entry in templates.entries:
        first.setdefault(entry.intent, entry)
        if not entry.is_rule:
            lines.setdefault(entry.intent, []).append(entry)
    try:
        for intent, items in templates.sentences.items():
            fallback = first[intent].where if intent in first else "[%s]" % intent
            places = lines.get(intent, [])
            aligned = len(places) == len(items)  # else not from parse_templates: no line each
            produced = 0
            stateless: Optional[int] = None
            for index, sentence in enumerate(items):
                if walker.makes_no_state(sentence, False):
                    if stateless is None:
                        stateless = index  # the graph joins these last, as one path
                    continue
                where = places[index].where if aligned else fallback
                for text in walker.paths(sentence, where):
                    produced += 1
                    yield Expanded(intent, text)
            if stateless is not None:
                for text in walker.paths(items[stateless],
                                         places[stateless].where if aligned else fallback):
                    produced += 1
                    yield Expanded(intent, text)
            if not produced:
                raise SentencesError("%s: intent [%s] expands to no sentence" % (fallback, intent))
    except RecursionError as exc:
        raise _too_deep(exc) from exc
    except SentencesError:
        raise
    except Exception as exc:  # a template rhasspy-nlu would not expand either
        raise SentencesError("expanding the templates failed: %s"
                             % (str(exc) or type(exc).__name__)) from exc


def expand(templates: Templates, max_sentences: int = 200000) -> List[Expanded]:
    """Every sentence the templates allow, as a list (``list(stream(...))``; prefer ``stream``
    for large templates)."""
    return list(stream(templates, max_sentences))


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
    """``stream_files``, the sentences as a list."""
    templates, items = stream_files(files, slots_dirs, slot_programs_dirs, language, max_sentences)
    return templates, list(items)


def stream_files(files: Sequence["os.PathLike[str] | str"],
                 slots_dirs: Sequence["os.PathLike[str] | str"] = (),
                 slot_programs_dirs: Sequence["os.PathLike[str] | str"] = (),
                 language: str = "de", max_sentences: int = 200000
                 ) -> Tuple[Templates, Iterator[Expanded]]:
    """``parse_templates`` and ``stream``: the templates, and their sentences one at a time."""
    templates = parse_templates(files, slots_dirs, slot_programs_dirs, language)
    return templates, stream(templates, max_sentences)


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
    try:  # printed as they are expanded: nothing holds them all
        _, sentences = stream_files(args.files, args.slots, args.slot_programs, args.language)
        for item in sentences:
            print(("%s\t%s" % (item.intent, item.text)) if args.intents else item.text)
    except SentencesError as exc:
        print("error: %s" % exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
