#!/usr/bin/python
# -*- coding: utf-8 -*-
"""A role's systemd unit files, verified, installed, loaded and started in one call on the Pi.

Every unit used to take a ``template`` task (with ``systemd-analyze verify`` run per file as its
validator), a ``systemd_service`` task to reload, enable and start it, and a handler to restart what
changed: three to six round trips to the Pi per role, about 3 s each under qemu. This module takes a
role's whole set:

- each unit file is compared with what is on disk (content, owner root:root, mode 0644); the changed
  ones are verified together by ``systemd-analyze verify``, under their real names, before any of them is
  written, so a bad unit never replaces a working one;
- each is written atomically (a temporary file, fsync, rename), then systemd reloads its unit files once;
- the units of ``started`` are enabled and running afterwards; those whose own file changed are restarted
  (a running unit keeps its old definition until then), and so is every unit of ``restarted``.

Drift is repaired as before: a deleted or edited unit file, a disabled or stopped unit is a change,
reported per unit. The planning half is plain stdlib (importable and testable without Ansible).

A role whose units use files of its own (a script, a configuration) puts them in place in the same call:
``directories``, ``files`` and ``absent`` as paths_state takes them, with its code (module_utils/paths.py) and its
action plugin (action/systemd_units.py subclasses it), before the units. A file from the controller that the Pi
lacks is sent and the module runs again with it ``staged``: only that second run installs the units (they may need
the file), so a unit never starts without its files. A converged Pi costs one module run for both.
"""
from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import tempfile
from typing import Any, Callable, Dict, List, Optional, Sequence

from ansible_collections.pivoice.voice_appliance.plugins.module_utils.durable import RECEIPT_SPEC, receipt_result, replace_file
from ansible_collections.pivoice.voice_appliance.plugins.module_utils.paths import ARGUMENT_SPEC as PATHS_SPEC
from ansible_collections.pivoice.voice_appliance.plugins.module_utils.paths import PathsError
from ansible_collections.pivoice.voice_appliance.plugins.module_utils.paths import ensure as ensure_paths
from ansible_collections.pivoice.voice_appliance.plugins.module_utils.paths import own_diff

DOCUMENTATION = r"""
---
module: systemd_units
short_description: Install a role's systemd unit files (verified), reload systemd once, enable, start and restart units.
description:
  - Every unit of O(units) is written to O(directory) with its content, owned by root with mode 0644, when it differs.
  - The changed unit files are checked together by C(systemd-analyze verify) before any of them is written;
    a unit that fails is refused with systemd's message and nothing is changed.
  - After a change systemd reloads its unit files (once); the units of O(started) are enabled and started,
    restarted when their own unit file changed; the units of O(restarted) are restarted; the units of O(stopped)
    are disabled and stopped.
  - Supports check mode and diff mode (the unit files' contents).
  - O(receipt) is written once the unit files are in place and the units in their wanted state; a refused unit or
    a failed start leaves it as it was.
  - First, the directories of O(directories), the files of O(files) and the paths of O(absent) are put in place as
    M(pivoice.voice_appliance.paths_state) does (its code and, on the controller, its action plugin); their changes
    are the task's changes too. The units are installed only once every file is in place. A file from the controller
    that the Pi lacks is sent by the action plugin, which runs the module again with it; only that second run
    installs the units. In check mode they are planned in any case.
options:
  absent:
    description: Paths that must not exist, as for M(pivoice.voice_appliance.paths_state).
    type: list
    elements: path
    default: []
  units:
    description:
      - The unit files, each with C(name) and C(content). A name is a unit (such as C(voice-retrain.path)) or a
        drop-in of one (C(mosquitto.service.d/voice-appliance.conf); its directory is made if missing). A drop-in
        is not checked by C(systemd-analyze verify) (it is no unit of its own); a changed one counts as a change of
        its unit.
    type: list
    elements: dict
    required: true
  started:
    description: Unit names that must be enabled and running afterwards.
    type: list
    elements: str
    default: []
  restarted:
    description: Unit names to restart in any case (the caller knows that something they use changed).
    type: list
    elements: str
    default: []
  restart_on:
    description:
      - Per unit name, paths of this call's O(files) and O(absent) it reads (its configuration). The unit is restarted
        when one of them changed, in this run or in the first run of the two the action plugin makes.
    type: dict
    default: {}
  stopped:
    description: Unit names that must be disabled and stopped afterwards (a feature turned off).
    type: list
    elements: str
    default: []
  directory:
    description: Where unit files live.
    type: path
    default: /etc/systemd/system
extends_documentation_fragment:
  - pivoice.voice_appliance.paths_first
  - pivoice.voice_appliance.receipt
author: voice appliance team
"""

EXAMPLES = r"""
- name: Install the retrain units and start the watchers.
  pivoice.voice_appliance.systemd_units:
    units:
      - {name: voice-retrain.service, content: "{{ lookup('ansible.builtin.template', 'voice-retrain.service.j2') }}"}
      - {name: voice-retrain.path, content: "{{ lookup('ansible.builtin.template', 'voice-retrain.path.j2') }}"}
    started: [voice-retrain.path]
"""

RETURN = r"""
changes:
  description: >-
    Per changed unit, what changed (C(created), C(content), C(owner), C(mode), C(enabled), C(started), C(restarted),
    C(disabled), C(stopped)); per changed path of O(directories), O(files) and O(absent), what changed (as
    M(pivoice.voice_appliance.paths_state) says).
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
files_changed:
  description: The unit files that were (or in check mode would be) written.
  type: list
  returned: always
receipt_changed:
  description: Whether the receipt was (or, in check mode, would be) written (it is in RV(changes) too, under its path).
  type: bool
  returned: always
receipt:
  description:
    - The receipt's C(path) and C(content) as the Pi holds them after the run (a later task may take them as read, such
      as the local fact it is, instead of asking the Pi again).
  type: dict
  returned: with O(receipt), except in check mode when it would be written
"""

UNIT_NAME = re.compile(r"^[A-Za-z0-9:_.\\@-]+\.(service|socket|path|timer|target|mount|automount|slice|scope)$")
DROP_IN = re.compile(r"^(?P<unit>[^/]+)\.d/[A-Za-z0-9_.@-]+\.conf$")
MODE = 0o644
# UnitFileState values that `systemctl enable` changes: disabled, and none at all (a unit not loaded yet,
# or whose file was deleted). enabled, static, indirect, alias, generated... are left as they are.
ENABLE_FROM = ("disabled", "")
# ActiveState values of a unit that runs (or is on its way): started again, it would not change.
RUNNING = ("active", "reloading", "activating")

Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]


class UnitsError(Exception):
    """A request that cannot be carried out; the message names the unit and the fix."""


def _run(argv: Sequence[str]) -> "subprocess.CompletedProcess[str]":
    return subprocess.run(list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, check=False)


def _content(entry: Dict[str, Any]) -> str:
    text = str(entry.get("content") or "")
    return text if text.endswith("\n") else text + "\n"


def check_request(units: List[Dict[str, Any]], started: List[str], restarted: List[str], stopped: Sequence[str] = ()) -> None:
    names = [str(entry.get("name") or "") for entry in units]
    for name in names:
        if not UNIT_NAME.match(unit_of(name)):
            raise UnitsError("unit name {!r} is not a unit file name such as voice-retrain.service (letters, digits, "
                             "':_.\\@-' and a unit type suffix; no directories) or a drop-in such as "
                             "mosquitto.service.d/voice-appliance.conf".format(name))
    doubles = sorted({name for name in names if names.count(name) > 1})
    if doubles:
        raise UnitsError("unit {} is given twice; give each unit file once".format(", ".join(doubles)))
    for entry in units:
        if not str(entry.get("content") or "").strip():
            raise UnitsError("unit {}: the content is empty; render its template into content".format(entry.get("name")))
    for name in list(started) + list(restarted) + list(stopped):
        if not UNIT_NAME.match(name):
            raise UnitsError("started/restarted/stopped unit {!r} is not a unit name such as voice-retrain.path".format(name))
    both = sorted(set(stopped) & (set(started) | set(restarted)))
    if both:
        raise UnitsError("unit {} is to be stopped and started at once; name it in one list".format(", ".join(both)))


def unit_of(name: str) -> str:
    """The unit a file belongs to: itself, or the unit of a drop-in (UNIT.d/NAME.conf)."""
    drop_in = DROP_IN.match(name)
    return drop_in["unit"] if drop_in else name


def file_changes(units: List[Dict[str, Any]], directory: str,
                 before: Optional[Dict[str, str]] = None) -> Dict[str, List[str]]:
    """Which unit files differ from their wanted content, owner root:root and mode 0644 (nothing is changed).
    ``before``, if given, receives the old text of each changed file ("" when there was none), for the diff."""
    changes: Dict[str, List[str]] = {}
    before = {} if before is None else before
    for entry in units:
        name, path = entry["name"], os.path.join(directory, entry["name"])
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            changes[name], before[name] = ["created"], ""
            continue
        if not stat.S_ISREG(st.st_mode):  # a link (a masked unit: /dev/null) or anything else is replaced by the file
            changes[name], before[name] = ["content"], ""
            continue
        what = []
        with open(path, encoding="utf-8", errors="surrogateescape") as handle:
            text = handle.read()
        if text != _content(entry):
            what.append("content")
        if (st.st_uid, st.st_gid) != (0, 0):
            what.append("owner")
        if stat.S_IMODE(st.st_mode) != MODE:
            what.append("mode")
        if what:
            changes[name], before[name] = what, text
    return changes


def verify(units: List[Dict[str, Any]], names: List[str], run: Runner = _run) -> None:
    """systemd-analyze verify of the changed units, together, under their real names, in a scratch directory."""
    names = [name for name in names if unit_of(name) == name]  # drop-ins are no units of their own
    if not names:
        return
    scratch = tempfile.mkdtemp(prefix="systemd-units-")
    try:
        paths = []
        for entry in units:
            if entry["name"] in names:
                path = os.path.join(scratch, entry["name"])
                with open(path, "w", encoding="utf-8") as handle:
                    handle.write(_content(entry))
                paths.append(path)
        done = run(["systemd-analyze", "verify"] + paths)
        if done.returncode != 0:
            said = done.stdout.replace(scratch + "/", "").strip()
            raise UnitsError("systemd-analyze verify refused {} (nothing was installed): {}".format(", ".join(names), said))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def write(directory: str, name: str, content: str) -> None:
    """Atomically: a temporary file beside it, fsynced, renamed over the unit, the directory fsynced."""
    directory, name = os.path.split(os.path.join(directory, name))  # a drop-in: into its unit's .d directory
    if not os.path.isdir(directory):
        os.mkdir(directory, 0o755)
        os.chmod(directory, 0o755)
    replace_file(os.path.join(directory, name), lambda handle: handle.write(content.encode("utf-8")), MODE, 0, 0,
                 prefix=".{}.".format(name))


def unit_states(names: List[str], run: Runner = _run) -> Dict[str, Dict[str, str]]:
    """UnitFileState, ActiveState and LoadState of each unit, from one systemctl call."""
    if not names:
        return {}
    done = run(["systemctl", "show", "--property=Id,UnitFileState,ActiveState,LoadState", "--"] + list(names))
    if done.returncode != 0:
        raise UnitsError("systemctl show {} failed: {}".format(" ".join(names), done.stdout.strip()))
    blocks = [dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
              for block in done.stdout.strip().split("\n\n")]
    if len(blocks) != len(names):
        raise UnitsError("systemctl show gave {} answers for {} units: {!r}".format(len(blocks), len(names), done.stdout))
    return dict(zip(names, blocks))


def service_changes(started: List[str], restarted: List[str], files_changed: List[str],
                    states: Dict[str, Dict[str, str]], stopped: Sequence[str] = ()) -> Dict[str, List[str]]:
    """What systemctl must do: enable and start what is not, restart what changed (its file or a drop-in of it)
    or was asked for, disable and stop what is turned off."""
    files_changed = [unit_of(name) for name in files_changed]
    changes: Dict[str, List[str]] = {}
    for name in started:
        state = states.get(name, {})
        if state.get("UnitFileState") == "masked":
            raise UnitsError("unit {} is masked; unmask it (systemctl unmask {}) or leave it out".format(name, name))
        what = []
        if state.get("UnitFileState", "") in ENABLE_FROM:
            what.append("enabled")
        if name in files_changed or name in restarted:
            what.append("restarted")
        elif state.get("ActiveState") not in RUNNING:
            what.append("started")
        if what:
            changes[name] = what
    for name in restarted:
        if name not in started:
            changes[name] = ["restarted"]
    for name in stopped:
        state = states.get(name, {})
        what = [word for word, needed in (("disabled", state.get("UnitFileState") in ("enabled", "enabled-runtime")),
                                          ("stopped", state.get("ActiveState") in RUNNING))
                if needed]
        if what:
            changes[name] = what
    return changes


def act(changes: Dict[str, List[str]], files_changed: List[str], run: Runner = _run) -> None:
    def systemctl(*args: str) -> None:
        done = run(["systemctl"] + list(args))
        if done.returncode != 0:
            raise UnitsError("systemctl {} failed: {}".format(" ".join(args), done.stdout.strip()))

    if files_changed:
        systemctl("daemon-reload")
    for word, verb in (("enabled", "enable"), ("started", "start"), ("restarted", "restart"),
                       ("disabled", "disable"), ("stopped", "stop")):
        names = [name for name, what in changes.items() if word in what]
        if names:
            systemctl(verb, "--", *names)


def ensure(units: List[Dict[str, Any]], started: List[str], restarted: List[str], stopped: List[str], directory: str,
           receipt: Optional[Dict[str, str]] = None, check: bool = False, run: Runner = _run) -> Dict[str, Any]:
    """The whole call: the unit files verified and written, systemd reloaded, the units enabled, started, restarted
    or stopped, then the receipt written (only once all that succeeded); the result as the module returns it, its
    diff included."""
    check_request(units, started, restarted, stopped)
    before: Dict[str, str] = {}
    files = file_changes(units, directory, before)
    names = [entry["name"] for entry in units if entry["name"] in files]
    verify(units, [name for name in names if "content" in files[name] or "created" in files[name]], run)
    states = unit_states(list(dict.fromkeys(list(started) + list(restarted) + list(stopped))), run)
    services = service_changes(started, restarted, names, states, stopped)
    if not check:
        for entry in units:
            if entry["name"] in files:
                write(directory, entry["name"], _content(entry))
        act(services, names, run)
    receipt_out = receipt_result(receipt, check)
    if receipt and receipt_out["receipt_changed"]:
        services.setdefault(receipt["path"], []).append("receipt")
    changes: Dict[str, List[str]] = {name: list(files.get(name, [])) + services.get(name, [])
                                     for name in list(files) + [n for n in services if n not in files]}
    wanted = {entry["name"]: _content(entry) for entry in units}
    return dict(receipt_out, changed=bool(changes), changes=changes, files_changed=names,
                diff=[{"before_header": os.path.join(directory, name), "after_header": os.path.join(directory, name),
                       "before": before[name], "after": wanted[name]} for name in names])


def restarts_due(restart_on: Dict[str, Any], changes: Dict[str, Any]) -> List[str]:
    """The units of ``restart_on`` one of whose paths is among the paths' ``changes``."""
    return [str(unit) for unit, paths in restart_on.items() if set(map(str, paths or [])) & set(changes)]


def run(params: Dict[str, Any], check: bool = False, want_diff: bool = False, run: Runner = _run) -> Dict[str, Any]:
    """The module's whole work: the paths put in place (or, ``check``, predicted), then, once every file is there,
    the units (``ensure``); one result, its ``diff`` a list (the paths', then one per unit file). A run that names a
    file to send leaves the units to the second run, which leaves the sent files' diff to the first (it showed them
    as they will be). PathsError, UnitsError or OSError for a request that cannot be carried out."""
    staged = dict(params.get("staged") or {})
    paths = ensure_paths(list(params.get("directories") or []), list(params.get("absent") or []),
                         list(params.get("files") or []), staged, check, want_diff)
    diffs = own_diff(paths, staged).get("diff", [])
    restarted = list(params.get("restarted") or []) + restarts_due(params.get("restart_on") or {}, paths["changes"])
    if paths["transfer"] and not check:
        # The second run is told which restarts this run's changes call for (it sees only the sent files).
        return dict(paths, diff=diffs, files_changed=[], receipt_changed=False, work_pending=True, restarts_due=restarted)
    units = ensure(list(params["units"]), list(params.get("started") or []), list(dict.fromkeys(restarted)),
                   list(params.get("stopped") or []), params.get("directory") or "/etc/systemd/system",
                   params.get("receipt"), check, run)
    changes = dict(paths["changes"], **units["changes"])
    return dict(units, changed=bool(changes), changes=changes, files=paths["files"], transfer=paths["transfer"],
                diff=diffs + units["diff"])


def main() -> None:  # pragma: no cover - exercised through Ansible in molecule
    from ansible.module_utils.basic import AnsibleModule

    module = AnsibleModule(
        argument_spec=dict(PATHS_SPEC,
                           units={"type": "list", "elements": "dict", "required": True},
                           started={"type": "list", "elements": "str", "default": []},
                           restarted={"type": "list", "elements": "str", "default": []},
                           restart_on={"type": "dict", "default": {}},
                           stopped={"type": "list", "elements": "str", "default": []},
                           directory={"type": "path", "default": "/etc/systemd/system"},
                           receipt=RECEIPT_SPEC),
        supports_check_mode=True)
    try:
        out = run(module.params, module.check_mode, module._diff)
    except (UnitsError, PathsError, OSError) as error:
        module.fail_json(msg=str(error))
    if not (module._diff and out["diff"]):
        out.pop("diff")
    module.exit_json(**out)


if __name__ == "__main__":
    main()
