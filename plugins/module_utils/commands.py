# -*- coding: utf-8 -*-
"""One way for the modules to run a command on the Pi and judge it afterwards (health_check's checks,
current_link's proofs): no shell, no input, its own session, a timeout that kills the command *and every process
it started* (a shell script's lmplz, a client's helper), and a result instead of an exception.

Plain stdlib, importable and testable without Ansible; runs on Python 3.9 to 3.13.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from typing import Any, Dict, Mapping, Optional, Sequence

CANNOT_START = 127  # the exit code a shell gives a command it cannot run
KILLED = -9  # the exit code of a command killed after its timeout (as subprocess reports SIGKILL)


def run_command(argv: Sequence[str], timeout: float, cwd: Optional[str] = None,
                env: Optional[Mapping[str, str]] = None, merge_output: bool = False) -> Dict[str, Any]:
    """Runs ``argv`` and returns ``rc``, ``seconds``, ``stdout``, ``stderr`` (text; with ``merge_output`` stderr is
    interleaved into stdout and ``stderr`` is "") and ``failure``: "" for exit code 0, else how it failed ("failed",
    "could not start", "was killed by signal N", "was killed after its timeout of T s"). ``env`` is added to this
    process's environment. A command that cannot start gets CANNOT_START; one that outlives ``timeout`` is killed
    with its whole session and gets KILLED, keeping what it printed until then."""
    environment = dict(os.environ)
    environment.update({str(key): str(value) for key, value in (env or {}).items()})
    command = [str(arg) for arg in argv]
    started = time.monotonic()

    def result(rc: int, failure: str, stdout: bytes, stderr: bytes) -> Dict[str, Any]:
        return {"rc": rc, "seconds": round(time.monotonic() - started, 3), "failure": failure,
                "stdout": stdout.decode("utf-8", "replace"), "stderr": stderr.decode("utf-8", "replace")}

    try:
        process = subprocess.Popen(command, cwd=cwd, env=environment, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT if merge_output else subprocess.PIPE, start_new_session=True)
    except OSError as error:
        why = "cannot run {}: {}".format(command[0] if command else "(no command)", error.strerror or error).encode()
        return result(CANNOT_START, "could not start", why if merge_output else b"", b"" if merge_output else why)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            stdout, stderr = process.communicate(timeout=10)
        except subprocess.TimeoutExpired:  # a process that left the session still holds the output open
            process.kill()
            process.wait()
            stdout, stderr = b"", b""
        note = "\n{} was killed after its timeout of {:g} s".format(command[0], timeout).encode()
        return result(KILLED, "was killed after its timeout of {:g} s".format(timeout),
                      (stdout or b"") + (note if merge_output else b""), (stderr or b"") + (b"" if merge_output else note))
    rc: int = process.returncode
    failure = "" if rc == 0 else "failed" if rc > 0 else "was killed by signal {}".format(-rc)  # the OOM killer, for one
    return result(rc, failure, stdout or b"", stderr or b"")
