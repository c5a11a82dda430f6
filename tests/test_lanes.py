"""harness/lanes.sh (`make emulated`): both lanes run their steps in order, a failed step stops its lane, and the
output ends with the failed lane's failure lines and the `lanes:` line, even when the other lane finishes later.

The real script and harness/timed.sh run, copied into a scratch checkout; `make` is a stand-in (MAKE) that prints
what a molecule step prints and fails the step it is told to."""
from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Dict, List, Tuple

REPO = Path(__file__).resolve().parent.parent

# The stand-in for make: called as `make --no-print-directory STEP`. It records the step, prints the width molecule
# would wrap at, sleeps where told (the later lane), and fails the step named in FAIL_STEP the way a molecule step
# fails: Ansible's fatal line and recap, pytest's failure, molecule's error, among lines that explain nothing.
FAKE_MAKE = r"""#!/usr/bin/env bash
step=$2
echo "$step" >> "$STEPS_FILE"
echo "running $step in $COLUMNS columns"
case " $SLOW_STEPS " in *" $step "*) sleep 2 ;; esac
if [ "$step" = "$FAIL_STEP" ]; then
    echo "TASK [voice_verify : Transcribe the test WAV.] ***"
    echo 'fatal: [pi-bookworm-amd64]: FAILED! => {"msg": "the transcript was empty"}'
    echo "PLAY RECAP ***"
    echo "pi-bookworm-amd64 : ok=80 changed=0 unreachable=0 failed=1 skipped=3 rescued=0 ignored=0"
    echo "FAILED molecule/resources/tests/test_pull.py::test_pull_converges - AssertionError"
    echo "E   AssertionError: the pull timer never ran"
    echo "CRITICAL Ansible return code was 2"
    echo "ERROR    Molecule executed 1 scenario (1 failed)"
    exit 2
fi
for i in $(seq 1 30); do echo "ok: [pi] => line $i of $step"; done
"""


def _checkout(tmp_path: Path) -> Path:
    root = tmp_path / "checkout"
    (root / "harness").mkdir(parents=True)
    for name in ("lanes.sh", "timed.sh"):
        shutil.copy2(str(REPO / "harness" / name), str(root / "harness" / name))
    make = tmp_path / "make"
    make.write_text(FAKE_MAKE, encoding="utf-8")
    make.chmod(make.stat().st_mode | stat.S_IXUSR)
    return root


def _lanes(tmp_path: Path, fail_step: str = "", slow_steps: str = "") -> Tuple[int, List[str], List[str]]:
    root = _checkout(tmp_path)
    steps = tmp_path / "steps"
    env: Dict[str, str] = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    env.update(MAKE=str(tmp_path / "make"), STEPS_FILE=str(steps), FAIL_STEP=fail_step, SLOW_STEPS=slow_steps)
    done = subprocess.run(["bash", str(root / "harness" / "lanes.sh")], cwd=str(tmp_path), env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, timeout=60)
    ran = steps.read_text(encoding="utf-8").split() if steps.exists() else []
    return done.returncode, done.stdout.splitlines(), ran


def test_both_lanes_run_every_step_in_order_and_pass(tmp_path: Path) -> None:
    rc, lines, ran = _lanes(tmp_path)
    assert rc == 0, "\n".join(lines)
    assert [s for s in ran if s.startswith("molecule-arm")] == ["molecule-arm64", "molecule-armhf"]
    assert [s for s in ran if s in ("molecule-default", "molecule-pull", "molecule-fleet")] == \
        ["molecule-default", "molecule-pull", "molecule-fleet"]
    timed = [line for line in lines if " timed: " in line]
    assert len(timed) == 5 and all(" exit 0 after " in line for line in timed)
    assert all(line.startswith(("[arm] ", "[amd64] ")) for line in lines[:-1])
    assert not any("lane failed" in line for line in lines)
    assert lines[-1] == "lanes: arm exit 0, amd64 exit 0"
    # Molecule wraps at the terminal's width: the lanes give it 200 columns, not the 80 it assumes without one.
    assert "[amd64] running molecule-default in 200 columns" in lines


def test_a_failed_step_stops_its_lane_and_the_output_ends_with_why(tmp_path: Path) -> None:
    # The amd64 lane fails early; the arm lane is slow and finishes later, printing lines that explain nothing.
    rc, lines, ran = _lanes(tmp_path, fail_step="molecule-pull", slow_steps="molecule-arm64 molecule-armhf")
    assert rc == 1
    assert "molecule-fleet" not in ran  # the lane stopped at its failed step
    assert "molecule-armhf" in ran  # the other lane went on
    assert lines[-1] == "lanes: arm exit 0, amd64 exit 2"
    start = lines.index("== the amd64 lane failed; its failure lines, last ones last:")
    assert lines[start + 1:-1] == [
        '[amd64] fatal: [pi-bookworm-amd64]: FAILED! => {"msg": "the transcript was empty"}',
        "[amd64] pi-bookworm-amd64 : ok=80 changed=0 unreachable=0 failed=1 skipped=3 rescued=0 ignored=0",
        "[amd64] FAILED molecule/resources/tests/test_pull.py::test_pull_converges - AssertionError",
        "[amd64] E   AssertionError: the pull timer never ran",
        "[amd64] ERROR    Molecule executed 1 scenario (1 failed)",
        "[amd64] timed: molecule-pull exit 2 after {}".format(lines[-2].split(" after ", 1)[1]),
    ]
    # Everything the arm lane printed came before the summary: the end of a CI log names the cause.
    assert max(i for i, line in enumerate(lines) if line.startswith("[arm] ")) < start


def test_a_failure_in_the_arm_lane_is_named_as_that_lanes(tmp_path: Path) -> None:
    rc, lines, ran = _lanes(tmp_path, fail_step="molecule-arm64")
    assert rc == 1
    assert "molecule-armhf" not in ran and "molecule-fleet" in ran
    assert lines[-1] == "lanes: arm exit 2, amd64 exit 0"
    assert "== the arm lane failed; its failure lines, last ones last:" in lines
    assert "== the amd64 lane failed; its failure lines, last ones last:" not in lines
