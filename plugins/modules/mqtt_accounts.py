#!/usr/bin/python
# -*- coding: utf-8 -*-
"""The MQTT accounts of the voice appliance: one root-only password file per account, and
Mosquitto's password file (PBKDF2-SHA512 hashes, written here: no password on a command line).

The logic is plain stdlib (importable and testable without Ansible); ``main()`` wraps it as the
Ansible module ``mqtt_accounts``. No password is ever returned or logged.
"""
from __future__ import annotations

import base64
import grp
import hashlib
import hmac
import os
import re
import secrets
from typing import Any, Dict, List, Optional, Sequence

from ansible_collections.pivoice.voice_appliance.plugins.module_utils.durable import replace_file

DOCUMENTATION = r"""
---
module: mqtt_accounts
short_description: Keep the MQTT accounts' passwords in root-only files and Mosquitto's password file.
description:
  - Each account's password lives in I(secret_dir)/NAME.password (mode 0600, root; the directory 0700).
    A given I(password) is written there; otherwise a random one is generated once, on the first run, and
    kept across runs (a new one only with I(regenerate)).
  - With I(passwd_file), Mosquitto's password file holds exactly the accounts with C(broker=true), hashed
    with PBKDF2-SHA512 in Mosquitto's C($7$) format; it is rewritten only when a line no longer verifies.
  - Files of accounts no longer listed are removed from I(secret_dir).
options:
  secret_dir:
    description: Directory of the password files (made 0700 root).
    type: path
    required: true
  accounts:
    description:
      - "The accounts: C(name), optional C(password) (else generated), C(broker) (in Mosquitto's file, default true),"
      - "C(group): a group that may read this account's file (mode 0640; the directory then 0711), for a service that
        cannot be given its password as a systemd credential; default none (0600)."
    type: list
    elements: dict
    required: true
  passwd_file:
    description: Mosquitto's password file ("" = none, e.g. an external broker).
    type: path
    default: ""
  passwd_group:
    description: Group that may read I(passwd_file) (mode 0640).
    type: str
    default: mosquitto
  regenerate:
    description: Generate new passwords for the accounts without a given one.
    type: bool
    default: false
author: voice appliance team
"""

RETURN = r"""
changed_accounts:
  description: Names of the accounts whose password file was written.
  type: list
  returned: always
passwd_changed:
  description: Whether Mosquitto's password file was (or would be) written.
  type: bool
  returned: always
"""

ITERATIONS = 101  # mosquitto_passwd's default; generated passwords are 192-bit random anyway
SALT_BYTES = 12
NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class AccountError(Exception):
    """Bad input: the message names the value and the fix."""


def hash_password(password: str, salt: Optional[bytes] = None, iterations: int = ITERATIONS) -> str:
    """Mosquitto's ``$7$iterations$salt$hash`` (PBKDF2-HMAC-SHA512, base64)."""
    salt = salt if salt is not None else secrets.token_bytes(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations)
    return "$7$%d$%s$%s" % (iterations, base64.b64encode(salt).decode("ascii"),
                            base64.b64encode(digest).decode("ascii"))


def verify_password(password: str, encoded: str) -> bool:
    """Whether ``encoded`` (a ``$7$`` hash) is the hash of ``password``."""
    parts = encoded.split("$")
    if len(parts) != 5 or parts[0] != "" or parts[1] != "7":
        return False
    try:
        iterations = int(parts[2])
        salt = base64.b64decode(parts[3], validate=True)
        expected = base64.b64decode(parts[4], validate=True)
    except ValueError:
        return False
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations)
    return hmac.compare_digest(digest, expected)


def parse_passwd(text: str) -> Dict[str, str]:
    """Mosquitto password file lines ``user:hash`` as a dict."""
    entries: Dict[str, str] = {}
    for line in text.splitlines():
        if line.strip() and not line.startswith("#") and ":" in line:
            user, encoded = line.split(":", 1)
            entries[user] = encoded
    return entries


def check_accounts(accounts: Sequence[Dict[str, Any]]) -> None:
    seen = set()
    for account in accounts:
        name = account.get("name") or ""
        if not NAME.match(name):
            raise AccountError("MQTT account name %r: use 1-64 letters, digits, '.', '_' or '-'" % name)
        if name in seen:
            raise AccountError("MQTT account %s is listed twice: give each account once" % name)
        seen.add(name)
        password = account.get("password") or ""
        if password and (len(password) > 256 or any(c in password for c in "\r\n\0")):
            raise AccountError("the MQTT password of account %s holds a line break or NUL (or is longer than 256 "
                               "characters): choose another" % name)


def _write(path: str, text: str, mode: int, uid: int = 0, gid: int = 0) -> None:
    """Write atomically with ``mode`` and owner (root unless not run as root)."""
    root = os.geteuid() == 0
    replace_file(path, lambda handle: handle.write(text.encode("utf-8")), mode, uid if root else -1, gid if root else -1,
                 prefix=".tmp-")


def _read(path: str) -> Optional[str]:
    try:
        with open(path, "r", encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def _fix_owner_mode(path: str, mode: int, uid: int, gid: int, check: bool) -> bool:
    info = os.stat(path)
    wrong = (info.st_mode & 0o7777) != mode or (os.geteuid() == 0 and (info.st_uid, info.st_gid) != (uid, gid))
    if wrong and not check:
        os.chmod(path, mode)
        if os.geteuid() == 0:
            os.chown(path, uid, gid)
    return wrong


def _gid(group: str, check: bool) -> Optional[int]:
    """The group's id (None for none; -1 in check mode when it does not exist yet)."""
    if not group:
        return None
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        if check:
            return -1
        raise AccountError("group %r does not exist: create it first (or give the account no group)" % group)


def run(secret_dir: str, accounts: Sequence[Dict[str, Any]], passwd_file: str = "", passwd_group: str = "mosquitto",
        regenerate: bool = False, check: bool = False) -> Dict[str, Any]:
    """Bring the password files in line; the result as the module returns it (no passwords)."""
    check_accounts(accounts)
    if not os.path.isabs(secret_dir):
        raise AccountError("secret_dir %r must be an absolute path" % secret_dir)
    changed = False
    groups = {account["name"]: _gid(account.get("group") or "", check) for account in accounts}
    dir_mode = 0o711 if any(gid is not None for gid in groups.values()) else 0o700
    if not os.path.isdir(secret_dir):
        changed = True
        if not check:
            os.makedirs(secret_dir, mode=dir_mode)
    if os.path.isdir(secret_dir):
        changed |= _fix_owner_mode(secret_dir, dir_mode, 0, 0, check)

    passwords: Dict[str, str] = {}
    changed_accounts: List[str] = []
    for account in accounts:
        name = account["name"]
        path = os.path.join(secret_dir, name + ".password")
        current = _read(path)
        current_password = current.splitlines()[0] if current else ""
        wanted = account.get("password") or ""
        if not wanted:
            wanted = current_password if current_password and not regenerate else secrets.token_urlsafe(24)
        passwords[name] = wanted
        gid = groups[name]
        mode, owner_gid = (0o600, 0) if gid is None else (0o640, max(gid, 0))
        if current != wanted + "\n":
            changed_accounts.append(name)
            if not check:
                _write(path, wanted + "\n", mode, 0, owner_gid)
        elif _fix_owner_mode(path, mode, 0, owner_gid, check):
            changed = True

    listed = {account["name"] + ".password" for account in accounts}
    if os.path.isdir(secret_dir):
        for entry in sorted(os.listdir(secret_dir)):
            if entry.endswith(".password") and entry not in listed:
                changed = True
                if not check:
                    os.unlink(os.path.join(secret_dir, entry))

    passwd_changed = False
    if passwd_file:
        broker = [a["name"] for a in accounts if a.get("broker", True)]
        previous = _read(passwd_file)
        entries = parse_passwd(previous or "")
        passwd_changed = previous is None or set(entries) != set(broker) or not all(
            name not in changed_accounts and verify_password(passwords[name], entries[name]) for name in broker)
        try:
            gid = grp.getgrnam(passwd_group).gr_gid
        except KeyError:
            if not check:
                raise AccountError("group %r does not exist: install Mosquitto first (or set passwd_group)"
                                   % passwd_group)
            gid, passwd_changed = -1, True  # check mode before Mosquitto is installed
        if passwd_changed or gid < 0:
            if not check:
                text = "".join("%s:%s\n" % (name, hash_password(passwords[name])) for name in broker)
                _write(passwd_file, text, 0o640, 0, gid)
        elif _fix_owner_mode(passwd_file, 0o640, 0, gid, check):
            changed = True

    return {"changed": changed or bool(changed_accounts) or passwd_changed,
            "changed_accounts": changed_accounts, "passwd_changed": passwd_changed}


def main() -> None:
    from ansible.module_utils.basic import AnsibleModule

    module = AnsibleModule(
        argument_spec={
            "secret_dir": {"type": "path", "required": True},
            "accounts": {"type": "list", "elements": "dict", "required": True, "no_log": False,
                         "options": {"name": {"type": "str", "required": True},
                                     "password": {"type": "str", "default": "", "no_log": True},
                                     "broker": {"type": "bool", "default": True},
                                     "group": {"type": "str", "default": ""}}},
            "passwd_file": {"type": "path", "default": ""},
            "passwd_group": {"type": "str", "default": "mosquitto"},
            "regenerate": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    try:
        result = run(module.params["secret_dir"], module.params["accounts"], module.params["passwd_file"] or "",
                     module.params["passwd_group"], module.params["regenerate"], module.check_mode)
    except AccountError as exc:
        module.fail_json(msg=str(exc), changed=False)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
