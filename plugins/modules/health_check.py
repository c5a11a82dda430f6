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

Before all that, it puts in place the directories and files the checks need (the test WAV), as paths_state does and with
its code (module_utils/paths.py) and its action plugin (action/health_check.py subclasses it): the controller sends
each ``src`` by its sum, a file the Pi lacks is named in ``transfer`` and sent, then the module runs again with it
``staged``. The checks run only once every file is in place: not on the run that names a file to send (the second
run checks), and in check mode only when no file would be created or rewritten. A converged Pi costs one module run
for the WAV and the checks together. Changes to the paths are reported as changed; the checks change nothing.
"""
from __future__ import annotations

import json
import os
from typing import Any, Callable, Dict, Mapping, Optional, Sequence

from ansible_collections.pivoice.voice_appliance.plugins.module_utils.commands import run_command
from ansible_collections.pivoice.voice_appliance.plugins.module_utils.paths import ARGUMENT_SPEC as PATHS_SPEC
from ansible_collections.pivoice.voice_appliance.plugins.module_utils.paths import PathsError, ensure, in_place

DOCUMENTATION = r"""
---
module: health_check
short_description: Put the test WAV in place, transcribe it along each path and read what the Pi decodes with, in one call.
description:
  - First puts the directories of O(directories) and the files of O(files) in place, as
    M(pivoice.voice_appliance.paths_state) does (its code and, on the controller, its action plugin). Their changes
    are the task's changes (C(changed), C(changes)).
  - The checks run only once every file is in place. A file from the controller that the Pi lacks is sent by the
    action plugin, which runs the module again with it; only that second run checks. In check mode the checks are
    skipped when a file would be created or rewritten (C(checks_skipped) says why), else they run.
  - Runs each check's command in turn (never two at once) and returns its exit code, standard output, standard
    error and wall time under the check's path name. A command that cannot be started, or that runs longer than its
    timeout (it is then killed), is reported with an exit code of 127 or -9 and a message on standard error.
  - Then reads where the model directory (normally the C(current) link) points, the C(.verified) marker in it, and
    the sha256 and modification time of the scorer.
  - The checks and the reading change nothing on the Pi; they also run in check mode.
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
extends_documentation_fragment:
  - pivoice.voice_appliance.paths_first
author: voice appliance team
"""

EXAMPLES = r"""
- name: Copy the test WAV to the Pi unless it has it, transcribe it with the command line and read what the Pi decodes with.
  pivoice.voice_appliance.health_check:
    directories:
      - {path: /var/lib/voice-appliance/verify, owner: root, group: root, mode: "0755"}
    files:
      - {src: /home/me/voice/das_ist_ein_test.wav, dest: /var/lib/voice-appliance/verify/das_ist_ein_test.wav,
         owner: root, group: root, mode: "0644"}
    checks:
      - path: cli
        argv: [/opt/voice-appliance/venv/bin/deepspeech, --model, /var/lib/voice-appliance/models/current/output_graph.tflite,
               --audio, /var/lib/voice-appliance/verify/das_ist_ein_test.wav]
    model_dir: /var/lib/voice-appliance/models/current
    scorer: /var/lib/voice-appliance/scorer/generated.scorer
"""

RETURN = r"""
changes:
  description: Per changed path of O(directories) and O(files), what changed (as M(pivoice.voice_appliance.paths_state) says).
  type: dict
  returned: always
files:
  description: The destinations of O(files).
  type: list
  returned: always
transfer:
  description: The files the Pi lacks, which the action plugin sends (in the task's result empty, but in check mode).
  type: list
  returned: always
checks:
  description: Per path, C(rc), C(stdout), C(stderr), C(seconds) (wall time) and C(cmd); empty when the checks were skipped.
  type: dict
  returned: always
checks_skipped:
  description: Why the checks did not run (a file not yet in place).
  type: str
  returned: when the checks were skipped
model_id:
  description: The name of the version directory (the link's target, or the directory's own name).
  type: str
  returned: when the checks ran, and in check mode
model_sums:
  description: The marker's sums per file kind; empty when there is no readable marker (see C(model_sums_error)).
  type: dict
  returned: when the checks ran, and in check mode
scorer:
  description: C(exists), C(sha256) and C(mtime) of the scorer.
  type: dict
  returned: when the checks ran, and in check mode
"""

_TAIL = 20000  # characters of output kept per stream (a failing decoder can print a lot)
TIMEOUT = 600  # seconds a check may run when it names no timeout (the option's default, as DOCUMENTATION says)


def run_check(argv: Sequence[str], env: Optional[Mapping[str, str]] = None, timeout: float = TIMEOUT) -> Dict[str, Any]:
    """One check: the command's exit code, its output (the last _TAIL characters of each stream) and its wall time.
    One that cannot start gets 127; one that outlives its timeout is killed with what it started and gets -9."""
    done = run_command(argv, timeout, env=env)
    return {"cmd": list(argv), "rc": done["rc"], "seconds": done["seconds"],
            "stdout": done["stdout"][-_TAIL:], "stderr": done["stderr"][-_TAIL:]}


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


def run(params: Mapping[str, Any], check: bool, want_diff: bool, sha256: Callable[[str], str]) -> Dict[str, Any]:
    """The module's whole work: the paths put in place (or, ``check``, predicted), then, once every file is in place,
    the checks and what they decoded with. Without the checks (a file still to send) what the Pi decodes with is read
    only in check mode: otherwise the action plugin's second run reads it. PathsError, OSError or ValueError for a
    request that cannot be carried out."""
    result = ensure(list(params.get("directories") or []), [], list(params.get("files") or []), dict(params.get("staged") or {}),
                    check, want_diff)
    if in_place(result, check):
        result.update(health_check(params.get("checks") or [], params["model_dir"], params.get("scorer") or "", sha256),
                      changed=result["changed"])
        return result
    waiting = result["transfer"] or sorted(path for path, what in result["changes"].items()
                                           if path in result["files"] and {"created", "content"} & set(what))
    result["checks"] = {}
    result["checks_skipped"] = (
        "check mode: {} would be created or rewritten first; the checks run once the files are in place".format(", ".join(waiting))
        if check else "{} is not on the Pi yet: the action plugin sends it and runs the checks then".format(", ".join(waiting)))
    if check:
        result.update(read(params["model_dir"], params.get("scorer") or "", sha256))
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
    "directories": PATHS_SPEC["directories"],
    "files": PATHS_SPEC["files"],
    "staged": PATHS_SPEC["staged"],
}


def main() -> None:  # pragma: no cover - exercised through Ansible (tests/test_health_check.py, molecule)
    from ansible.module_utils.basic import AnsibleModule

    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        module.exit_json(**run(module.params, module.check_mode, module._diff, module.sha256))
    except (PathsError, OSError, ValueError) as error:
        module.fail_json(msg=str(error))


if __name__ == "__main__":
    main()
