#!/usr/bin/python
# -*- coding: utf-8 -*-
"""The health check's one call on the Pi: the test WAV through each path, then what the Pi decodes with.

Each check is a command (the DeepSpeech command line, voice-hermes-check, voice-wyoming-check) run in turn, never
at once, so that one path's decode does not slow another's real-time factor. Its exit code, output and wall time
are returned per path; a command that cannot start or outlives its timeout is reported the same way (an exit code
and a message), not raised: judging the result is the filter voice_verify_result's work. A check's ``env`` (the
MQTT password) goes to its command's environment only, never onto a command line, and is hidden in Ansible's output.

Then, as the module installed_state did: the model version `current` points to, the sums its `.verified` marker
names and the live scorer's sha256 and modification time (a missing or torn marker or scorer is reported, not an
error). Verification ran four modules for this before (three ``command`` tasks and installed_state, 2-4 s each
under qemu). The logic is plain stdlib (importable and testable without Ansible).
"""
from __future__ import annotations

import json
import os
import subprocess
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

DOCUMENTATION = r"""
---
module: health_check
short_description: Transcribe the test WAV along each path and read what the Pi decodes with, in one call.
description:
  - Runs each check's command in turn (never two at once) and returns its exit code, standard output, standard
    error and wall time under the check's path name. A command that cannot be started, or that runs longer than its
    timeout (it is then killed), is reported with an exit code of 127 or -9 and a message on standard error.
  - Then reads where the model directory (normally the C(current) link) points, the C(.verified) marker in it, and
    the sha256 and modification time of the scorer.
  - Changes nothing on the Pi; the checks also run in check mode.
options:
  checks:
    description: The checks, run in this order.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: The name the check's result is returned under (cli, mqtt, wyoming); names are unique.
        type: str
        required: true
      argv:
        description: The command and its arguments (no shell).
        type: list
        elements: str
        required: true
      env:
        description: Variables added to this command's environment only (a password); hidden in Ansible's output.
        type: dict
        default: {}
      timeout:
        description: Seconds after which the command is killed and the check reported as failed.
        type: float
        default: 600
  model_dir:
    description: The directory of the model the Pi decodes with (normally C(MODELS/current)).
    type: path
    required: true
  scorer:
    description: The scorer the Pi decodes with; empty when it decodes without one.
    type: path
    default: ""
author: voice appliance team
"""

EXAMPLES = r"""
- name: Transcribe the test WAV with the command line and read what the Pi decodes with.
  pivoice.voice_appliance.health_check:
    checks:
      - path: cli
        argv: [/opt/voice-appliance/venv/bin/deepspeech, --model, /var/lib/voice-appliance/models/current/output_graph.tflite,
               --audio, /var/lib/voice-appliance/verify/das_ist_ein_test.wav]
    model_dir: /var/lib/voice-appliance/models/current
    scorer: /var/lib/voice-appliance/scorer/generated.scorer
"""

RETURN = r"""
checks:
  description: Per path, C(rc), C(stdout), C(stderr), C(seconds) (wall time) and C(cmd).
  type: dict
  returned: always
model_id:
  description: The name of the version directory (the link's target, or the directory's own name).
  type: str
  returned: always
model_sums:
  description: The marker's sums per file kind; empty when there is no readable marker (see C(model_sums_error)).
  type: dict
  returned: always
scorer:
  description: C(exists), C(sha256) and C(mtime) of the scorer.
  type: dict
  returned: always
"""

_TAIL = 20000  # characters of output kept per stream (a failing decoder can print a lot)
TIMEOUT = 600  # seconds a check may run when it names no timeout (the option's default, as DOCUMENTATION says)


def run_check(argv: Sequence[str], env: Optional[Mapping[str, str]] = None, timeout: float = TIMEOUT) -> Dict[str, Any]:
    """One check: the command's exit code, its output (the last _TAIL characters of each stream) and its wall time."""
    environment = dict(os.environ)
    environment.update({str(key): str(value) for key, value in (env or {}).items()})
    started = time.monotonic()
    try:
        done = subprocess.run(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=environment, timeout=timeout, check=False)
        rc: int = done.returncode
        stdout, stderr = done.stdout, done.stderr
    except OSError as error:
        rc, stdout = 127, b""
        stderr = "cannot run {}: {}".format(argv[0] if argv else "(no command)", error.strerror or error).encode()
    except subprocess.TimeoutExpired as expired:
        rc, stdout = -9, expired.stdout or b""
        stderr = (expired.stderr or b"") + "\n{} was killed after its timeout of {} s".format(argv[0], timeout).encode()
    return {"cmd": list(argv), "rc": rc, "seconds": round(time.monotonic() - started, 3),
            "stdout": stdout.decode("utf-8", "replace")[-_TAIL:], "stderr": stderr.decode("utf-8", "replace")[-_TAIL:]}


def run_checks(checks: Sequence[Mapping[str, Any]],
               run: Callable[..., Dict[str, Any]] = run_check) -> Dict[str, Dict[str, Any]]:
    """Every check in turn, keyed by its path; ValueError for a repeated or empty path name or an empty command."""
    results: Dict[str, Dict[str, Any]] = {}
    for check in checks:
        path, argv = str(check.get("path") or ""), list(check.get("argv") or [])
        if not path or path in results:
            raise ValueError("checks: the path name {!r} is {}; give every check its own name (cli, mqtt, wyoming)"
                             .format(path, "repeated" if path else "empty"))
        if not argv:
            raise ValueError("checks: the check {!r} has no command (argv is empty)".format(path))
        results[path] = run(argv, check.get("env") or {}, float(check.get("timeout") or TIMEOUT))
    return results


def read(model_dir: str, scorer: str, sha256: Callable[[str], str]) -> Dict[str, Any]:
    """What the Pi decodes with. ``sha256`` hashes a file (the module passes AnsibleModule.sha256)."""
    model_dir = model_dir.rstrip("/") or "/"
    target = os.readlink(model_dir) if os.path.islink(model_dir) else model_dir
    result: Dict[str, Any] = {"model_id": os.path.basename(target.rstrip("/")), "model_sums": {}}
    try:
        with open(os.path.join(model_dir, ".verified"), encoding="utf-8") as handle:
            sums = json.load(handle)
        if not isinstance(sums, dict):
            raise ValueError("not a JSON object")
        result["model_sums"] = {str(kind): str(value) for kind, value in sums.items()}
    except (OSError, ValueError) as error:
        result["model_sums_error"] = "{}: {}".format(os.path.join(model_dir, ".verified"), error)
    result["scorer"] = {"exists": False, "sha256": "", "mtime": None}
    if scorer:
        try:
            mtime = os.stat(scorer).st_mtime
            result["scorer"] = {"exists": True, "sha256": sha256(scorer), "mtime": mtime}
        except OSError as error:
            result["scorer"]["error"] = "{}: {}".format(scorer, error.strerror or error)
    return result


def health_check(checks: Sequence[Mapping[str, Any]], model_dir: str, scorer: str,
                 sha256: Callable[[str], str]) -> Dict[str, Any]:
    """The module's whole work: the checks first, then what they decoded with."""
    result: Dict[str, Any] = {"changed": False, "checks": run_checks(checks)}
    result.update(read(model_dir, scorer, sha256))
    return result


ARGUMENT_SPEC: Dict[str, Any] = {
    "checks": {"type": "list", "elements": "dict", "default": [], "options": {
        "path": {"type": "str", "required": True},
        "argv": {"type": "list", "elements": "str", "required": True},
        "env": {"type": "dict", "default": {}, "no_log": True},
        "timeout": {"type": "float", "default": TIMEOUT},
    }},
    "model_dir": {"type": "path", "required": True},
    "scorer": {"type": "path", "default": ""},
}


def main() -> None:  # pragma: no cover - exercised through Ansible (tests/test_health_check.py, molecule)
    from ansible.module_utils.basic import AnsibleModule

    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params: Dict[str, Any] = module.params
    checks: List[Mapping[str, Any]] = params["checks"]
    try:
        module.exit_json(**health_check(checks, params["model_dir"], params["scorer"] or "", module.sha256))
    except ValueError as error:
        module.fail_json(msg=str(error))


if __name__ == "__main__":
    main()
