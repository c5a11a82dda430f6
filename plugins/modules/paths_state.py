#!/usr/bin/python
# -*- coding: utf-8 -*-
"""A role's directories and the paths it must not leave behind, in one call on the Pi.

A converge used to create each directory with its own ``ansible.builtin.file`` task (one round trip to
the Pi each, one per loop item, about 6 s under qemu) and to remove leftovers the same way. This
module takes the whole list: every directory exists with its mode and, where given, its owner and group
(left as they are when not given; missing parents are made root-owned 0755, like ``mkdir -p`` as root),
and every path of ``absent`` is gone (a file or link removed, a directory with everything in it). Drift is repaired as before: a wrong mode, owner or group,
a removed directory or a leftover path is a change, reported per path. A path that exists as something
other than a directory is refused, naming it; nothing is changed then.

The logic is plain stdlib (importable and testable without Ansible).
"""
from __future__ import annotations

import grp
import os
import pwd
import shutil
import stat
from typing import Any, Dict, List, Optional

DOCUMENTATION = r"""
---
module: paths_state
short_description: Ensure a list of directories (owner, group, mode) and a list of absent paths in one call.
description:
  - Every directory of O(directories) exists with its owner, group and mode; missing parents are created
    root-owned with mode 0755.
  - Every path of O(absent) does not exist (files and links are removed, directories with their contents).
  - A path of O(directories) that exists but is not a directory (or a link to one) is refused before anything
    changes.
  - Supports check mode and diff mode.
options:
  directories:
    description:
      - The directories, each with C(path) (absolute), C(mode) (an octal string such as C("0755") or C("2775")) and
        optionally C(owner) and C(group) (names or numbers; not given or empty, the directory keeps its own).
    type: list
    elements: dict
    default: []
  absent:
    description: Absolute paths that must not exist.
    type: list
    elements: path
    default: []
author: voice appliance team
"""

EXAMPLES = r"""
- name: Create the role's directories and remove what earlier releases left.
  pivoice.voice_appliance.paths_state:
    directories:
      - {path: /opt/voice-appliance/wheels, owner: root, group: root, mode: "0755"}
      - {path: /etc/voice-appliance/slots, owner: root, group: voice, mode: "2775"}
    absent: [/etc/mosquitto/voice-appliance.passwd.fingerprint]
"""

RETURN = r"""
changes:
  description: Per changed path, what changed (C(created), C(owner), C(group), C(mode), C(removed)).
  type: dict
  returned: always
"""


class PathsError(Exception):
    """A request that cannot be carried out; the message names the path and the fix."""


def _mode(entry: Dict[str, Any]) -> int:
    text = str(entry.get("mode", ""))
    try:
        value = int(text, 8)
    except ValueError:
        value = -1
    if not text or value < 0 or value > 0o7777:
        raise PathsError("directory {}: mode {!r} is not an octal mode such as \"0755\" or \"2775\"".format(entry.get("path"), text))
    return value


def _uid(name: str, path: str) -> int:
    try:
        return int(name) if name.isdigit() else pwd.getpwnam(name).pw_uid
    except KeyError:
        raise PathsError("directory {}: owner {!r} is no account on this machine; create it first".format(path, name)) from None


def _gid(name: str, path: str) -> int:
    try:
        return int(name) if name.isdigit() else grp.getgrnam(name).gr_gid
    except KeyError:
        raise PathsError("directory {}: group {!r} is no group on this machine; create it first".format(path, name)) from None


def _state(path: str) -> str:
    """One line that describes a path, for the diff."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "{}: absent".format(path) if not os.path.islink(path) else "{}: dangling link".format(path)
    kind = "directory" if stat.S_ISDIR(st.st_mode) else "file"
    return "{}: {} {} {:04o}".format(path, kind, _owner_group(st.st_uid, st.st_gid), stat.S_IMODE(st.st_mode))


def _owner_group(uid: int, gid: int) -> str:
    """OWNER:GROUP by name (the number when it has none)."""
    try:
        owner = pwd.getpwuid(uid).pw_name
    except KeyError:
        owner = str(uid)
    try:
        group = grp.getgrgid(gid).gr_name
    except KeyError:
        group = str(gid)
    return "{}:{}".format(owner, group)


def plan(directories: List[Dict[str, Any]], absent: List[str]) -> Dict[str, Any]:
    """What would change, without changing anything; refuses a request that cannot be carried out."""
    changes: Dict[str, List[str]] = {}
    wanted: List[Dict[str, Any]] = []
    for entry in directories:
        path = str(entry.get("path") or "")
        if not os.path.isabs(path):
            raise PathsError("directory {!r}: the path must be absolute".format(path))
        owner, group = str(entry.get("owner") or ""), str(entry.get("group") or "")
        want = {"path": path, "uid": _uid(owner, path) if owner else -1, "gid": _gid(group, path) if group else -1,
                "mode": _mode(entry)}
        wanted.append(want)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            if os.path.islink(path):
                raise PathsError("directory {}: it is a link to nothing; remove it or point it at a directory".format(path)) from None
            changes[path] = ["created"]
            continue
        if not stat.S_ISDIR(st.st_mode):
            raise PathsError("directory {}: it exists but is not a directory; move it away".format(path))
        what = [name for name, differs in (("owner", want["uid"] not in (-1, st.st_uid)), ("group", want["gid"] not in (-1, st.st_gid)),
                                           ("mode", stat.S_IMODE(st.st_mode) != want["mode"])) if differs]
        if what:
            changes[path] = what
    for path in absent:
        if not os.path.isabs(path):
            raise PathsError("absent path {!r}: the path must be absolute".format(path))
        if any(path == w["path"] for w in wanted):
            raise PathsError("{}: is both a directory to keep and a path to remove".format(path))
        if os.path.lexists(path):
            changes[path] = ["removed"]
    return {"changed": bool(changes), "changes": changes, "wanted": wanted, "absent": list(absent)}


def _makedirs(path: str) -> None:
    parent = os.path.dirname(path)
    if parent and parent != path and not os.path.isdir(parent):
        _makedirs(parent)
        os.mkdir(parent, 0o755)
        os.chmod(parent, 0o755)  # not narrowed by the umask


def apply(result: Dict[str, Any]) -> None:
    changes = result["changes"]
    for want in result["wanted"]:
        path = want["path"]
        if path not in changes:
            continue
        if "created" in changes[path] and not os.path.isdir(path):  # (a later entry's parent may have made it)
            _makedirs(path)
            os.mkdir(path, 0o700)  # opened up only once it has its owner
        if want["uid"] != -1 or want["gid"] != -1:
            os.chown(path, want["uid"], want["gid"])  # -1 keeps that one
        os.chmod(path, want["mode"])  # after chown: chown clears the setgid bit
    for path in result["absent"]:
        if path not in changes:
            continue
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)


def diff(result: Dict[str, Any], before: Dict[str, str], after: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    paths = sorted(result["changes"])
    return {"before": "".join(before[p] + "\n" for p in paths),
            "after": "".join(((after or {}).get(p) or _predicted(result, p)) + "\n" for p in paths)}


def _predicted(result: Dict[str, Any], path: str) -> str:
    for want in result["wanted"]:
        if want["path"] == path:
            uid, gid = want["uid"], want["gid"]
            if -1 in (uid, gid):  # kept as they are (a new directory: the module's own)
                st = os.stat(path) if os.path.exists(path) else None
                uid = uid if uid != -1 else (st.st_uid if st else os.getuid())
                gid = gid if gid != -1 else (st.st_gid if st else os.getgid())
            return "{}: directory {} {:04o}".format(path, _owner_group(uid, gid), want["mode"])
    return "{}: absent".format(path)


def main() -> None:  # pragma: no cover - exercised through Ansible in molecule
    from ansible.module_utils.basic import AnsibleModule

    module = AnsibleModule(
        argument_spec={"directories": {"type": "list", "elements": "dict", "default": []},
                       "absent": {"type": "list", "elements": "path", "default": []}},
        supports_check_mode=True)
    try:
        result = plan(module.params["directories"], module.params["absent"])
        before = {path: _state(path) for path in result["changes"]}
        if result["changed"] and not module.check_mode:
            apply(result)
        after = None if module.check_mode else {path: _state(path) for path in result["changes"]}
    except (PathsError, OSError) as error:
        module.fail_json(msg=str(error))
    out: Dict[str, Any] = {"changed": result["changed"], "changes": result["changes"]}
    if module._diff and result["changed"]:
        out["diff"] = diff(result, before, after)
    module.exit_json(**out)


if __name__ == "__main__":
    main()
