#!/usr/bin/env python3
"""Benchmark: scorer retraining (voice-retrain, sentences.ini -> generated scorer) by corpus size.

For 100, 1k, 10k and 100k sentences, runs the real pipeline (rhasspy-nlu expansion, lmplz,
filter, build_binary, the project's packager, atomic install; the verification decode is off so
that only the retrain itself is timed) twice: with the project's fixed lmplz/build_binary memory
budget (-S 64M) and with upstream generate_lm.py's setting (-S 85% of RAM). Each run is its own
process, so its peak RSS (the largest of the process and every program it ran) is its own.

    .venv/bin/python bench/retrain_bench.py [--kenlm-bin DIR] [--sizes 100,1000] > bench/retrain.md

Needs KenLM binaries (python/voice-appliance/tests/kenlm_build.py builds them into the cache) and
the fixture model's alphabet. Writes a Markdown table to stdout.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

REPO = Path(__file__).resolve().parent.parent
FIXTURE = REPO / "files" / "fixture"
SYLLABLES = ["ba", "be", "da", "de", "ka", "ko", "la", "le", "ma", "mi", "na", "no", "ra", "ri",
             "sa", "sch", "ta", "tu", "wa", "we", "zu", "ei", "au", "ä", "ö", "ü", "ch", "st"]


def corpus(n: int, seed: int = 74) -> List[str]:
    """n distinct command-like sentences over a few thousand made-up German-spelled words."""
    rng = random.Random(seed)
    words = sorted({"".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 4))) for _ in range(4000)})
    sentences = set()
    while len(sentences) < n:
        sentences.add(" ".join(rng.choice(words) for _ in range(rng.randint(3, 7))))
    return sorted(sentences)


def measure(config: Path) -> Dict[str, float]:
    """Run voice-retrain in a child process; its wall time and peak RSS (MiB, any descendant)."""
    code = ("import resource, subprocess, sys, time; t = time.monotonic(); "
            "rc = subprocess.call([sys.executable, '-m', 'voice_appliance.retrain', '--config', sys.argv[1]], "
            "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
            "print(rc, time.monotonic() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    env = dict(os.environ, PYTHONPATH=str(REPO / "python" / "voice-appliance"))
    out = subprocess.run([sys.executable, "-c", code, str(config)], env=env, check=True,
                         stdout=subprocess.PIPE, universal_newlines=True).stdout.split()
    if out[0] != "0":
        raise SystemExit("voice-retrain failed (exit {}) for {}".format(out[0], config))
    return {"seconds": float(out[1]), "peak_mib": int(out[2]) / 1024.0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cache = Path(os.environ.get("PI_VOICE_CACHE", Path.home() / ".cache" / "pi-voice"))
    default_bin = next(iter(sorted(cache.glob("kenlm-*/bin"))), None)
    parser.add_argument("--kenlm-bin", type=Path, default=default_bin, help="directory with lmplz, filter, build_binary")
    parser.add_argument("--sizes", default="100,1000,10000,100000")
    args = parser.parse_args()
    if not args.kenlm_bin or not (args.kenlm_bin / "lmplz").exists():
        raise SystemExit("no KenLM binaries: run pytest python/voice-appliance/tests once (it builds them), or pass --kenlm-bin")
    rows = []
    for n in [int(s) for s in args.sizes.split(",")]:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            (work / "sentences.ini").write_text("[Bench]\n" + "\n".join(corpus(n)) + "\n", encoding="utf-8")
            result = {"n": n}
            for label, memory in (("project", "64M"), ("upstream", "85%")):
                config = work / (label + ".json")
                config.write_text(json.dumps({
                    "sentences": [str(work / "sentences.ini")], "alphabet": str(FIXTURE / "alphabet.txt"),
                    "model": str(FIXTURE / "output_graph.tflite"), "output_scorer": str(work / (label + ".scorer")),
                    "kenlm_bin_dir": str(args.kenlm_bin), "memory": memory, "verify": False,
                    "add_verify_transcript": False, "max_sentences": 200000}))
                result[label] = measure(config)
            rows.append(result)
            print("n={} done".format(n), file=sys.stderr)
    print("# Scorer retraining benchmark (voice-retrain, no verification decode)\n")
    print("Machine: {} {}, {} CPUs, Python {}; {}.".format(platform.system(), platform.machine(), os.cpu_count(),
                                                           platform.python_version(), time.strftime("%Y-%m-%d")))
    print("Peak RSS is the largest of voice-retrain and the programs it ran (lmplz, filter, build_binary).\n")
    print("| sentences | project (-S 64M): wall s | peak MiB | upstream (-S 85%): wall s | peak MiB |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print("| {n} | {p[seconds]:.2f} | {p[peak_mib]:.0f} | {u[seconds]:.2f} | {u[peak_mib]:.0f} |".format(
            n=r["n"], p=r["project"], u=r["upstream"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
