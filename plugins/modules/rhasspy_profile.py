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
import pwd
import stat
import time
from typing import Any, Dict, List, Optional, Tuple

from ansible_collections.pivoice.voice_appliance.plugins.module_utils.durable import replace_file
from ansible_collections.pivoice.voice_appliance.plugins.module_utils.paths import PathsError, account_id, octal_mode

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
  - The files of O(seed) are written into the profile's directory in the same call, each only when it is missing.
  - Supports check mode and diff mode.
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
  mqtt_password_file:
    description:
      - A root-only file on the host whose first line is the MQTT password Rhasspy uses (C(mqtt.password)).
        The password never passes through the controller, and the task's diff shows it as C(********).
      - A profile holding an MQTT password is made readable by its owner only (mode 0600), and so are its
        backups.
    type: path
  keep_backups:
    description: How many C(PATH.bak-*) backups to keep (the oldest are removed); 0 keeps all.
    type: int
    default: 3
  create_directory:
    description:
      - Make the profile's directory if it is missing and keep it at mode 0755 (in the same call, instead of a
        task of its own). Without it a missing directory fails the task.
    type: bool
    default: false
  directory_owner:
    description:
      - With O(create_directory), the account (and its group) that owns the directory; empty leaves an existing
        directory's owner alone and makes a new one root's.
    type: str
    default: ""
  seed:
    description:
      - Files written into the profile's directory only when there is none of that name (such as the C(sentences.ini)
        Rhasspy is trained on). Once there, a file belongs to the profile's users and is never written again, not when
        it differs from C(content) nor when it is empty; its owner and mode are left alone too.
      - Each is written atomically (a temporary file beside it, fsynced, then linked into place), only after the profile
        proved mergeable. A path there that is a link to nothing or not a regular file is refused before anything changes.
      - In check mode and diff mode the files that would be seeded are reported (RV(seeded)) and shown.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: The file's name in the profile's directory (a plain name, no C(/); not the profile itself).
        type: str
        required: true
      content:
        description: Its content (text, written as UTF-8), such as a lookup of a file of the role.
        type: str
        required: true
      owner:
        description: Its owner (a name or a number); empty for the module's user (root).
        type: str
        default: ""
      group:
        description: Its group (a name or a number); empty for the module's user's group.
        type: str
        default: ""
      mode:
        description: Its mode, an octal string such as C("0644").
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
settings_changed:
  description: Whether the profile's settings changed (Rhasspy must re-read them); not for a repaired mode or directory.
  type: bool
  returned: always
directory_changes:
  description: What was done to the profile's directory (created, mode, owner), with create_directory.
  type: list
  returned: always
seeded:
  description: The files of O(seed) that were (in check mode, would be) written because they were missing.
  type: list
  elements: str
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


def write_profile(path: str, text: str, backup: bool, mode: int, previous: Optional[str],
                  private: bool = False) -> Optional[str]:
    """Write ``text`` atomically and durably (same owner and mode as the old file, owner-only if ``private``; a
    new one gets ``mode`` and its directory's owner); return the backup's path."""
    directory = os.path.dirname(os.path.abspath(path))
    backup_file = None
    stat = os.stat(path) if previous is not None else None
    if backup and previous is not None:
        backup_file = "%s.bak-%s" % (path, time.strftime("%Y%m%dT%H%M%S"))
        # Not through a symlink (the directory belongs to the profile's user); owner-only until chmod
        fd = os.open(backup_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(previous)
            os.fchmod(handle.fileno(), PRIVATE_MODE if private or stat is None else stat.st_mode & 0o777)
            if stat is not None:
                try:
                    os.fchown(handle.fileno(), stat.st_uid, stat.st_gid)
                except PermissionError:
                    pass  # not root: the file keeps the writer's owner
    if stat is not None:
        file_mode, uid, gid = (PRIVATE_MODE if private else stat.st_mode & 0o7777), stat.st_uid, stat.st_gid
    else:
        parent = os.stat(directory)
        file_mode, uid, gid = mode, parent.st_uid, parent.st_gid
    if os.geteuid() != 0:
        uid = gid = -1  # not root: the file keeps the writer's owner
    replace_file(path, lambda out: out.write(text.encode("utf-8")), file_mode, uid, gid, prefix=".profile-")
    return backup_file


REDACTED = "********"
PRIVATE_MODE = 0o600


def read_password_file(path: str) -> str:
    """The first line of a password file (ProfileError naming the file otherwise)."""
    try:
        with open(path, "r", encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError("Cannot read the MQTT password file %s (%s): run the rhasspy_asr role's broker "
                           "setup first, or drop mqtt_password_file." % (path, exc))
    if not lines or not lines[0]:
        raise ProfileError("The MQTT password file %s is empty: write the password on its first line." % path)
    return lines[0]


def redact(text: str) -> str:
    """A profile's text with the MQTT password replaced by ********, for diffs and messages."""
    if not text.strip():
        return text
    try:
        data = json.loads(text)
    except ValueError:
        return "(not JSON: not shown, it may hold a password)\n"
    if isinstance(data, dict) and isinstance(data.get("mqtt"), dict) and data["mqtt"].get("password"):
        data = copy.deepcopy(data)
        data["mqtt"]["password"] = REDACTED
        return json.dumps(data, indent=4, ensure_ascii=False) + "\n"
    return text


def holds_password(data: Dict[str, Any]) -> bool:
    return isinstance(data.get("mqtt"), dict) and bool(data["mqtt"].get("password"))


def protect_backups(path: str, keep: int, check: bool) -> List[str]:
    """Make every backup owner-only; remove all but the newest ``keep`` (0 keeps all). Changed paths."""
    directory = os.path.dirname(os.path.abspath(path))
    prefix = os.path.basename(path) + ".bak-"
    backups = sorted(name for name in os.listdir(directory) if name.startswith(prefix)) if os.path.isdir(directory) else []
    touched: List[str] = []
    for index, name in enumerate(backups):
        full = os.path.join(directory, name)
        if not os.path.isfile(full) or os.path.islink(full):
            continue
        if keep and index < len(backups) - keep:
            touched.append(full)
            if not check:
                os.unlink(full)
        elif os.stat(full).st_mode & 0o077:
            touched.append(full)
            if not check:
                os.chmod(full, PRIVATE_MODE)
    return touched


DIRECTORY_MODE = 0o755


def ensure_directory(directory: str, owner: str, check: bool) -> List[str]:
    """The profile's directory exists with mode 0755 (and the owner, with the owner's group, if given): what changed."""
    uid = gid = -1
    if owner:
        try:
            account = pwd.getpwnam(owner)
        except KeyError:
            raise ProfileError("The profile directory's owner %r is no account on this host: create it first, or set "
                               "rhasspy_asr_profile_owner to \"\" for root." % owner) from None
        uid, gid = account.pw_uid, account.pw_gid
    try:
        st = os.stat(directory)
    except FileNotFoundError:
        if not check:
            os.makedirs(directory, DIRECTORY_MODE)
            os.chown(directory, uid, gid)
            os.chmod(directory, DIRECTORY_MODE)
        return ["created"]
    if not os.path.isdir(directory):
        raise ProfileError("The profile's directory %s exists but is not a directory: move it away, or set the profile "
                           "path to the profile Rhasspy uses." % directory)
    what = [name for name, differs in (("owner", uid not in (-1, st.st_uid) or gid not in (-1, st.st_gid)),
                                       ("mode", st.st_mode & 0o7777 != DIRECTORY_MODE)) if differs]
    if what and not check:
        os.chown(directory, uid, gid)
        os.chmod(directory, DIRECTORY_MODE)
    return what


def _seed_ids(entry: Dict[str, Any], name: str) -> Tuple[int, int, int]:
    """The seed's mode, uid and gid (-1: root's, as the module runs), refused as paths_state refuses them."""
    what = "seed " + name
    try:
        return (octal_mode(entry.get("mode", "0644"), what),
                account_id(entry["owner"], what, "owner") if entry.get("owner") else -1,
                account_id(entry["group"], what, "group") if entry.get("group") else -1)
    except PathsError as error:
        raise ProfileError(str(error)) from None


def plan_seeds(path: str, seeds: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The seeds whose file is missing in the profile's directory, each with its path, content, uid, gid and mode
    (nothing is changed). A file that is there belongs to its users, whatever it holds. Refused: a name that is no
    plain file name or given twice, an unknown account, a bad mode, a link to nothing or a non-file in the way."""
    directory = os.path.dirname(os.path.abspath(path))
    wanted: List[Dict[str, Any]] = []
    names: List[str] = []
    for entry in seeds:
        name = str(entry.get("name") or "")
        if not name or "/" in name or name in (".", "..") or name == os.path.basename(path):
            raise ProfileError("seed name %r must be the name of a file in the profile's directory %s (not empty, no '/', "
                               "not the profile itself), such as sentences.ini." % (name, directory))
        if name in names:
            raise ProfileError("seed %s is given twice: give each file once." % name)
        names.append(name)
        if not isinstance(entry.get("content"), str):
            raise ProfileError("seed %s: content must be text, got %s; give the file's text (a lookup of it)."
                               % (name, type(entry.get("content")).__name__))
        dest = os.path.join(directory, name)
        mode, uid, gid = _seed_ids(entry, name)
        want = {"path": dest, "content": entry["content"].encode("utf-8"), "mode": mode, "uid": uid, "gid": gid}
        try:
            st = os.stat(dest)
        except FileNotFoundError:
            if os.path.islink(dest):
                raise ProfileError("seed %s: %s is a link to nothing; remove it (a new one is seeded) or point it at "
                                   "the file. Nothing was changed." % (name, dest)) from None
            wanted.append(want)
            continue
        except NotADirectoryError:
            raise ProfileError("seed %s: the profile's directory %s is not a directory; move it away, or set the "
                               "profile path to the profile Rhasspy uses." % (name, directory)) from None
        if not stat.S_ISREG(st.st_mode):
            raise ProfileError("seed %s: %s exists but is not a regular file; move it away (a new one is seeded). "
                               "Nothing was changed." % (name, dest))
    return wanted


def write_seed(want: Dict[str, Any]) -> bool:
    """Write a seed atomically, only if its file is still missing: whether it was written (False: a file appeared
    meanwhile, and it is left alone)."""
    try:
        replace_file(want["path"], lambda out: out.write(want["content"]), want["mode"], want["uid"], want["gid"],
                     prefix=".seed-", exclusive=True)
    except FileExistsError:
        return False
    return True


def run(path: str, settings: Dict[str, Any], backup: bool = True, mode: int = 0o644,
        check: bool = False, mqtt_password_file: Optional[str] = None, keep_backups: int = 3,
        create_directory: bool = False, directory_owner: str = "",
        seed: Optional[List[Dict[str, Any]]] = None) -> Dict[str, Any]:
    """Merge ``settings`` into the profile at ``path`` and write the missing files of ``seed`` beside it; the result
    as the module returns it."""
    directory = os.path.dirname(os.path.abspath(path))
    directory_changes = ensure_directory(directory, directory_owner, True) if create_directory else []  # planned
    seeds = plan_seeds(path, seed or [])
    if mqtt_password_file:
        settings = copy.deepcopy(settings)
        settings.setdefault("mqtt", {})["password"] = read_password_file(mqtt_password_file)
    profile, previous = load_profile(path)
    merged, changed_keys = merge(profile, settings, path)
    if directory_changes and not check:  # only once the profile proved mergeable: a refusal changes nothing
        ensure_directory(directory, directory_owner, False)
    text = render(merged)
    changed = previous is None or merged != profile
    private = holds_password(merged) or holds_password(profile)
    if private:
        mode = PRIVATE_MODE
    mode_changed = False
    if previous is not None and private and os.stat(path).st_mode & 0o077:
        mode_changed = True
        if not check and not changed:
            os.chmod(path, PRIVATE_MODE)
    # settings_changed: what Rhasspy reads changed (it must be restarted); a repaired mode, a made or repaired
    # directory and pruned backups are changes too, but Rhasspy reads the same settings.
    result: Dict[str, Any] = {"changed": changed or mode_changed or bool(directory_changes), "changed_keys": changed_keys,
                              "settings_changed": changed, "path": path, "directory_changes": directory_changes,
                              "diff": {"before": redact(previous or ""),
                                       "after": redact(text if changed else (previous or "")),
                                       "before_header": path, "after_header": path}}
    if changed and not check:
        if not os.path.isdir(directory):  # (create_directory made it)
            raise ProfileError("The directory of the Rhasspy profile %s does not exist: create it (or set the "
                               "profile path to the profile Rhasspy uses)." % path)
        backup_file = write_profile(path, text, backup, mode, previous, private)
        if backup_file:
            result["backup_file"] = backup_file
    # (The directory exists now: the profile is in it, or was just written there.)
    result["seeded"], result["seed_diff"] = [], []
    for want in seeds:
        if check or write_seed(want):
            result["seeded"].append(want["path"])
            result["seed_diff"].append({"before": "", "after": want["content"].decode("utf-8"),
                                        "before_header": want["path"], "after_header": want["path"]})
    result["changed"] = result["changed"] or bool(result["seeded"])
    pruned = protect_backups(path, keep_backups, check)
    if pruned:
        result["changed"] = True
        result["backups_protected"] = pruned
    return result


def main() -> None:
    from ansible.module_utils.basic import AnsibleModule

    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "settings": {"type": "dict", "required": True},
            "backup": {"type": "bool", "default": True},
            "mode": {"type": "raw", "default": "0644"},
            "mqtt_password_file": {"type": "path", "no_log": False},  # a path (the password stays on the Pi)
            "keep_backups": {"type": "int", "default": 3},
            "create_directory": {"type": "bool", "default": False},
            "directory_owner": {"type": "str", "default": ""},
            "seed": {"type": "list", "elements": "dict", "default": [], "options": {
                "name": {"type": "str", "required": True},
                "content": {"type": "str", "required": True},
                "owner": {"type": "str", "default": ""},
                "group": {"type": "str", "default": ""},
                "mode": {"type": "raw", "default": "0644"}}},
        },
        supports_check_mode=True,
    )
    mode = module.params["mode"]
    mode = int(mode, 8) if isinstance(mode, str) else int(mode)
    try:
        result = run(module.params["path"], module.params["settings"], module.params["backup"], mode,
                     module.check_mode, module.params["mqtt_password_file"], module.params["keep_backups"],
                     module.params["create_directory"], module.params["directory_owner"], module.params["seed"])
    except ProfileError as exc:
        module.fail_json(msg=str(exc), changed=False)
    except OSError as exc:
        module.fail_json(msg="Rhasspy profile %s: %s" % (module.params["path"], exc))
    diffs = [result.pop("diff")] + result.pop("seed_diff")
    if module._diff:
        result["diff"] = diffs[0] if len(diffs) == 1 else diffs
    module.exit_json(**result)


if __name__ == "__main__":
    main()
