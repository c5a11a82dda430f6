#!/usr/bin/python
# -*- coding: utf-8 -*-
"""A system service account and its primary group, in one call on the Pi.

``ansible.builtin.group`` and ``ansible.builtin.user`` are two module runs (2-4 s each under qemu) on every converge,
for an account that almost never changes. This reads the local account files once, creates the group and the user
with shadow's own tools (groupadd, useradd) when they are missing, and repairs a user whose primary group, home,
shell or comment drifted or who lacks one of its supplementary groups (which are only ever added, as the user
module's ``append: true`` did). A supplementary group that does not exist is refused by name before anything changes.
The logic is plain stdlib (importable and testable without Ansible); ``root`` (the tools' --root, a chroot) lets the
tests work on a small copy of /etc.

The directories the account owns or uses (its home, say) are put in place in the same call, once the account exists,
as paths_state puts directories in place and with its code (module_utils/paths.py): one module run for both.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ansible_collections.pivoice.voice_appliance.plugins.module_utils.paths import PathsError
from ansible_collections.pivoice.voice_appliance.plugins.module_utils.paths import ensure as ensure_paths

DOCUMENTATION = r"""
---
module: service_account
short_description: Ensure a system group and a system user whose primary group it is, in one call.
description:
  - Reads C(/etc/passwd) and C(/etc/group). Creates the group (C(groupadd --system)) and the user (C(useradd --system
    --no-create-home)) when missing. For an existing user, repairs the primary group, home, shell and comment and adds
    the missing supplementary groups (C(usermod)); other supplementary groups are left as they are.
  - A supplementary group that does not exist is refused, naming it, before anything changes.
  - Supports check mode (reports what it would do) and diff mode.
options:
  name:
    description: The user's name.
    type: str
    required: true
  group:
    description: The user's primary group, created as a system group when missing.
    type: str
    required: true
  groups:
    description: Supplementary groups the user must be in (only added, never removed).
    type: list
    elements: str
    default: []
  home:
    description: The user's home directory (not created; the caller makes it with its owner and mode).
    type: path
    required: true
  shell:
    description: The user's login shell.
    type: path
    default: /usr/sbin/nologin
  comment:
    description: The user's comment (GECOS) field.
    type: str
    default: ""
  directories:
    description:
      - Directories to put in place once the account exists, each with C(path) (absolute), C(mode) (an octal string
        such as C("0750")) and optionally C(owner) and C(group) (the account's own names may be used), as for
        M(pivoice.voice_appliance.paths_state). Their changes are in RV(changes).
    type: list
    elements: dict
    default: []
author: voice appliance team
"""

EXAMPLES = r"""
- name: Create the service group, the unprivileged service account and its state directory.
  pivoice.voice_appliance.service_account:
    name: voice
    group: voice
    groups: [audio]
    home: /var/lib/voice-appliance
    comment: Voice appliance (DeepSpeech ASR)
    directories:
      - {path: /var/lib/voice-appliance, owner: voice, group: voice, mode: "0750"}
"""

RETURN = r"""
created:
  description: What was (or in check mode would be) created, of C(group) and C(user).
  type: list
  elements: str
  returned: always
repaired:
  description: The user's fields that were (or would be) repaired, of C(group), C(home), C(shell), C(comment), C(groups).
  type: list
  elements: str
  returned: always
changes:
  description: Per changed path of O(directories), what changed (as M(pivoice.voice_appliance.paths_state) says).
  type: dict
  returned: always
"""

Runner = Callable[[List[str]], None]


def _read(path: str) -> List[List[str]]:
    with open(path, encoding="utf-8") as handle:
        return [line.rstrip("\n").split(":") for line in handle if line.strip() and not line.startswith("#")]


def accounts(root: str = "/") -> Tuple[Dict[str, List[str]], Dict[str, List[str]]]:
    """The local users and groups by name: passwd fields, group fields (name, password, gid, members)."""
    users = {fields[0]: fields for fields in _read(os.path.join(root, "etc/passwd")) if len(fields) >= 7}
    groups = {fields[0]: fields for fields in _read(os.path.join(root, "etc/group")) if len(fields) >= 4}
    return users, groups


def _members(group: List[str]) -> List[str]:
    return [member for member in group[3].split(",") if member]


def plan(name: str, group: str, groups: Sequence[str], home: str, shell: str, comment: str,
         root: str = "/") -> Dict[str, Any]:
    """The commands that bring the account to the wanted state (none when it is there), and what they do."""
    users, known = accounts(root)
    missing = [wanted for wanted in groups if wanted not in known and wanted != group]
    if missing:
        raise ValueError("the supplementary group(s) {} of the account {!r} do not exist on this machine: create them, or "
                         "leave them out of the account's groups (deepspeech_deps_user_groups)".format(", ".join(missing), name))
    tool = (lambda command: [command] + (["--root", root] if root not in ("", "/") else []))
    commands: List[List[str]] = []
    created: List[str] = []
    repaired: List[str] = []
    if group not in known:
        commands.append(tool("groupadd") + ["--system", group])
        created.append("group")
    extra = [wanted for wanted in dict.fromkeys(groups) if wanted != group]
    user = users.get(name)
    if user is None:
        commands.append(tool("useradd") + ["--system", "--gid", group, "--home-dir", home, "--no-create-home",
                                           "--shell", shell, "--comment", comment]
                        + (["--groups", ",".join(extra)] if extra else []) + [name])
        created.append("user")
        return {"commands": commands, "created": created, "repaired": repaired, "before": {}}
    before = {"group": next((fields[0] for fields in known.values() if fields[2] == user[3]), user[3]),
              "home": user[5], "shell": user[6], "comment": user[4],
              "groups": sorted(g for g, fields in known.items() if name in _members(fields))}
    change: List[str] = []
    for field, option, wanted in (("group", "--gid", group), ("home", "--home", home), ("shell", "--shell", shell),
                                  ("comment", "--comment", comment)):
        if before[field] != wanted:
            change += [option, wanted]
            repaired.append(field)
    lacking = [wanted for wanted in extra if wanted not in before["groups"]]
    if lacking:
        change += ["--append", "--groups", ",".join(lacking)]
        repaired.append("groups")
    if change:
        commands.append(tool("usermod") + change + [name])
    return {"commands": commands, "created": created, "repaired": repaired, "before": before}


def _run(command: List[str]) -> None:
    # shadow's tools live in /usr/sbin, which a non-root login's PATH (become without a login shell) may lack.
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    command = [shutil.which(command[0], path=search) or command[0]] + command[1:]
    done = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    if done.returncode != 0:
        raise RuntimeError("{} failed ({}): {}".format(" ".join(command), done.returncode,
                                                        done.stderr.decode("utf-8", "replace").strip()))


def ensure(name: str, group: str, groups: Sequence[str], home: str, shell: str = "/usr/sbin/nologin", comment: str = "",
           check: bool = False, root: str = "/", run: Optional[Runner] = None) -> Dict[str, Any]:
    """The module's whole work: plan, then (unless check) run the commands in order."""
    steps = plan(name, group, groups, home, shell, comment, root)
    if not check:
        for command in steps["commands"]:
            (run or _run)(command)
    after = {"group": group, "home": home, "shell": shell, "comment": comment,
             "groups": sorted(set(steps["before"].get("groups", [])) | {g for g in groups if g != group})}
    return {"changed": bool(steps["commands"]), "created": steps["created"], "repaired": steps["repaired"],
            "diff": {"before": steps["before"], "after": after if steps["commands"] else steps["before"]}}


def with_directories(account: Dict[str, Any], directories: List[Dict[str, Any]], check: bool = False,
                     want_diff: bool = False) -> Dict[str, Any]:
    """The account's result with its directories put in place after it (``changes``; their diff after the account's,
    ``diff`` then a list). PathsError for a directory that cannot be put in place (an owner that does not exist)."""
    paths = ensure_paths(list(directories), [], [], {}, check, want_diff)
    diff = [account["diff"]] + ([paths["diff"]] if "diff" in paths else [])
    return dict(account, changed=account["changed"] or paths["changed"], changes=paths["changes"], diff=diff)


def main() -> None:  # pragma: no cover - exercised through Ansible (tests/test_service_account.py, molecule)
    from ansible.module_utils.basic import AnsibleModule

    module = AnsibleModule(argument_spec={
        "name": {"type": "str", "required": True},
        "group": {"type": "str", "required": True},
        "groups": {"type": "list", "elements": "str", "default": []},
        "home": {"type": "path", "required": True},
        "shell": {"type": "path", "default": "/usr/sbin/nologin"},
        "comment": {"type": "str", "default": ""},
        "directories": {"type": "list", "elements": "dict", "default": []},
    }, supports_check_mode=True)
    params: Dict[str, Any] = module.params
    try:
        result = with_directories(ensure(params["name"], params["group"], params["groups"], params["home"], params["shell"],
                                         params["comment"], check=module.check_mode),
                                  params["directories"], module.check_mode, module._diff)
    except (ValueError, RuntimeError, OSError, PathsError) as error:
        module.fail_json(msg=str(error))
    if not module._diff:
        result.pop("diff")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
