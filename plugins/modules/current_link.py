#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Prove a version, point a directory's ``current`` link at it and prune what is kept no longer, in one call.

deepspeech_tools keeps each tools version in its own directory (``ARCH-INPUTSHASH``) beside the tarball it
was unpacked from. First the version proves itself on the Pi: each ``proof`` command runs in its directory, on
every call (on a converged Pi it is the check that the installed version still runs); a failing one stops the
call before anything changes. Then ``current`` is switched to it atomically (a new link renamed over the old one,
the directory fsynced: a reader sees the old or the new version, never none). Then the versions beyond the ones
kept are removed: the current one stays, and of the others the newest ``keep`` by modification time (the install
dates them: the tarball is unpacked with ``--touch``). Of the archives (``archive_suffix``) only ``keep_files``
stay; every kept directory is complete, so its archive is no longer needed. Hidden entries (a name starting with
a dot) are never touched. Check mode predicts (and still proves a version that is there: a proof only reads).
The logic is plain stdlib (importable and testable without Ansible).
"""
from __future__ import annotations

import os
import shutil
from typing import Any, Dict, List, Sequence

from ansible_collections.pivoice.voice_appliance.plugins.module_utils.commands import run_command
from ansible_collections.pivoice.voice_appliance.plugins.module_utils.durable import (VersionError, read_link, set_link,
                                                                                   version_dir)

DOCUMENTATION = r"""
---
module: current_link
short_description: Prove a version, switch a directory's current link to it and prune older versions and archives.
description:
  - Runs the O(proof) commands in the directory of O(version), then points O(path)/current at O(version)
    atomically, then removes the version directories beyond the newest O(keep) others and every archive except
    O(keep_files).
  - The proof runs on every call, also when C(current) already points at O(version) (on a converged Pi it is the
    check that the installed version still runs; it never counts as a change). A proof that fails (a non-zero
    exit, a program that cannot start, or one killed after O(proof_timeout)) fails the call before anything
    changed, with a message naming the command, its exit code and the end of its output.
  - In check mode the proof runs too when the version's directory exists (a proof only reads); when it does not
    (an earlier task would unpack it) the proof is skipped, the reason is returned in RV(proof_skipped) and the
    switch and the pruning are predicted.
  - Entries whose name starts with a dot are never touched.
options:
  path:
    description: The directory that holds the versions, their archives and the link C(current).
    type: path
    required: true
  version:
    description: The version C(current) points at (the name of a directory in O(path)).
    type: str
    required: true
  keep:
    description: How many other versions are kept besides O(version), the newest by modification time (0 keeps none).
    type: int
    default: 1
  archive_suffix:
    description: Files in O(path) whose name ends with this are archives; all but O(keep_files) are removed.
    type: str
    default: .tar.gz
  keep_files:
    description: The archives kept (names in O(path)).
    type: list
    elements: str
    default: []
  proof:
    description:
      - Commands (argv lists, no shell) that must succeed before the switch, run in turn with the version's
        directory as their working directory.
      - A relative first element names a program inside the version's directory (C(bin/smoke-test) is
        O(path)/O(version)/bin/smoke-test; it may not climb out with C(..)); an absolute one is run as it is (a
        program from C(PATH) is given by its absolute path).
      - An empty list proves nothing (the switch alone).
    type: list
    elements: list
    default: []
  proof_timeout:
    description: Seconds each proof command may run; it is then killed with every process it started, and fails.
    type: float
    default: 300
author: voice appliance team
"""

EXAMPLES = r"""
- name: Prove the tools version, switch current to it and prune.
  pivoice.voice_appliance.current_link:
    path: /opt/voice-appliance/tools
    version: aarch64-0123456789ab
    keep: 1
    keep_files: [deepspeech-tools-aarch64-0123456789ab.tar.gz]
    proof: [[bin/smoke-test]]
"""

RETURN = r"""
current:
  description: Where C(current) points afterwards.
  type: str
before:
  description: Where C(current) pointed before ("" when there was no link).
  type: str
removed:
  description: The versions and archives removed (names).
  type: list
  elements: str
proof:
  description:
    - One entry per proof command that ran, in order - C(argv) as given, C(rc) (127 when it could not start, -9
      when it was killed after its timeout), C(seconds) and C(output), the end of its standard output and error
      (at most 400 characters).
    - On a failure the entries so far, the failed one last.
  type: list
  elements: dict
proof_skipped:
  description: Why the proof did not run (check mode, the version's directory does not exist yet); "" when it ran.
  type: str
"""

LINK = "current"
PROOF_TIMEOUT = 300.0  # the argument spec's default: seconds a proof command may run
_RETURNED_TAIL = 400  # characters of a proof's output returned per command (-v shows them)
_MESSAGE_TAIL = 2000  # characters of a failed proof's output in the failure message


class CurrentLinkError(Exception):
    """A request that cannot be followed; the message names the value and the fix."""


class ProofError(CurrentLinkError):
    """A proof command failed; nothing was changed. ``results``: the proof's entries so far, the failed one last."""

    def __init__(self, message: str, results: List[Dict[str, Any]]) -> None:
        super().__init__(message)
        self.results = results


def proof_commands(directory: str, proof: Sequence[Sequence[Any]]) -> List[List[str]]:
    """The proof's commands as they run: a relative program is taken inside the version's ``directory``. Refuses
    (before anything runs) an empty command, an argument that is not a string or number, and a relative program
    that climbs out of the directory."""
    commands = []
    for argv in proof:
        if isinstance(argv, (str, bytes)) or not argv or not all(
                isinstance(arg, (str, int, float)) and not isinstance(arg, bool) for arg in argv):
            raise CurrentLinkError("proof: every command must be a non-empty list of strings (an argv, no shell), such "
                                   "as [bin/smoke-test]; got {!r}".format(argv))
        command = [str(arg) for arg in argv]
        if not os.path.isabs(command[0]):
            program = os.path.normpath(os.path.join(directory, command[0]))
            if not program.startswith(os.path.normpath(directory) + os.sep):
                raise CurrentLinkError("proof: the relative program {!r} must name a file inside the version's "
                                       "directory {} (give a program elsewhere by its absolute path)".format(
                                           command[0], directory))
            command[0] = program
        commands.append(command)
    return commands


def prove(path: str, version: str, proof: Sequence[Sequence[Any]], timeout: float = PROOF_TIMEOUT,
          before: str = "") -> List[Dict[str, Any]]:
    """Every proof command in turn in the version's directory; the first that fails raises ProofError naming it,
    its exit code and the end of its output (``before``, where ``current`` still points, goes into the message)."""
    directory = os.path.join(path, version)
    results: List[Dict[str, Any]] = []
    for argv, command in zip(proof, proof_commands(directory, proof)):
        done = run_command(command, timeout, cwd=directory, merge_output=True)
        output = done["stdout"].strip()
        results.append({"argv": [str(arg) for arg in argv], "rc": done["rc"], "seconds": done["seconds"],
                        "output": output[-_RETURNED_TAIL:]})
        if done["failure"]:
            raise ProofError("the proof {} of {} {} (exit code {}); nothing was changed: current {}, no version or "
                             "archive was removed. Its output ends: {}".format(
                                 " ".join(command), version, done["failure"], done["rc"],
                                 "still points at " + before if before else "was not made",
                                 output[-_MESSAGE_TAIL:] or "(none)"), results)
    return results


def plan(path: str, version: str, keep: int = 1, archive_suffix: str = ".tar.gz",
         keep_files: Sequence[str] = (), predict: bool = False) -> Dict[str, Any]:
    """What the call does: the link before and after and what is removed. Changes nothing. With ``predict``
    (check mode) a version an earlier task would have unpacked may be missing still."""
    version_dir(path, version, links=(LINK,), predict=predict)
    if keep < 0:
        raise CurrentLinkError("keep must be 0 or more; got {}".format(keep))
    versions, archives = [], []
    for entry in (os.scandir(path) if os.path.isdir(path) or not predict else ()):
        if entry.name.startswith(".") or entry.name in (LINK, version):
            continue
        if entry.is_dir(follow_symlinks=False):
            versions.append(entry)
        elif archive_suffix and entry.name.endswith(archive_suffix) and entry.name not in keep_files:
            archives.append(entry.name)
    versions.sort(key=lambda entry: entry.stat(follow_symlinks=False).st_mtime, reverse=True)
    removed: List[str] = sorted(entry.name for entry in versions[keep:]) + sorted(archives)
    before = read_link(path, LINK)
    return {"before": before, "current": version, "removed": removed, "changed": before != version or bool(removed)}


def apply(path: str, result: Dict[str, Any]) -> None:
    """The link first (the proved version is in use before anything is removed), then the pruning."""
    set_link(path, LINK, result["current"])
    for name in result["removed"]:
        target = os.path.join(path, name)
        if os.path.isdir(target) and not os.path.islink(target):
            shutil.rmtree(target)
        else:
            os.unlink(target)


def converge(path: str, version: str, keep: int = 1, archive_suffix: str = ".tar.gz", keep_files: Sequence[str] = (),
             check: bool = False, proof: Sequence[Sequence[Any]] = (),
             proof_timeout: float = PROOF_TIMEOUT) -> Dict[str, Any]:
    """Plan, prove, and unless ``check``, carry the plan out: the module's whole work, returned as its result.
    The proof runs on every call (a converged link included) and before anything changes; in check mode it is
    skipped only when the version's directory does not exist yet. A malformed proof is refused in a dry run too."""
    result = plan(path, version, keep, archive_suffix, keep_files, predict=check)
    if proof and proof_timeout <= 0:
        raise CurrentLinkError("proof_timeout must be more than 0 seconds; got {:g}".format(proof_timeout))
    directory = os.path.join(path, version)
    proof_commands(directory, proof)
    result["proof"], result["proof_skipped"] = [], ""
    if proof and check and not os.path.lexists(directory):
        result["proof_skipped"] = "check mode: {} does not exist yet (an earlier task would make it)".format(directory)
    elif proof:
        result["proof"] = prove(path, version, proof, proof_timeout, before=result["before"])
    if result["changed"] and not check:
        apply(path, result)
    return result


def main() -> None:  # pragma: no cover - exercised through Ansible in molecule and tests/test_current_link.py
    from ansible.module_utils.basic import AnsibleModule

    module = AnsibleModule(
        argument_spec={"path": {"type": "path", "required": True}, "version": {"type": "str", "required": True},
                       "keep": {"type": "int", "default": 1}, "archive_suffix": {"type": "str", "default": ".tar.gz"},
                       "keep_files": {"type": "list", "elements": "str", "default": []},
                       "proof": {"type": "list", "elements": "list", "default": []},
                       "proof_timeout": {"type": "float", "default": PROOF_TIMEOUT}},
        supports_check_mode=True)
    params = module.params
    try:
        module.exit_json(**converge(params["path"], params["version"], params["keep"], params["archive_suffix"],
                                    params["keep_files"], check=module.check_mode, proof=params["proof"],
                                    proof_timeout=params["proof_timeout"]))
    except ProofError as error:
        module.fail_json(msg=str(error), proof=error.results)
    except (CurrentLinkError, VersionError, OSError) as error:
        module.fail_json(msg=str(error))


if __name__ == "__main__":
    main()
