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

The version arrives in the same call: its directories and its archive are put in place as paths_state does, with
its code (module_utils/paths.py) and its action plugin (action/current_link.py subclasses it; the archive is sent
only when the Pi lacks it, and then the module runs again with it ``staged``), and the archive is unpacked into
the version's directory unless its ``marker`` is there (``unpack``). A converged Pi costs one module run.
"""
from __future__ import annotations

import os
import shutil
import tarfile
from typing import Any, Dict, List, Optional, Sequence

from ansible_collections.pivoice.voice_appliance.plugins.module_utils.commands import run_command
from ansible_collections.pivoice.voice_appliance.plugins.module_utils.durable import (VersionError, fsync_dir, read_link,
                                                                                   set_link, version_dir)
from ansible_collections.pivoice.voice_appliance.plugins.module_utils.paths import ARGUMENT_SPEC as PATHS_SPEC
from ansible_collections.pivoice.voice_appliance.plugins.module_utils.paths import PathsError
from ansible_collections.pivoice.voice_appliance.plugins.module_utils.paths import ensure as ensure_paths
from ansible_collections.pivoice.voice_appliance.plugins.module_utils.paths import own_diff

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
  - First, the directories of O(directories) and the files of O(files) (the version's archive) are put in place as
    M(pivoice.voice_appliance.paths_state) does (its code and, on the controller, its action plugin); their changes
    are the task's changes too (RV(changes)). A file from the controller that the Pi lacks is sent by the action
    plugin, which runs the module again with it; only that second run unpacks, proves and switches.
  - Then, with O(unpack), the archive is unpacked into the version's directory unless the marker is there. In check
    mode an unpack is predicted (in RV(changes)) and the proof skipped.
options:
  unpack:
    description:
      - The version's archive, C(archive) (its path on the Pi, a tar file, compressed or not), unpacked into
        O(path)/O(version) unless C(marker) (a path inside it) exists. The marker is written last, so an unpack
        that was cut short is done again.
      - Only regular files and directories inside the version's directory are taken. Any other entry (a link, a
        device, an absolute name or one with C(..)) is refused by name before anything is written.
      - The entries are owned by the module's user (root), keep their modes without set-id bits and group or other
        write permission, and are dated by the unpack (the version's age, by which pruning orders versions).
    type: dict
    suboptions:
      archive:
        description: The archive on the Pi.
        type: path
        required: true
      marker:
        description: The file inside the version's directory whose presence means the version is unpacked.
        type: str
        required: true
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
extends_documentation_fragment:
  - pivoice.voice_appliance.paths_first
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
changes:
  description: >-
    Per changed path of O(directories) and O(files), what changed (as M(pivoice.voice_appliance.paths_state) says);
    the version's directory with C(unpacked) when the archive was (or would be) unpacked.
  type: dict
files:
  description: The destinations of O(files).
  type: list
transfer:
  description: The files the Pi lacks, which the action plugin sends (in the task's result empty, but in check mode).
  type: list
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


_TAKEN = "regular files and directories"


def _members(tar: "tarfile.TarFile", archive: str) -> List["tarfile.TarInfo"]:
    """The archive's entries, each checked: a regular file or a directory, named inside the version's directory."""
    members = tar.getmembers()
    for member in members:
        name = os.path.normpath(member.name)
        if os.path.isabs(member.name) or name == ".." or name.startswith("../"):
            raise CurrentLinkError("unpack: {} holds {!r}, a name outside the version's directory; nothing was unpacked. "
                                   "Rebuild the archive with names relative to its top".format(archive, member.name))
        if not (member.isreg() or member.isdir()):
            raise CurrentLinkError("unpack: {} holds {!r}, which is not a regular file or a directory (a link or a device); "
                                   "only {} are taken and nothing was unpacked. Rebuild the archive without it".format(
                                       archive, member.name, _TAKEN))
    return members


def unpack(archive: str, directory: str, marker: str, check: bool = False) -> bool:
    """Unpacks ``archive`` into ``directory`` unless ``directory``/``marker`` exists; whether it did (in check mode,
    would). Every entry is checked before any is written; the marker comes last."""
    marker_path = os.path.normpath(os.path.join(directory, marker))
    if not marker_path.startswith(os.path.normpath(directory) + os.sep):
        raise CurrentLinkError("unpack: the marker {!r} must name a file inside the version's directory {}".format(marker, directory))
    if os.path.exists(marker_path):
        return False
    if check:
        return True
    with tarfile.open(archive, "r:*") as tar:
        members = _members(tar, archive)
        os.makedirs(directory, 0o755, exist_ok=True)
        last: Optional["tarfile.TarInfo"] = None
        for member in members:
            target = os.path.normpath(os.path.join(directory, member.name))
            if target == marker_path:
                last = member
                continue
            _extract(tar, member, target)
        if last is None:
            raise CurrentLinkError("unpack: {} has no {} (the marker); it is not an archive of this kind of version".format(archive, marker))
        _extract(tar, last, marker_path)
    fsync_dir(os.path.dirname(marker_path))
    return True


def _extract(tar: "tarfile.TarFile", member: "tarfile.TarInfo", target: str) -> None:
    mode = member.mode & 0o755
    if member.isdir():
        os.makedirs(target, 0o755, exist_ok=True)
        os.chmod(target, mode | 0o700)
        return
    os.makedirs(os.path.dirname(target), 0o755, exist_ok=True)
    source = tar.extractfile(member)
    assert source is not None  # (a regular file)
    with source, open(target + ".unpacking", "wb") as handle:
        shutil.copyfileobj(source, handle, 1 << 20)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(target + ".unpacking", mode)
    os.replace(target + ".unpacking", target)


def run(params: Dict[str, Any], check: bool = False, want_diff: bool = False) -> Dict[str, Any]:
    """The module's whole work: the version's directories and archive put in place (or, ``check``, predicted),
    then, once every file is there, the unpack and ``converge``. A run that names a file to send leaves the rest to
    the second run, which leaves the sent files' diff to the first."""
    staged = dict(params.get("staged") or {})
    paths = ensure_paths(list(params.get("directories") or []), [], list(params.get("files") or []), staged, check, want_diff)
    diff = own_diff(paths, staged)
    if paths["transfer"] and not check:
        return dict(paths, work_pending=True, **diff)
    directory = os.path.join(params["path"], params["version"])
    wanted = dict(params.get("unpack") or {})
    unpacked = bool(wanted) and unpack(wanted["archive"], directory, wanted["marker"], check)
    proof = [] if (check and unpacked) else params.get("proof") or []
    result = converge(params["path"], params["version"], params["keep"], params["archive_suffix"], params["keep_files"],
                      check=check, proof=proof, proof_timeout=params["proof_timeout"])
    if check and unpacked and params.get("proof"):
        result["proof_skipped"] = "check mode: {} would be unpacked first".format(directory)
    changes = dict(paths["changes"])
    if unpacked:
        changes[directory] = list(changes.get(directory, [])) + ["unpacked"]
    return dict(result, changed=bool(result["changed"] or paths["changed"] or unpacked), changes=changes,
                files=paths["files"], transfer=paths["transfer"], **diff)


def main() -> None:  # pragma: no cover - exercised through Ansible in molecule and tests/test_current_link.py
    from ansible.module_utils.basic import AnsibleModule

    module = AnsibleModule(
        argument_spec=dict(PATHS_SPEC,
                           path={"type": "path", "required": True}, version={"type": "str", "required": True},
                           keep={"type": "int", "default": 1}, archive_suffix={"type": "str", "default": ".tar.gz"},
                           keep_files={"type": "list", "elements": "str", "default": []},
                           proof={"type": "list", "elements": "list", "default": []},
                           proof_timeout={"type": "float", "default": PROOF_TIMEOUT},
                           unpack={"type": "dict", "options": {
                               "archive": {"type": "path", "required": True}, "marker": {"type": "str", "required": True}}}),
        supports_check_mode=True)
    try:
        module.exit_json(**run(module.params, module.check_mode, module._diff))
    except ProofError as error:
        module.fail_json(msg=str(error), proof=error.results)
    except (CurrentLinkError, VersionError, PathsError, OSError, tarfile.TarError) as error:
        module.fail_json(msg=str(error))


if __name__ == "__main__":
    main()
