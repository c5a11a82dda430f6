#!/usr/bin/env python3
"""CI's wall time per step, from the log of one `.ci/run` (writes bench/ci.md).

    python bench/ci_times.py CI.log [--commit REV] [--output bench/ci.md]

Reads the lines `make emulated` prints as each step ends ("[LANE] timed: STEP exit RC after N s",
harness/timed.sh), pytest's summary ("N passed ... in S s") and the run's total ("CI finished in N s"),
and writes one Markdown table: the steps in the order they ran in their lane, each lane's sum, and how
much of the whole run the two lanes (running side by side) took. A log without those lines is refused.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

TIMED = re.compile(r"^\[(?P<lane>[\w-]+)\] timed: (?P<step>\S+) exit (?P<rc>\d+) after (?P<seconds>\d+) s\s*$")
PYTEST = re.compile(r"^=* ?(?P<summary>\d+ passed.*) in (?P<seconds>[\d.]+)s")
TOTAL = re.compile(r"^CI finished in (?P<seconds>\d+) s\s*$")


def _minutes(seconds: float) -> str:
    return "{:.0f} s ({}:{:02d})".format(seconds, int(seconds) // 60, int(seconds) % 60)


def parse(text: str) -> Tuple[Dict[str, List[Tuple[str, int, int]]], Optional[Tuple[str, float]], Optional[int]]:
    lanes: Dict[str, List[Tuple[str, int, int]]] = {}
    pytest: Optional[Tuple[str, float]] = None
    total: Optional[int] = None
    for line in text.splitlines():
        line = re.sub(r"\x1b\[[0-9;]*m", "", line)
        timed = TIMED.match(line)
        if timed:
            lanes.setdefault(timed["lane"], []).append((timed["step"], int(timed["rc"]), int(timed["seconds"])))
            continue
        found = PYTEST.match(line)
        if found and pytest is None:
            pytest = (found["summary"].rstrip(" ="), float(found["seconds"]))
        ended = TOTAL.match(line)
        if ended:
            total = int(ended["seconds"])
    return lanes, pytest, total


def render(lanes: Dict[str, List[Tuple[str, int, int]]], pytest: Optional[Tuple[str, float]], total: Optional[int],
           log: str, commit: str) -> str:
    rows = ["| lane | step | result | wall time |", "| --- | --- | --- | ---: |"]
    if pytest:
        rows.append("| (before the lanes) | pytest | {} | {} |".format(pytest[0], _minutes(pytest[1])))
    for lane, steps in lanes.items():
        for step, rc, seconds in steps:
            rows.append("| {} | {} | {} | {} |".format(lane, step, "passed" if rc == 0 else "exit {}".format(rc), _minutes(seconds)))
        rows.append("| {} | **lane total** | | **{}** |".format(lane, _minutes(sum(s for _, _, s in steps))))
    longest = max((sum(s for _, _, s in steps) for steps in lanes.values()), default=0)
    lines = ["# CI wall time per step", "",
             "From the log of one `.ci/run` on a clean clone{}: `python bench/ci_times.py {}`.".format(
                 " of " + commit if commit else "", log), "",
             "The two lanes of `make emulated` run side by side (the ARM Pis under qemu beside the amd64 ones), after",
             "setup, lint, syntax and pytest; the longer lane decides the run's length.", ""] + rows + [""]
    if total:
        lines.append("Whole run: **{}**; the longer lane {} of it ({:.0f} %); setup, lint, syntax and pytest most of the rest."
                     .format(_minutes(total), _minutes(longest), 100.0 * longest / total))
        lines.append("")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log", type=Path)
    parser.add_argument("--commit", default="")
    parser.add_argument("--output", type=Path, default=Path(__file__).resolve().parent / "ci.md")
    args = parser.parse_args(argv)
    lanes, pytest, total = parse(args.log.read_text(encoding="utf-8", errors="replace"))
    if not lanes:
        print("{}: no 'timed: STEP exit RC after N s' lines; is it the log of .ci/run with harness/timed.sh?".format(args.log),
              file=sys.stderr)
        return 2
    args.output.write_text(render(lanes, pytest, total, str(args.log), args.commit), encoding="utf-8")
    print("wrote {}".format(args.output))
    return 0


if __name__ == "__main__":
    sys.exit(main())
