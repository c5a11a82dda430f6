"""bench/ci_times.py: CI's wall time per step from a .ci/run log (the lines harness/timed.sh prints)."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("ci_times", str(REPO / "bench" / "ci_times.py"))
assert _spec is not None and _spec.loader is not None
ci_times: Any = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ci_times)

LOG = """\
[harness] ready
==================== 1069 passed, 11 warnings in 272.28s (0:04:32) ====================
[arm] \x1b[32m== 58 passed in 100.00s ==\x1b[0m
[amd64] timed: molecule-default exit 0 after 552 s
[arm] timed: demo-ci exit 0 after 700 s
[amd64] timed: molecule-pull exit 0 after 430 s
[arm] timed: molecule-armhf exit 2 after 1600 s
CI finished in 2900 s
"""


def test_the_steps_their_lanes_pytest_and_the_total_are_read(tmp_path: Path) -> None:
    lanes, pytest, total = ci_times.parse(LOG)
    assert lanes == {"amd64": [("molecule-default", 0, 552), ("molecule-pull", 0, 430)],
                     "arm": [("demo-ci", 0, 700), ("molecule-armhf", 2, 1600)]}
    assert pytest == ("1069 passed, 11 warnings", 272.28) and total == 2900
    log = tmp_path / "ci.log"
    log.write_text(LOG)
    assert ci_times.main([str(log), "--commit", "abc1234", "--output", str(tmp_path / "ci.md")]) == 0
    text = (tmp_path / "ci.md").read_text()
    assert "| arm | molecule-armhf | exit 2 | 1600 s (26:40) |" in text
    assert "| arm | **lane total** | | **2300 s (38:20)** |" in text
    assert "Whole run: **2900 s (48:20)**; the longer lane 2300 s (38:20) of it (79 %)" in text


def test_a_log_without_timed_lines_is_refused(tmp_path: Path, capsys: Any) -> None:
    log = tmp_path / "old.log"
    log.write_text("[amd64] molecule test -s default\nCI finished in 10 s\n")
    assert ci_times.main([str(log), "--output", str(tmp_path / "ci.md")]) == 2
    assert "no 'timed: STEP" in capsys.readouterr().err and not (tmp_path / "ci.md").exists()
