# -*- coding: utf-8 -*-
"""The controller's half of paths_state: files given by ``src`` are sent by their sum, not their bytes.

A converged Pi costs one module run for a role's directories and files together: each ``src`` (found as
ansible.builtin.copy finds it, an absolute path or the role's ``files/``) is measured here (sha256 and size,
remembered per path, size and mtime for the run, so a fleet of Pis measures each artifact once) and only
the sum goes to the Pi. The module names the files whose content the Pi lacks (``transfer``); those alone
are copied into a private temporary directory on the Pi and the module runs once more with them
``staged``; it checks their sums before it puts them in place. In check mode nothing is sent.

A ``src`` may carry the sum it must have, as ``sha256`` or as ``sha256_file``, a controller file that holds it
(the record beside a staged artifact, as sha256sum writes it): a src whose sum differs, like a missing one, and a
sum file that is missing, empty or malformed are refused here, before anything on the Pi changes, and ``fix``
(who makes the file and how) ends the message.
"""
from __future__ import annotations

import hashlib
import os
from typing import Any, Dict, List, Optional, Tuple

from ansible.errors import AnsibleError
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase
from ansible_collections.pivoice.voice_appliance.plugins.module_utils.durable import is_sha256, sha256_file

MODULE = "pivoice.voice_appliance.paths_state"

# (path, size, mtime_ns) -> sha256, for this controller process (every host of the run).
_SUMS: Dict[Tuple[str, int, int], str] = {}


def measure(path: str) -> Tuple[str, int]:
    """sha256 and size of a controller file, computed once per version of it in this process."""
    st = os.stat(path)
    key = (path, st.st_size, st.st_mtime_ns)
    if key not in _SUMS:
        _SUMS[key] = sha256_file(path)
    return _SUMS[key], st.st_size


class SumFileError(ValueError):
    """A sum file that holds no usable sum; the message names it and what it holds."""


def recorded_sum(sum_file: str, src: str) -> str:
    """The sha256 a sum file holds for ``src``: one line, the sum alone or followed by the file's name, as
    ``sha256sum FILE`` writes it (a name, if given, must be src's). Refused, naming the file: unreadable, empty, more
    than one line, no sha256, or another file's name."""
    try:
        with open(sum_file, "rb") as handle:
            raw = handle.read(4097)
    except OSError as error:
        raise SumFileError("the sum file {} of {} cannot be read ({})".format(sum_file, src, error.strerror or error)) from None
    if len(raw) > 4096:
        raise SumFileError("the sum file {} of {} is larger than 4 KiB: it is no sum file (one line, the sum of {} as sha256sum "
                           "writes it)".format(sum_file, src, os.path.basename(src)))
    lines = [line.strip() for line in raw.decode("utf-8", "replace").splitlines() if line.strip()]
    if not lines:
        raise SumFileError("the sum file {} of {} is empty (a build or a copy that did not finish?)".format(sum_file, src))
    if len(lines) > 1:
        raise SumFileError("the sum file {} of {} holds {} lines; it must hold one, the sum of {} (as sha256sum writes "
                           "it)".format(sum_file, src, len(lines), os.path.basename(src)))
    words = lines[0].split(None, 1)
    digest = words[0].lower()
    if not is_sha256(digest):
        raise SumFileError("the sum file {} of {} holds {!r}, not a sha256 sum (64 hexadecimal digits first on its line, as "
                           "sha256sum writes it)".format(sum_file, src, lines[0][:100]))
    named = os.path.basename(words[1].strip().lstrip("*")) if len(words) > 1 else ""
    if named and named != os.path.basename(src):
        raise SumFileError("the sum file {} of {} records the sum of {}, not of {}".format(sum_file, src, named, os.path.basename(src)))
    return digest


def merge(first: Dict[str, Any], second: Dict[str, Any]) -> Dict[str, Any]:
    """One result from the two module runs. The first already names every change, the sent files too, and its
    diff shows them as they will be; the second's failure (a sum that did not arrive, a failed validation)
    is the task's failure."""
    if second.get("failed"):
        return dict(second, changes=dict(first.get("changes") or {}))
    return dict(first, transfer=[], transfer_index=[])


def merge_work(first: Dict[str, Any], second: Dict[str, Any]) -> Dict[str, Any]:
    """One result from the two runs of a module whose own work follows the paths and changes the Pi (systemd_units'
    units, python_env's virtualenv): the changes of both (the paths from the first, the sent files and the work's
    from the second), the work's result from the second, both diffs. The second's failure (a sum that did not
    arrive, a refused unit, a failed build) is the task's, with the first's changes (they were made)."""
    changes = {path: list(what) for path, what in (first.get("changes") or {}).items()}
    for path, what in (second.get("changes") or {}).items():
        changes[path] = changes.get(path, []) + [word for word in what if word not in changes.get(path, [])]
    if second.get("failed"):
        return dict(second, changes=changes)
    merged = dict(second, changed=bool(first.get("changed") or second.get("changed")), changes=changes,
                  files=first.get("files", []), transfer=[], transfer_index=[])
    diffs = as_diffs(first.get("diff")) + as_diffs(second.get("diff"))
    if diffs:
        merged["diff"] = diffs
    for key in ("work_pending", "restarts_due"):  # the first run's word to the second, not the task's result
        merged.pop(key, None)
    return merged


def as_diffs(diff: Any) -> List[Dict[str, Any]]:
    """A module's ``diff`` as a list: Ansible takes one dict or a list of them (list() of a dict would be its keys)."""
    if not diff:
        return []
    return [diff] if isinstance(diff, dict) else list(diff)


def masked(result: Dict[str, Any]) -> Dict[str, Any]:
    """The result without the files' contents in its invocation (shown with -v): a content may be a secret one
    day, and its size and sum say what was asked for."""
    invocation = result.get("invocation")
    if isinstance(invocation, dict) and isinstance(invocation.get("module_args"), dict):
        args = dict(invocation["module_args"])
        args["files"] = [dict(entry, content="({} bytes, sha256 {})".format(len(str(entry["content"]).encode("utf-8")), hashlib.sha256(
                             str(entry["content"]).encode("utf-8")).hexdigest()[:12]))
                         if isinstance(entry, dict) and entry.get("content") is not None else entry
                         for entry in args.get("files") or []]
        result = dict(result, invocation=dict(invocation, module_args=args))
    return result


class ActionModule(ActionBase):
    """Runs the module with the sums of the controller's files, then sends only what the Pi lacks.

    A module that puts paths in place before its own work (health_check, systemd_units, python_env, current_link)
    reuses it as a subclass: its MODULE, its NAME (the refusals' first word), its _VALID_ARGS and the merge of the two
    results (MERGES_WORK, or a _merge of its own).
    """

    MODULE = MODULE
    NAME = "paths_state"
    # Whether the module's own work follows the paths and changes the Pi (systemd_units, python_env, current_link):
    # the two runs' results are then merged by merge_work.
    MERGES_WORK = False
    TRANSFERS_FILES = False  # a temporary directory on the Pi only when something is sent (no round trip otherwise)
    PATH_ARGS = frozenset(("directories", "files", "absent"))
    _VALID_ARGS = PATH_ARGS

    def _second_args(self, args: Dict[str, Any], wire: List[Dict[str, Any]], staged: Dict[str, str],
                     first: Dict[str, Any]) -> Dict[str, Any]:
        """The second run's arguments: the task's own work (a subclass's checks or units, as the task gave them) with
        the sent files alone and where they were staged (the directories are there since the first run). ``first``
        is the first run's result."""
        del first
        own = {key: value for key, value in args.items() if key not in self.PATH_ARGS}
        return dict(own, files=[entry for entry in wire if entry.get("dest") in staged], staged=staged)

    def _merge(self, first: Dict[str, Any], second: Dict[str, Any]) -> Dict[str, Any]:
        return merge_work(first, second) if self.MERGES_WORK else merge(first, second)

    def _wire(self, files: List[Dict[str, Any]]) -> Tuple[List[Dict[str, Any]], Dict[str, str]]:
        wire: List[Dict[str, Any]] = []
        sources: Dict[str, str] = {}
        for entry in files:
            if not isinstance(entry, dict):
                raise AnsibleError(self.NAME + ": each entry of files must be a dict with dest, got {!r}".format(entry))
            entry = dict(entry)
            if entry.get("force") is None:
                entry.pop("force", None)  # not given (true)
            else:  # yes/no, "false", 0 as Ansible reads them; the module takes true or false
                try:
                    entry["force"] = boolean(entry["force"], strict=True)
                except TypeError:
                    raise AnsibleError(self.NAME + ": file {}: force {!r} is not a boolean (true or false)".format(
                        entry.get("dest"), entry["force"])) from None
            src, expected, sum_file, fix = (entry.pop(key, None) for key in ("src", "sha256", "sha256_file", "fix"))
            if src is None:
                if expected is not None or sum_file is not None or fix is not None:
                    raise AnsibleError(self.NAME + ": file {}: sha256, sha256_file and fix belong to a src (the sum the controller's "
                                       "file must have or the file that holds it, what to do when it is missing or differs); give "
                                       "src or leave them out".format(entry.get("dest")))
            elif expected is not None and sum_file is not None:
                raise AnsibleError(self.NAME + ": file {}: give the sum its src {} must have as sha256 or as sha256_file ({}), "
                                   "not both".format(entry.get("dest"), src, sum_file))
            else:
                entry["sha256"], entry["size"], sources[str(entry.get("dest"))] = self._source(entry, str(src), expected, fix, sum_file)
            wire.append(entry)
        return wire, sources

    def _source(self, entry: Dict[str, Any], src: str, expected: Any, fix: Any, sum_file: Any = None) -> Tuple[str, int, str]:
        """sha256, size and path of a file's src, refused when it is missing or not the expected one (``expected``, or
        the sum ``sum_file`` holds)."""
        dest = entry.get("dest")
        if entry.get("content") is not None:
            raise AnsibleError(self.NAME + ": file {}: give src or content, not both".format(dest))
        fix = str(fix).strip() if fix is not None else ""
        path = self._controller_file(dest, "its src {}".format(src), src, fix)
        origin = ""
        if sum_file is not None:
            record = fix or "Record the sum of a copy you trust there (cd {} && sha256sum {} > {}), or make both files again.".format(
                os.path.dirname(path), os.path.basename(path), sum_file)
            sums = self._controller_file(dest, "the sum file {} of its src {}".format(sum_file, path), str(sum_file), record)
            try:
                expected, origin = recorded_sum(sums, path), " (recorded in {})".format(sums)
            except SumFileError as error:
                raise AnsibleError(self.NAME + ": file {}: {}; nothing was changed on the Pi. {}".format(dest, error, record)) from None
        expected = None if expected is None else str(expected).strip().lower()
        if expected is not None and not is_sha256(expected):
            raise AnsibleError(self.NAME + ": file {}: the sha256 expected of its src {} is {!r}, not a sha256 sum (64 hexadecimal "
                               "digits); nothing was changed on the Pi{}".format(dest, path, expected, ". " + fix if fix else ""))
        actual, size = measure(path)
        if expected is not None and actual != expected:
            raise AnsibleError(self.NAME + ": file {}: its src {} has sha256 {}, not the expected {}{}: it is damaged or not the file "
                               "that was meant, and nothing was changed on the Pi. {}".format(
                                   dest, path, actual, expected, origin, fix or "Put the right file there (or correct the "
                                                                                "expected sum if this is the file you want) and run again."))
        return actual, size, path

    def _controller_file(self, dest: Any, what: str, name: str, fix: str) -> str:
        """The path of a controller file, found as ansible.builtin.copy finds its src; refused when it is not there."""
        try:
            return str(self._find_needle("files", name))
        except AnsibleError as error:  # (its first line: the rest is copy's remote_src hint)
            raise AnsibleError(self.NAME + ": file {}: {} is not on the controller ({}){}".format(
                dest, what, (str(error).strip().splitlines() or [""])[0], ". " + fix if fix else "")) from None

    @staticmethod
    def _transfer(first: Dict[str, Any], wire: List[Dict[str, Any]], sources: Dict[str, str]) -> List[str]:
        """The destinations the first run asks for, found by their place in ``files`` (transfer_index): a path in a
        module's result is masked when it equals a value of a no_log option, and a masked name would be sent nowhere."""
        index = first.get("transfer_index")
        if isinstance(index, list):
            dests = [str(wire[number].get("dest")) for number in index
                     if isinstance(number, int) and not isinstance(number, bool) and 0 <= number < len(wire)]
        else:
            dests = [str(dest) for dest in first.get("transfer") or []]
        return [dest for dest in dests if dest in sources]

    def run(self, tmp: Any = None, task_vars: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        result = super().run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)  # (staged, the second call's, is not among _VALID_ARGS: a task cannot set it)
        try:
            wire, sources = self._wire(list(args.get("files") or []))
        except AnsibleError as error:
            result.update(failed=True, msg=str(error))
            return result
        args["files"] = wire
        first = self._execute_module(module_name=self.MODULE, module_args=args, task_vars=task_vars)
        transfer = self._transfer(first, wire, sources)
        if first.get("failed") or not transfer or self._task.check_mode:
            result.update(masked(first))
            return result
        made_tmp = self._connection._shell.tmpdir is None
        if made_tmp:
            self._make_tmp_path()
        try:
            tmpdir = self._connection._shell.tmpdir
            staged: Dict[str, str] = {}
            for number, dest in enumerate(transfer):
                remote = self._connection._shell.join_path(tmpdir, "source-{}".format(number))
                self._transfer_file(sources[dest], remote)
                staged[dest] = remote
            self._fixup_perms2([tmpdir] + list(staged.values()))
            second = self._execute_module(module_name=self.MODULE, task_vars=task_vars,
                                          module_args=self._second_args(args, wire, staged, first))
        finally:
            if made_tmp:
                self._remove_tmp_path(self._connection._shell.tmpdir)
        result.update(masked(self._merge(first, second)))
        return result
