#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Merge settings into a Rhasspy profile.json, keeping every other key the user set.

The logic is plain stdlib (importable and testable without Ansible); ``main()`` wraps it as the
Ansible module ``rhasspy_profile``.
"""
from __future__ import annotations

import copy
import json
import os
import tempfile
import time
from typing import Any, Dict, List, Optional, Tuple

DOCUMENTATION = r"""
---
module: rhasspy_profile
short_description: Merge settings into a Rhasspy profile.json, keeping the user's other keys.
description:
  - Reads the profile (a missing file counts as an empty profile), merges I(settings) into it
    recursively (a value given in I(settings) wins, every other key is kept as it was), and writes it
    atomically only when the merged profile differs, after a backup of the previous file.
  - A profile that is not valid JSON, is not a JSON object, or holds a non-object where I(settings)
    needs an object fails the task and changes nothing.
options:
  path:
    description: The profile.json.
    type: path
    required: true
  settings:
    description: The settings to merge (nested objects).
    type: dict
    required: true
  backup:
    description: Keep the previous file as C(PATH.bak-TIMESTAMP) before changing it.
    type: bool
    default: true
  mode:
    description: Mode of a newly created profile (an existing one keeps its mode and owner).
    type: raw
    default: "0644"
author: voice appliance team
"""

RETURN = r"""
backup_file:
  description: The backup of the previous profile, if one was written.
  type: str
  returned: changed and a previous file existed
changed_keys:
  description: The dotted keys whose values were added or changed.
  type: list
  returned: always
"""


class ProfileError(Exception):
    """A profile that cannot be merged safely (the message names the file and the fix)."""


def load_profile(path: str) -> Tuple[Dict[str, Any], Optional[str]]:
    """The profile's data and its text (``({}, None)`` when the file does not exist)."""
    try:
        with open(path, "r", encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        return {}, None
    except UnicodeDecodeError as exc:
        raise ProfileError("The Rhasspy profile %s is not UTF-8 text (%s). Nothing was changed: fix the file "
                           "or move it away, then run again." % (path, exc))
    if not text.strip():
        return {}, text
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ProfileError("The Rhasspy profile %s is not valid JSON (%s). Nothing was changed: fix the file "
                           "(e.g. python3 -m json.tool %s) or move it away, then run again." % (path, exc, path))
    if not isinstance(data, dict):
        raise ProfileError("The Rhasspy profile %s holds a JSON %s, not an object ({...}). Nothing was changed: "
                           "fix the file or move it away, then run again." % (path, type(data).__name__))
    return data, text


def merge(profile: Dict[str, Any], settings: Dict[str, Any], path: str = "profile.json",
          prefix: str = "") -> Tuple[Dict[str, Any], List[str]]:
    """``profile`` with ``settings`` merged in (new dict), and the dotted keys that changed."""
    merged = copy.deepcopy(profile)
    changed: List[str] = []
    for key, value in settings.items():
        dotted = prefix + key
        if isinstance(value, dict):
            current = merged.get(key, {})
            if not isinstance(current, dict):
                raise ProfileError("The Rhasspy profile %s has %s = %s, but it must be an object ({...}) to hold %s. "
                                   "Nothing was changed: fix or remove that key, then run again."
                                   % (path, dotted, json.dumps(current), ", ".join(dotted + "." + k for k in value)))
            merged[key], sub = merge(current, value, path, dotted + ".")
            if key not in profile and not sub:
                changed.append(dotted)
            changed.extend(sub)
        elif key not in merged or merged[key] != value or type(merged[key]) is not type(value):
            merged[key] = copy.deepcopy(value)
            changed.append(dotted)
    return merged, changed


def render(data: Dict[str, Any]) -> str:
    """The profile as Rhasspy writes it (4-space indentation, UTF-8), checked to read back identically."""
    text = json.dumps(data, indent=4, ensure_ascii=False) + "\n"
    if json.loads(text) != data:
        raise ProfileError("internal error: the merged profile does not read back as written")
    return text


def write_profile(path: str, text: str, backup: bool, mode: int, previous: Optional[str]) -> Optional[str]:
    """Write ``text`` atomically (same owner and mode as the old file); return the backup's path."""
    directory = os.path.dirname(os.path.abspath(path))
    backup_file = None
    stat = os.stat(path) if previous is not None else None
    if backup and previous is not None:
        backup_file = "%s.bak-%s" % (path, time.strftime("%Y%m%dT%H%M%S"))
        with open(backup_file, "w", encoding="utf-8") as handle:
            handle.write(previous)
        os.chmod(backup_file, stat.st_mode & 0o777 if stat else mode)
        if stat is not None:
            _chown(backup_file, stat.st_uid, stat.st_gid)
    handle_fd, temp = tempfile.mkstemp(prefix=".profile-", suffix=".json", dir=directory)
    try:
        with os.fdopen(handle_fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if stat is not None:
            os.chmod(temp, stat.st_mode & 0o7777)
            _chown(temp, stat.st_uid, stat.st_gid)
        else:
            os.chmod(temp, mode)
            parent = os.stat(directory)
            _chown(temp, parent.st_uid, parent.st_gid)
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise
    return backup_file


def _chown(path: str, uid: int, gid: int) -> None:
    try:
        os.chown(path, uid, gid)
    except PermissionError:
        pass  # not root: the file keeps the writer's owner


def run(path: str, settings: Dict[str, Any], backup: bool = True, mode: int = 0o644,
        check: bool = False) -> Dict[str, Any]:
    """Merge ``settings`` into the profile at ``path``; the result as the module returns it."""
    profile, previous = load_profile(path)
    merged, changed_keys = merge(profile, settings, path)
    text = render(merged)
    changed = previous is None or merged != profile
    result: Dict[str, Any] = {"changed": changed, "changed_keys": changed_keys, "path": path,
                              "diff": {"before": previous or "", "after": text if changed else (previous or ""),
                                       "before_header": path, "after_header": path}}
    if changed and not check:
        if not os.path.isdir(os.path.dirname(os.path.abspath(path))):
            raise ProfileError("The directory of the Rhasspy profile %s does not exist: create it (or set the "
                               "profile path to the profile Rhasspy uses)." % path)
        backup_file = write_profile(path, text, backup, mode, previous)
        if backup_file:
            result["backup_file"] = backup_file
    return result


def main() -> None:
    from ansible.module_utils.basic import AnsibleModule

    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "settings": {"type": "dict", "required": True},
            "backup": {"type": "bool", "default": True},
            "mode": {"type": "raw", "default": "0644"},
        },
        supports_check_mode=True,
    )
    mode = module.params["mode"]
    mode = int(mode, 8) if isinstance(mode, str) else int(mode)
    try:
        result = run(module.params["path"], module.params["settings"], module.params["backup"], mode,
                     module.check_mode)
    except ProfileError as exc:
        module.fail_json(msg=str(exc), changed=False)
    if not module._diff:
        result.pop("diff")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
