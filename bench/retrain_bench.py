#!/usr/bin/env python3
"""Benchmark: scorer retraining (voice-retrain, sentences.ini -> generated scorer) by corpus size.

For 100, 1k, 10k and 100k sentences, written as that many distinct lines (literal) and as one
line of two number ranges (templated), runs the real pipeline (expansion of the templates, lmplz,
filter, build_binary, the project's packager, atomic install; the verification decode is off so
that only the retrain itself is timed): with the project's fixed lmplz/build_binary memory budget
(-S 64M) and with upstream generate_lm.py's setting (-S 85% of RAM). Each run is its own process;
its peak RSS is split into the Python process itself (expansion, corpus, packaging) and the
largest KenLM program it ran (measured by wrappers around the tools), and "peak" is the larger.

With --baseline REV the package as it was at git revision REV of this repository (taken with
`git archive`, no checkout needed) runs the same -S 64M retrain in the same run, interleaved: a
before/after of the same machine and load (e.g. the graph-based expansion before streaming).

    nice -n 19 .venv/bin/python bench/retrain_bench.py [--kenlm-bin DIR] [--sizes 100,1000]
        [--kinds literal,templated] [--baseline REV] [--no-upstream] [--repeat N] > bench/retrain.md

Needs KenLM binaries (python/voice-appliance/tests/kenlm_build.py builds them into the cache) and
the fixture model's alphabet. Writes a Markdown table to stdout.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

REPO = Path(__file__).resolve().parent.parent
PACKAGE = "python/voice-appliance"
FIXTURE = REPO / "files" / "fixture"
SYLLABLES = ["ba", "be", "da", "de", "ka", "ko", "la", "le", "ma", "mi", "na", "no", "ra", "ri",
             "sa", "sch", "ta", "tu", "wa", "we", "zu", "ei", "au", "ä", "ö", "ü", "ch", "st"]

# Runs voice-retrain's main() in this (measured) process: afterwards its own peak RSS and that of
# the largest program it ran (lmplz, filter, build_binary) are written as JSON to argv[2].
CHILD = r"""
import contextlib, io, json, resource, sys
from voice_appliance import retrain
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
    rc = retrain.main(["--config", sys.argv[1]])
with open(sys.argv[2], "w") as out:
    json.dump({"rc": rc, "python_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
               "tools_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
               "stderr": err.getvalue()[-2000:]}, out)
"""


def corpus(n: int, seed: int = 74) -> List[str]:
    """n distinct command-like sentences over a few thousand made-up German-spelled words."""
    rng = random.Random(seed)
    words = sorted({"".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 4))) for _ in range(4000)})
    sentences = set()
    while len(sentences) < n:
        sentences.add(" ".join(rng.choice(words) for _ in range(rng.randint(3, 7))))
    return sorted(sentences)


def templated(n: int) -> str:
    """A sentences.ini whose one line expands to n sentences (n a multiple of 100): two number
    ranges with tags, i.e. slots from the built-in number program, !int converters and numbers
    written as words; what a real sentences.ini multiplies."""
    if n % 100:
        raise SystemExit("templated sizes must be multiples of 100, got {}".format(n))
    return "[Bench]\nstelle (0..{}){{a}} auf (0..99){{b}}\n".format(n // 100 - 1)


def tool_wrappers(kenlm_bin: Path, into: Path, log: Path) -> Path:
    """A directory of lmplz/filter/build_binary wrappers that append each run's own peak RSS (KiB)
    to ``log``. Needed for the KenLM column: started straight from voice-retrain, a tool reported
    voice-retrain's own high-water RSS as its ru_maxrss (95 MiB for lmplz at 100k lines, where it
    uses 48), so the tools' peak could not be told apart. GNU time (a small parent) where
    installed, else a small Python parent (its ~10 MiB then is a floor)."""
    into.mkdir()
    for name in ("lmplz", "filter", "build_binary"):
        real = kenlm_bin / name
        if Path("/usr/bin/time").exists():
            body = 'exec /usr/bin/time -a -o "{}" -f "%M" "{}" "$@"\n'.format(log, real)
        else:
            body = ("exec \"{}\" -c 'import resource, subprocess, sys\nrc = subprocess.call(sys.argv[2:])\n"
                    "open(sys.argv[1], \"a\").write(\"%d\\n\" % resource.getrusage(resource.RUSAGE_CHILDREN)"
                    ".ru_maxrss)\nsys.exit(rc)' \"{}\" \"{}\" \"$@\"\n").format(sys.executable, log, real)
        wrapper = into / name
        wrapper.write_text("#!/bin/sh\n" + body, encoding="utf-8")
        wrapper.chmod(0o755)
    return into


def measure(config: Path, package: Path, tools_log: Path) -> Dict[str, float]:
    """Run voice-retrain (from ``package``) in a child process: wall time, peak RSS (MiB) of the
    Python process and of the largest KenLM program it ran (logged to ``tools_log`` by the
    wrappers), and the peak of the whole run (the largest of all)."""
    env = dict(os.environ, PYTHONPATH=str(package))
    tools_log.write_text("", encoding="utf-8")
    with tempfile.NamedTemporaryFile(suffix=".json") as result:
        started = time.monotonic()
        subprocess.run([sys.executable, "-c", CHILD, str(config), result.name], env=env, check=True)
        seconds = time.monotonic() - started
        data = json.loads(Path(result.name).read_text(encoding="utf-8"))
    if data["rc"] != 0:
        raise SystemExit("voice-retrain failed (exit {}) for {}:\n{}".format(data["rc"], config, data["stderr"]))
    logged = [int(line) for line in tools_log.read_text(encoding="utf-8").split() if line.isdigit()]
    if len(logged) != 3:
        raise SystemExit("expected lmplz, filter and build_binary in {}, got {}".format(tools_log, logged))
    python, tools = data["python_kib"] / 1024.0, max(logged) / 1024.0
    return {"seconds": seconds, "python_mib": python, "tools_mib": tools,
            "peak_mib": max(python, tools, data["tools_kib"] / 1024.0)}


def baseline_package(rev: str, into: Path) -> str:
    """Extract python/voice-appliance/voice_appliance as of ``rev`` into ``into``; its short hash."""
    short = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", rev + "^{commit}"], check=True,
                           stdout=subprocess.PIPE, universal_newlines=True).stdout.strip()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", short,
                              PACKAGE + "/voice_appliance"], check=True, stdout=subprocess.PIPE).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(str(into), **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    return short


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cache = Path(os.environ.get("PI_VOICE_CACHE", Path.home() / ".cache" / "pi-voice"))
    default_bin = next(iter(sorted(cache.glob("kenlm-*/bin"))), None)
    parser.add_argument("--kenlm-bin", type=Path, default=default_bin, help="directory with lmplz, filter, build_binary")
    parser.add_argument("--sizes", default="100,1000,10000,100000")
    parser.add_argument("--baseline", metavar="REV", help="also run the package of this git revision (-S 64M)")
    parser.add_argument("--no-upstream", action="store_true", help="skip the -S 85%% runs")
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs of each variant per size, interleaved; the median wall time and the largest peaks count")
    parser.add_argument("--kinds", default="literal,templated",
                        help="literal: n distinct sentence lines; templated: one line of two number ranges")
    args = parser.parse_args()
    if not args.kenlm_bin or not (args.kenlm_bin / "lmplz").exists():
        raise SystemExit("no KenLM binaries: run pytest python/voice-appliance/tests once (it builds them), or pass --kenlm-bin")
    rows = []
    with tempfile.TemporaryDirectory() as base_dir:
        packages = {"project": REPO / PACKAGE, "upstream": REPO / PACKAGE}
        baseline_rev: Optional[str] = None
        if args.baseline:
            baseline_rev = baseline_package(args.baseline, Path(base_dir))
            packages["baseline"] = Path(base_dir) / PACKAGE
        runs = [("project", "64M")] + ([("baseline", "64M")] if args.baseline else []) + (
            [] if args.no_upstream else [("upstream", "85%")])
        cases = [(kind, int(s)) for kind in args.kinds.split(",") for s in args.sizes.split(",")]
        for kind, n in cases:
            with tempfile.TemporaryDirectory() as tmp:
                work = Path(tmp)
                tools_log = work / "tools.log"
                wrappers = tool_wrappers(args.kenlm_bin, work / "bin", tools_log)
                text = templated(n) if kind == "templated" else "[Bench]\n" + "\n".join(corpus(n)) + "\n"
                (work / "sentences.ini").write_text(text, encoding="utf-8")
                result: Dict[str, Any] = {"n": n, "kind": kind}
                measured: Dict[str, List[Dict[str, float]]] = {label: [] for label, _ in runs}
                for _ in range(args.repeat):  # interleaved: each repetition runs every variant once
                    for label, memory in runs:
                        config = work / (label + ".json")
                        config.write_text(json.dumps({
                            "sentences": [str(work / "sentences.ini")], "alphabet": str(FIXTURE / "alphabet.txt"),
                            "model": str(FIXTURE / "output_graph.tflite"),
                            "output_scorer": str(work / (label + ".scorer")),
                            "kenlm_bin_dir": str(wrappers), "memory": memory, "verify": False,
                            "add_verify_transcript": False, "max_sentences": 200000}))
                        for left in work.glob("*{}.scorer*".format(label)):  # a fresh build each time, not
                            left.unlink()                                   # "up to date" from the last run
                        measured[label].append(measure(config, packages[label], tools_log))
                for label, values in measured.items():  # median wall time, largest peaks
                    result[label] = {key: (statistics.median(v[key] for v in values) if key == "seconds"
                                           else max(v[key] for v in values)) for key in values[0]}
                rows.append(result)
                print("{} n={} done".format(kind, n), file=sys.stderr)
    print("# Scorer retraining benchmark (voice-retrain, no verification decode)\n")
    print("Machine: {} {}, {} CPUs, Python {}; {}. Each variant ran {} time(s) per size, interleaved: median wall "
          "time, largest peak.".format(platform.system(), platform.machine(), os.cpu_count(),
                                       platform.python_version(), time.strftime("%Y-%m-%d"), args.repeat))
    print("Peak RSS is the larger of the voice-retrain process itself (Python: expansion, corpus, packaging) and "
          "the largest program it ran (lmplz, filter, build_binary; each measured by a wrapper, {}); wall time "
          "includes starting Python and the wrappers.\n".format(
              "GNU time" if Path("/usr/bin/time").exists() else "a small Python parent"))
    head = "| sentences | streaming (-S 64M): wall s | peak MiB | Python MiB | KenLM MiB |"
    rule = "| ---: | ---: | ---: | ---: | ---: |"
    if baseline_rev:
        head += " {0} (graph): wall s | peak MiB | Python MiB | peak {0} / streaming |".format(baseline_rev)
        rule += " ---: | ---: | ---: | ---: |"
    if not args.no_upstream:
        head += " upstream (-S 85%): wall s | peak MiB |"
        rule += " ---: | ---: |"
    for kind in args.kinds.split(","):
        print("{} sentences.ini ({}):\n".format(kind.capitalize(), {
            "literal": "one distinct sentence per line, a few thousand made-up words",
            "templated": "`stelle (0..N/100-1){a} auf (0..99){b}`"}[kind]))
        table(head, rule, [r for r in rows if r["kind"] == kind], baseline_rev, args.no_upstream)
        print()
    return 0


def table(head: str, rule: str, rows: List[Dict[str, Any]], baseline_rev: Optional[str], no_upstream: bool) -> None:
    print(head)
    print(rule)
    for r in rows:
        p = r["project"]
        line = "| {} | {:.2f} | {:.0f} | {:.0f} | {:.0f} |".format(r["n"], p["seconds"], p["peak_mib"], p["python_mib"],
                                                                 p["tools_mib"])
        if baseline_rev:
            b = r["baseline"]
            line += " {:.2f} | {:.0f} | {:.0f} | {:.2f} |".format(b["seconds"], b["peak_mib"], b["python_mib"],
                                                                b["peak_mib"] / p["peak_mib"])
        if not no_upstream:
            u = r["upstream"]
            line += " {:.2f} | {:.0f} |".format(u["seconds"], u["peak_mib"])
        print(line)


if __name__ == "__main__":
    sys.exit(main())
