"""Write the small, deterministic corpora behind the reference scorers (see README.md here).

    python make_corpora.py OUTDIR

Each case gets OUTDIR/<case>/{corpus.txt, vocab.txt, alphabet.txt}. The output depends only on
this file (fixed seed), so the committed inputs can be regenerated and checked.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Dict, List

def german_alphabet() -> str:
    # The German 0.7.4 model's alphabet: space, a-z, ä ö ü, apostrophe (31 labels).
    labels = [" "] + [chr(c) for c in range(ord("a"), ord("z") + 1)] + ["ä", "ö", "ü", "'"]
    return "# Each line in this file represents the Unicode codepoint (UTF-8 encoded)\n" \
        "# associated with a numeric label.\n" + "".join(label + "\n" for label in labels) \
        + "# The last (non-comment) line needs to end with a newline.\n"


ROOMS = ["wohnzimmer", "küche", "schlafzimmer", "bad", "flur", "büro", "kinderzimmer", "garten"]
DEVICES = ["licht", "lampe", "heizung", "radio", "fernseher", "ventilator", "rollladen"]
ACTIONS = [("schalte", "ein"), ("schalte", "aus"), ("mach", "an"), ("mach", "aus")]
QUESTIONS = [
    "wie spät ist es", "wie ist das wetter", "wie warm ist es", "welcher tag ist heute",
    "wie wird das wetter morgen", "wie kalt ist es draussen", "was läuft im radio",
]


def commands(n: int, rng: random.Random) -> List[str]:
    out = []
    for _ in range(n):
        kind = rng.random()
        if kind < 0.55:
            verb, particle = rng.choice(ACTIONS)
            out.append("%s das %s im %s %s" % (verb, rng.choice(DEVICES), rng.choice(ROOMS), particle))
        elif kind < 0.75:
            out.append("stelle die temperatur im %s auf %s grad" % (
                rng.choice(ROOMS), rng.choice(["achtzehn", "neunzehn", "zwanzig", "einundzwanzig",
                                               "zweiundzwanzig", "dreiundzwanzig"])))
        elif kind < 0.9:
            out.append(rng.choice(QUESTIONS))
        else:
            out.append("stelle einen timer auf %s minuten" % rng.choice(
                ["eine", "zwei", "drei", "fünf", "zehn", "fünfzehn", "zwanzig", "dreissig"]))
    return out


NOUNS = ["haus", "baum", "hund", "katze", "stadt", "strasse", "fenster", "tür", "zeitung", "musik",
         "arbeit", "schule", "woche", "abend", "morgen", "nachbar", "freundin", "kaffee", "brot",
         "apfel", "zug", "bahnhof", "wald", "see", "berg", "frühling", "sommer", "winter", "herbst"]
VERBS = ["sieht", "kauft", "findet", "mag", "sucht", "braucht", "bringt", "öffnet", "schliesst",
         "kennt", "hört", "liest", "malt", "baut", "zählt"]
SUBJECTS = ["der mann", "die frau", "das kind", "mein bruder", "unsere oma", "der lehrer",
            "die ärztin", "ein schüler", "jemand", "niemand"]
ADVERBS = ["heute", "gestern", "oft", "selten", "immer", "manchmal", "gern", "schnell", "leise"]
ARTICLES = ["den", "einen", "keinen", "diesen", "jeden"]


def prose(n: int, rng: random.Random) -> List[str]:
    out = []
    for _ in range(n):
        words = [rng.choice(SUBJECTS), rng.choice(VERBS)]
        if rng.random() < 0.6:
            words.append(rng.choice(ADVERBS))
        words += [rng.choice(ARTICLES), rng.choice(NOUNS)]
        if rng.random() < 0.3:
            words += ["und", rng.choice(ARTICLES), rng.choice(NOUNS)]
        out.append(" ".join(words))
    return out


def pseudo_words(n_words: int, n_sentences: int, rng: random.Random) -> List[str]:
    # Many words sharing prefixes and suffixes: exercises the FST minimization thoroughly.
    onsets = ["", "b", "br", "d", "f", "g", "h", "k", "kl", "l", "m", "n", "p", "r", "s", "sch",
              "st", "t", "w", "z"]
    nuclei = ["a", "e", "i", "o", "u", "ä", "ö", "ü", "au", "ei", "ie"]
    codas = ["", "n", "r", "s", "t", "ng", "ch", "l", "m", "'s"]
    vocab = set()
    while len(vocab) < n_words:
        syllables = rng.choice([1, 2, 2, 3, 3, 4])
        vocab.add("".join(rng.choice(onsets) + rng.choice(nuclei) + rng.choice(codas)
                          for _ in range(syllables)))
    words = sorted(vocab)
    return [" ".join(rng.choice(words) for _ in range(rng.randint(3, 9)))
            for _ in range(n_sentences)] + [" ".join(words)]


def edge_alphabet() -> str:
    # Comments, an escaped '#', the space label in the middle, a duplicated label (the later index
    # wins, as in upstream), a multi-character label that can never match, and ß.
    return "".join([
        "# edge-case alphabet\n", "a\n", "b\n", "c\n", "\\#\n", "d\n", "e\n", " \n",
        "# a comment in the middle\n", "h\n", "i\n", "n\n", "ch\n", "s\n", "t\n", "ß\n", "ä\n",
        "u\n", "a\n", "'\n", "r\n",
    ])


def edge_corpus() -> List[str]:
    return [
        "das ist ein test", "bach sah ein schiff", "#hashtag ist da", "ein baer in der stadt",
        "die straße ist nass", "äste hier", "ich bin's", "tschüss bis dann", "ab ab ab", "x",
        "héllo wörld", "dies ist #1", "brunch", "es regnet", "a b c d",
    ]


def char_corpus(lines: List[str]) -> List[str]:
    # Character-level corpus for UTF-8 mode: every codepoint a "word".
    return [" ".join(ch for ch in line.replace(" ", "")) for line in lines]


def build(outdir: Path) -> Dict[str, Path]:
    rng = random.Random(7404)
    cases: Dict[str, Dict[str, str]] = {}
    cmd = commands(100, rng)
    cases["de_commands"] = {"corpus": "\n".join(cmd) + "\n", "alphabet": german_alphabet()}
    big = prose(5000, rng)
    cases["de_5k"] = {"corpus": "\n".join(big) + "\n", "alphabet": german_alphabet()}
    cases["pseudo_3k"] = {"corpus": "\n".join(pseudo_words(3000, 2000, rng)) + "\n",
                          "alphabet": german_alphabet()}
    cases["alphabet_edge"] = {"corpus": "\n".join(edge_corpus()) + "\n", "alphabet": edge_alphabet()}
    utf8_lines = char_corpus(cmd[:60] + ["grüße aus köln", "straße", "ça va"])
    cases["utf8_chars"] = {"corpus": "\n".join(utf8_lines) + "\n", "alphabet": german_alphabet()}
    cases["one_word"] = {"corpus": "hallo\nhallo\n", "alphabet": german_alphabet()}
    written = {}
    for name, files in cases.items():
        d = outdir / name
        d.mkdir(parents=True, exist_ok=True)
        (d / "corpus.txt").write_text(files["corpus"], encoding="utf-8")
        (d / "vocab.txt").write_text(files["corpus"], encoding="utf-8")
        (d / "alphabet.txt").write_text(files["alphabet"], encoding="utf-8")
        written[name] = d
    return written


if __name__ == "__main__":
    for case, path in build(Path(sys.argv[1])).items():
        print(case, path)
