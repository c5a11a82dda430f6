"""module_utils/commands.run_command: the one way health_check's checks and current_link's proofs run a command."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import List

import pytest

from ansible_collections.pivoice.voice_appliance.plugins.module_utils.commands import CANNOT_START, KILLED, run_command


def _py(code: str) -> List[str]:
    return [sys.executable, "-c", code]


def test_exit_code_output_and_time_are_returned_and_a_zero_exit_is_no_failure() -> None:
    done = run_command(_py("import sys; print('out'); sys.stderr.write('err')"), 30)
    assert (done["rc"], done["failure"], done["stdout"], done["stderr"]) == (0, "", "out\n", "err")
    assert 0 < done["seconds"] < 30


def test_a_non_zero_exit_is_a_failure_and_merged_output_keeps_the_order(tmp_path: Path) -> None:
    done = run_command(_py("import os, sys; print('one', flush=True); sys.stderr.write('two\\n'); sys.stderr.flush(); "
                           "print(os.getcwd(), os.environ['VOICE_TEST'], flush=True); sys.exit(3)"),
                       30, cwd=str(tmp_path), env={"VOICE_TEST": "given"}, merge_output=True)
    assert (done["rc"], done["failure"], done["stderr"]) == (3, "failed", "")
    assert done["stdout"] == "one\ntwo\n{} given\n".format(tmp_path)
    assert "VOICE_TEST" not in os.environ, "the environment is the command's, not this process's"


@pytest.mark.parametrize("merge_output", [False, True])
def test_a_command_that_cannot_start_is_reported_not_raised(tmp_path: Path, merge_output: bool) -> None:
    done = run_command([str(tmp_path / "missing"), "--flag"], 30, merge_output=merge_output)
    assert (done["rc"], done["failure"]) == (CANNOT_START, "could not start")
    said = "cannot run {}: No such file or directory".format(tmp_path / "missing")
    assert (done["stdout"], done["stderr"]) == ((said, "") if merge_output else ("", said))


def test_a_command_killed_by_a_signal_says_which() -> None:
    done = run_command(_py("import os, signal; os.kill(os.getpid(), signal.SIGTERM)"), 30)
    assert (done["rc"], done["failure"]) == (-15, "was killed by signal 15")


@pytest.mark.fault
@pytest.mark.parametrize("merge_output", [False, True])
def test_a_timeout_kills_the_command_and_what_it_started_and_keeps_what_it_printed(tmp_path: Path, merge_output: bool) -> None:
    pid_file = tmp_path / "child.pid"
    script = ("echo started; sleep 60 & echo $! > {}; wait".format(pid_file))  # a shell that waits for its child
    done = run_command(["sh", "-c", script], 1, merge_output=merge_output)
    assert (done["rc"], done["failure"]) == (KILLED, "was killed after its timeout of 1 s")
    assert done["stdout"].startswith("started\n") and done["seconds"] < 20
    assert "sh was killed after its timeout of 1 s" in (done["stdout"] if merge_output else done["stderr"])
    child = Path("/proc/{}/stat".format(pid_file.read_text().strip()))
    for _ in range(50):  # killed too: gone, or a zombie its new parent has not reaped yet
        if not child.exists() or child.read_text().split(") ", 1)[1].startswith("Z"):
            break
        time.sleep(0.1)
    else:
        pytest.fail("the command's child outlived the timeout: " + child.read_text())
