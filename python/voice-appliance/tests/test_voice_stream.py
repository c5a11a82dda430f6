"""sentences.stream: the streamed expansion says exactly what rhasspy-nlu's graph expansion says.

Every template set the other tests use, hand-written tricky templates and seeded random ones are
expanded twice, by ``sentences.stream`` and by the graph-based reference the project used before
(tests/voice_graph_reference.py: ``sentences_to_graph`` + ``sample_by_intent``); the results must
be equal as a multiset per intent, and in the same order. Then: the stream is lazy, and
voice-retrain's corpus stage holds no list of sentences.
"""

from __future__ import annotations

import ast
import collections
import inspect
import itertools
import json
import random
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest

from voice_testlib import DATA, PACKAGE_ROOT
from voice_graph_reference import expand_by_graph
from voice_appliance import retrain, scorer, sentences
from voice_appliance.sentences import Expanded, SentencesError

REPO = PACKAGE_ROOT.parents[1]
UNLIMITED = 10 ** 15


def per_intent(items: List[Expanded]) -> Dict[str, collections.Counter]:
    counts: Dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for item in items:
        counts[item.intent][item.text] += 1
    return dict(counts)


def write_set(tmp_path: Path, text: str, slots: Optional[Dict[str, str]] = None,
              programs: Optional[Dict[str, str]] = None) -> Tuple[Path, Path, Path]:
    (tmp_path / "slots").mkdir(exist_ok=True)
    (tmp_path / "programs").mkdir(exist_ok=True)
    for name, values in (slots or {}).items():
        path = tmp_path / "slots" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(values, encoding="utf-8")
    for name, script in (programs or {}).items():
        path = tmp_path / "programs" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(script, encoding="utf-8")
        path.chmod(0o755)
    ini = tmp_path / "sentences.ini"
    ini.write_text(text, encoding="utf-8")
    return ini, tmp_path / "slots", tmp_path / "programs"


def assert_same_as_graph(templates: sentences.Templates) -> Optional[List[Expanded]]:
    """The stream equals the graph expansion; if rhasspy-nlu refuses the templates, so does the
    stream (with a SentencesError). Returns the sentences (None if refused)."""
    try:
        reference = expand_by_graph(templates)
    except Exception:  # noqa: BLE001 - whatever rhasspy-nlu raised, the stream must refuse too
        with pytest.raises(SentencesError):
            list(sentences.stream(templates, UNLIMITED))
        return None
    streamed = list(sentences.stream(templates, UNLIMITED))
    assert per_intent(streamed) == per_intent(reference)
    assert streamed == reference  # the order of sample_by_intent too
    from rhasspynlu.ini_jsgf import get_intent_counts

    assert sentences.count_sentences(templates) == dict(get_intent_counts(
        templates.sentences, templates.replacements, exclude_slots=False))
    return streamed


# --- every template set of the other tests ------------------------------------------------------

def _constant(path: Path, name: str) -> str:
    """A module-level string constant of a test file (read, not imported; a
    ``textwrap.dedent("...")`` is dedented)."""
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            value = node.value
            if isinstance(value, ast.Call) and getattr(value.func, "attr", None) == "dedent":
                return textwrap.dedent(ast.literal_eval(value.args[0]))
            return ast.literal_eval(value)
    raise AssertionError("%s has no constant %s" % (path, name))


TESTS = PACKAGE_ROOT / "tests"
FARBE = {"farbe": "rot\nblau\n\ngrün:green\n"}
NUMBER_SEVEN = {"rhasspy/number": "#!/bin/sh\necho 7\n"}
CHAIN = "".join("r%d = (w%d | <r%d>)\n" % (n, n, n + 1) for n in range(49))

EXISTING_SETS = {
    "sentences:TEMPLATES": (lambda: _constant(TESTS / "test_voice_sentences.py", "TEMPLATES"), FARBE, {}),
    "retrain:SENTENCES": (lambda: _constant(TESTS / "test_voice_retrain.py", "SENTENCES"), {}, {}),
    "wyoming:SENTENCES": (lambda: _constant(TESTS / "test_voice_wyoming.py", "SENTENCES"), {}, {}),
    "rhasspy-asr:SENTENCES": (lambda: _constant(
        REPO / "python" / "rhasspy-asr" / "tests" / "test_rasr_service.py", "SENTENCES"), {}, {}),
    "scorer_retrain default sentences.ini": (lambda: (
        REPO / "roles" / "scorer_retrain" / "templates" / "sentences.ini.j2").read_text(
            encoding="utf-8").replace("{{ scorer_retrain_slots_dir }}", "/etc/voice-appliance/slots"),
        {}, {}),
    "program wins": (lambda: "[A]\nwarte (1..3) minuten\n", {}, NUMBER_SEVEN),
    "legitimate slot names": (
        lambda: "[A]\n$farben\n$sub/name\n$farbe\n$tools/wort,haus,baum\nnummer $rhasspy/number,1,3\n"
                "stufe (4..5)\n",
        dict(FARBE, farben="gelb\n", **{"sub/name": "anna\nberta\n"}),
        {"tools/wort": '#!/bin/sh\nfor w in "$@"; do echo "$w"; done\n'}),
    "number ranges": (lambda: "[A]\n(1..5) mal\n", {}, {}),
    "cli": (lambda: "[A]\nhallo [du]\n", {}, {}),
    "shared and chained rules": (
        lambda: "[A]\nsag <a> <b>\na = <c> eins\nb = <c> zwei\nc = (x | y)\nzähl <r0>\nr49 = ende\n"
                + CHAIN, {}, {}),
    "50 nested alternatives": (lambda: "[A]\nsag " + "(a | " * 50 + "b" + ")" * 50 + "\n", {}, {}),
    "transliteration": (lambda: "[Timer]\nwarte (29..31) minuten\nschließe die tür\n", {}, {}),
    "training": (lambda: "[Test]\n(das ist | ist das) ein test\n[Licht]\nlicht an\n", {}, {}),
    "radio": (lambda: "[Radio]\nschalte das radio (an | aus)\nschalte das radio (ein | aus)\n", {}, {}),
    "digits": (lambda: "[Zahlen]\n" + " ".join(["0 1 2 3 4 5 6 7 8 9"] * 5) + "\n[Radio]\nradio aus\n",
               {}, {}),
}


@pytest.mark.parametrize("name", sorted(EXISTING_SETS))
def test_existing_template_sets_stream_as_the_graph_expands(tmp_path, name):
    text, slots, programs = EXISTING_SETS[name]
    ini, slots_dir, programs_dir = write_set(tmp_path, text(), slots, programs)
    templates = sentences.parse_templates([ini], [slots_dir], [programs_dir])
    streamed = assert_same_as_graph(templates)
    assert streamed


# --- hand-written tricky templates --------------------------------------------------------------

TRICKY = textwrap.dedent("""\
    [Features]
    schalte (das | die) (licht | lampe) [im (wohnzimmer | bad)] (an | aus)
    mach [[ganz] schnell] [bitte | sofort]
    stelle ((den | einen) timer | die uhr) auf (1..3) minuten
    \\[bitte] sag <sagen> und <Other.ort>
    sagen = (hallo | <gruss> [<gruss>])
    gruss = (servus | moin:hallo | (guten tag):(gute tag))
    farbe $farbe und $farbe:colour und $farbe{f} und ($farbe){g:wert}
    zahl $rhasspy/number,1,4,2 und $zahlen
    stufe (0..2){stufe!int} und (zehn:10){sek!int} und fünf:5!int
    (eins zwei):drei vier und (a b):(c d) e
    sag (ja | ja | nein) (ja | ja)
    leer (a | () | b) und (() | ()) und [()] ende
    wort:ersatz und:(ganz viele) wörter: hier
    (Guten Morgen:morgen)!lower und (Hallo Welt:welt){t!upper} und (Cd Ab:x)!lower!upper
    ((a | b){t:v} c)!upper
    21 22 und 1000000

    [Other]
    ort = (küche | flur:gang){ort}
    geh in die <ort>
    ()
    ()
    hallo | tschüss | ()

    [Duplicates]
    doppelt
    doppelt
    \\[doppelt]
    """)
TRICKY_SLOTS = {"farbe": "rot\nblau\n(hell | dunkel) grün:green\n[sehr] gelb:(yellow one)\n5\n\n"
                         "weiß!lower\n(a b):c\n", "zahlen": "21\neins:1!int\n"}


def test_tricky_templates_stream_as_the_graph_expands(tmp_path):
    ini, slots_dir, programs_dir = write_set(tmp_path, TRICKY, TRICKY_SLOTS)
    templates = sentences.parse_templates([ini], [slots_dir], [programs_dir])
    streamed = assert_same_as_graph(templates)
    assert streamed is not None
    got = per_intent(streamed)
    # What the equivalence covers, spelled out (so that it cannot hold vacuously):
    features = got["Features"]
    assert features["Morgen Guten und Welt Hallo und Ab Cd"] == 1  # words held back by converters
    assert features["sag ja ja"] == 4 and features["sag nein ja"] == 2  # duplicates stay
    assert features["leer a und und ende"] == 2 and features["leer und und ende"] == 2  # [()]: 2
    assert features["eins zwei vier und a b e"] == 1  # substitutions: the spoken side
    assert features["wort und wörter hier"] == 1
    assert features["stufe null und zehn und fünf"] == 1  # 0: a falsy value through !int
    assert features["zahl eins und einundzwanzig"] == 1 and features["zahl drei und eins"] == 1
    assert features["einundzwanzig zweiundzwanzig und eine Million"] == 1
    assert features["farbe hell grün und sehr gelb und weiß und a b"] == 1
    assert got["Other"] == collections.Counter({"geh in die küche": 1, "geh in die flur": 1,
                                                "hallo": 1, "tschüss": 1, "": 2})
    assert got["Duplicates"] == collections.Counter({"doppelt": 3, "": 1})
    assert [item.text for item in streamed if item.intent == "Other"][-1] == ""  # () comes last


@pytest.mark.parametrize("text,fault", [
    ("[A]\n(ein paar:zwei)!int stück\n", r"converter !int cannot convert 'ein', 'zwei' \(in 'ein paar "),
    ("[A]\nhallo (welt)!unbekannt\n", r"converter !unbekannt \(in 'hallo welt'\) is not one of "
                                      r"rhasspy-nlu's converters \(bool, .*\)"),
    ("[A]\n((1..2))!lower\n", r"converter !lower cannot convert 1"),
])
def test_templates_rhasspy_cannot_expand_are_refused_with_their_line(tmp_path, text, fault):
    ini, slots_dir, programs_dir = write_set(tmp_path, "# comment\n" + text)
    templates = sentences.parse_templates([ini])
    with pytest.raises(Exception):  # noqa: B017 - rhasspy-nlu itself fails on these
        expand_by_graph(templates)
    with pytest.raises(SentencesError, match=r"^%s:3: %s" % (str(ini).replace(".", r"\."), fault)):
        sentences.expand(templates)


# --- seeded random templates --------------------------------------------------------------------

WORDS = ["an", "aus", "licht", "Guten", "Morgen", "das", "ÄRGER", "straße", "tür"]
SUBS = ["x", "(x y)", "5", "Yz"]


def _fragment(rng: random.Random, depth: int, rules: List[str], plain: bool = False) -> str:
    """A random template fragment; ``plain``: only words and groups that a string converter
    (!lower, !upper) accepts (no numbers, no rules or slots that may bring numbers in)."""
    kinds = ["word"] * 4 + ["sub", "empty"]
    if not plain:
        kinds += ["digit", "slot"] + ["rule"] * (2 if rules else 0)
    if depth > 0:
        kinds += ["group", "alt", "alt", "opt", "groupsub", "tag", "conv", "wordconv"]
        if not plain:
            kinds += ["range", "intconv", "subtag"]
    kind = rng.choice(kinds)
    word = rng.choice(WORDS)

    def inner(plain_inside: bool = plain) -> str:
        return " ".join(_fragment(rng, depth - 1, rules, plain_inside)
                        for _ in range(rng.randint(1, 3)))

    if kind == "word":
        return word
    if kind == "sub":
        return "%s:%s" % (word, rng.choice(SUBS + [""] if not plain else ["x", "(x y)", "Yz"]))
    if kind == "wordconv":
        return "%s%s!%s" % (word, rng.choice(["", ":x", ":Yz"]), rng.choice(["lower", "upper"]))
    if kind == "digit":
        return rng.choice(["0", "5", "21", "100"])
    if kind == "empty":
        return "()"
    if kind == "slot":
        return rng.choice(["$farbe", "$farbe:c", "$farbe{f}", "$rhasspy/number,1,2"])
    if kind == "rule":
        return "<%s>" % rng.choice(rules)
    if kind == "group":
        return "(%s)" % inner()
    if kind == "alt":
        return "(%s)" % " | ".join(inner() if rng.random() < 0.85 else ""
                                   for _ in range(rng.randint(2, 3)))
    if kind == "opt":
        return "[%s]" % inner()
    if kind == "groupsub":
        return "(%s):%s" % (inner(), rng.choice(SUBS if not plain else ["x", "(x y)", "Yz"]))
    if kind == "tag":
        return "(%s){%s}" % (inner(True), rng.choice(["t", "t:v", "t!lower", "t:V!upper"]))
    if kind == "subtag":  # the tag's substitution is all its converter sees
        return "(%s){%s}" % (inner(False), rng.choice(["t:5!int", "t:V!upper", "t:v"]))
    if kind == "conv":  # now and then !int on words: rhasspy-nlu fails, so must the stream
        return "(%s)!%s" % (inner(True), rng.choice(["lower", "upper"] * 6 + ["int"]))
    if kind == "intconv":
        return rng.choice(["(%s:%d)!int", "(%s):%d!int", "%s:%d!int"]) % (word, rng.randint(0, 12))
    return rng.choice(["(1..3)", "(2..6,2)", "(0..1){n}"])


def random_templates(seed: int) -> Tuple[str, str]:
    """A sentences.ini of 1-3 intents with rules (each may use the ones defined after it, across
    intents) and a slot file."""
    rng = random.Random(seed)
    intents = ["I%d" % n for n in range(rng.randint(1, 3))]
    rule_names = ["r%d" % n for n in range(rng.randint(0, 4))]
    owner = {name: rng.choice(intents) for name in rule_names}
    lines: Dict[str, List[str]] = {intent: [] for intent in intents}
    for index, name in enumerate(rule_names):
        later = ["%s.%s" % (owner[n], n) for n in rule_names[index + 1:]]
        lines[owner[name]].append("%s = %s" % (name, _fragment(rng, 2, later) if rng.random() < 0.9
                                               else "()"))
    qualified = ["%s.%s" % (owner[n], n) for n in rule_names]
    for intent in intents:
        for _ in range(rng.randint(1, 3)):
            sentence = " ".join(_fragment(rng, 3, qualified) for _ in range(rng.randint(1, 3)))
            if rng.random() < 0.15:
                sentence += " | " + _fragment(rng, 2, qualified)
            lines[intent].append(("\\" + sentence) if sentence.startswith("[") else sentence)
    values = ["rot", "blau", "grün:green", "(hell | dunkel) rot", "[sehr] blau", "gelb:(yellow x)",
              "5", "(a b):c", "Weiß!lower", "()"]
    slot = "\n".join(rng.sample(values, rng.randint(1, 4))) + "\n"
    return "".join("[%s]\n%s\n" % (i, "\n".join(lines[i])) for i in intents), slot


def test_random_templates_stream_as_the_graph_expands(tmp_path):
    tried = compared = refused = 0
    for seed in range(300):
        text, slot = random_templates(seed)
        case = tmp_path / str(seed)
        case.mkdir()
        ini, slots_dir, _ = write_set(case, text, {"farbe": slot})
        tried += 1
        try:
            templates = sentences.parse_templates([ini], [slots_dir])
        except SentencesError:
            continue  # a form rhasspy-nlu cannot parse (e.g. an empty group substitution)
        if sum(sentences.count_sentences(templates).values()) > 3000:
            continue
        try:
            result = assert_same_as_graph(templates)
        except AssertionError as exc:
            raise AssertionError("seed %d:\n%s\n%s" % (seed, text, exc)) from exc
        compared += 1
        refused += result is None
    assert compared >= 200, (tried, compared)  # the generator mostly makes usable templates
    assert 0 < refused < compared / 4  # some fail in rhasspy-nlu too (e.g. !int on words)


# --- the stream is lazy -------------------------------------------------------------------------

LAZY_CHILD = r"""
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))  # an eager expansion dies here
sys.path.insert(0, sys.argv[1])
from voice_appliance import sentences
templates = sentences.parse_templates([sys.argv[2]])
total = sum(sentences.count_sentences(templates).values())
it = sentences.stream(templates, 10 ** 13)
print(json.dumps([total, [next(it).text for _ in range(3)]]))
"""


def test_the_first_sentences_of_a_trillion_come_at_once(tmp_path):
    """10^12 sentences: a stream gives the first ones at once; anything that lists them first runs
    out of its 1 GiB address space (or past the timeout) and fails."""
    ini = tmp_path / "sentences.ini"
    ini.write_text("[A]\n" + "(a | b | c | d | e | f | g | h | i | j) " * 12 + "\n", encoding="utf-8")
    proc = subprocess.run([sys.executable, "-c", LAZY_CHILD, str(PACKAGE_ROOT), str(ini)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    total, first = json.loads(proc.stdout)
    assert total == 10 ** 12
    assert first == [" ".join("a" * 12), " ".join("a" * 11 + "b"), " ".join("a" * 11 + "c")]


def test_the_stream_yields_before_it_reaches_a_later_fault(tmp_path):
    """The second sentence fails in rhasspy-nlu (int('zwei')): a stream has handed out the first
    one by then; an expansion that lists everything first fails before giving any."""
    ini, _, _ = write_set(tmp_path, "[A]\n(eins:1 | zwei){n!int} mal\n[B]\nnie erreicht\n")
    templates = sentences.parse_templates([ini])
    stream = sentences.stream(templates)
    assert next(stream) == Expanded("A", "eins mal")
    with pytest.raises(SentencesError, match=r"sentences\.ini:2: converter !int cannot convert "
                                             r"'zwei' \(in 'zwei mal'\)"):
        next(stream)
    with pytest.raises(SentencesError, match=r"allow 3 sentences .* limit of 2"):
        sentences.stream(templates, max_sentences=2)  # refused when asked, before any expansion


def test_an_intent_without_a_sentence_names_its_line(tmp_path):
    """A dead end (an alternative without branches: rhasspy-nlu's parser never makes one, but
    Templates can be built by hand) still ends in the old message with the intent's line."""
    from rhasspynlu import jsgf

    ini, _, _ = write_set(tmp_path, "[A]\nhallo\n\n[B]\nwelt\n")
    templates = sentences.parse_templates([ini])
    dead = jsgf.Sentence(items=[jsgf.Sequence(type=jsgf.SequenceType.ALTERNATIVE, items=[])])
    templates.sentences["B"][0] = dead
    stream = sentences.stream(templates)
    assert next(stream) == Expanded("A", "hallo")
    with pytest.raises(SentencesError, match=r"sentences\.ini:5: intent \[B\] expands to no sentence"):
        next(stream)


def test_deep_templates_cost_no_python_stack(tmp_path):
    """50 rules deep, each 10 groups deep (legal: MAX_NESTING is per line and per chain): the walk
    keeps its own stacks, so it runs with hardly any Python stack left (a walk that recursed per
    level would need some 550 frames)."""
    chain = "".join("r%d = %s(w%d | <r%d>)%s\n" % (n, "(" * 10, n, n + 1, ")" * 10) for n in range(49))
    ini, _, _ = write_set(tmp_path, "[A]\nsag <r0>\nr49 = ende\n" + chain)
    templates = sentences.parse_templates([ini])
    assert_same_as_graph(templates)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(len(inspect.stack()) + 60)
    try:
        streamed = [item.text for item in sentences.stream(templates)]
        with pytest.raises(RecursionError):  # what the limit tells apart: a recursive walk
            expand_by_graph(templates)
    finally:
        sys.setrecursionlimit(limit)
    assert streamed == ["sag w%d" % n for n in range(49)] + ["sag ende"]


# --- voice-retrain's corpus stage streams -------------------------------------------------------

def _corpus_peak(tmp_path: Path, config: Dict[str, Any], monkeypatch: Any,
                 listed: bool = False) -> Tuple[int, int]:
    """The most Python memory (tracemalloc, bytes) voice-retrain's stages 1-2 allocated while
    expanding (from the call of ``sentences.stream`` on: reading and parsing the templates is
    not what is measured), and the corpus lines. ``listed``: the stage is handed a list of all
    sentences instead of the stream (what it must not build itself)."""
    streaming = sentences.stream

    def measured(templates: sentences.Templates, limit: int) -> Any:
        tracemalloc.start()
        items = streaming(templates, limit)
        return iter(list(items)) if listed else items

    monkeypatch.setattr(sentences, "stream", measured)
    alphabet = scorer.read_alphabet(config["alphabet"])
    summary: Dict[str, Any] = {}
    try:
        words, lines = retrain._corpus(config, alphabet, lambda m: None, summary,
                                       tmp_path / "corpus.txt")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        monkeypatch.setattr(sentences, "stream", streaming)
    assert summary["sentences"] == lines == 9 ** 5 and len(words) == 45
    return peak, lines


def test_the_corpus_stage_holds_no_list_of_sentences(tmp_path, monkeypatch):
    ini = tmp_path / "sentences.ini"
    ini.write_text("[A]\n" + " ".join("(%s)" % " | ".join("w%s%s" % (chr(97 + g), chr(97 + n))
                                                          for n in range(9)) for g in range(5))
                   + "\n", encoding="utf-8")
    config = retrain.load_config(None, {"sentences": [str(ini)], "verify": False,
                                        "alphabet": str(DATA / "de_commands" / "alphabet.txt"),
                                        "output_scorer": str(tmp_path / "out.scorer")})
    streamed, lines = _corpus_peak(tmp_path, config, monkeypatch)
    corpus = (tmp_path / "corpus.txt").read_text(encoding="utf-8").splitlines()
    assert len(corpus) == lines
    assert corpus[0] == "waa wba wca wda wea" and corpus[-1] == "wai wbi wci wdi wei"
    # The same stage handed a list of the same 59049 sentences: what the test must tell apart.
    listed, _ = _corpus_peak(tmp_path, config, monkeypatch, listed=True)
    assert listed > 4 * 1024 * 1024, listed  # the list (about 8 MB on CPython 3.11)
    assert streamed < 512 * 1024 and streamed * 8 < listed, (streamed, listed)  # (about 80 kB)
