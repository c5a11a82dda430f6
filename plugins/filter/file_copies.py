"""Filters that make paths_state ``files`` entries, so that a single paths_state call carries a role's copies.

``file_copies``: a list of file names copied from one directory on the controller into one directory on the Pi (a
role's wheels). ``checked_copies``: controller files known by their path and sha256 (a staged model's files), each
copied into one directory on the Pi under its own name and refused by the action plugin unless it still has that
sum."""
from __future__ import annotations

import os
from typing import Any, Callable, Dict, Iterable, List, Mapping

from ansible.errors import AnsibleFilterError

from ansible_collections.pivoice.voice_appliance.plugins.module_utils.durable import is_sha256


def file_copies(names: Iterable[Any], src_dir: str, dest_dir: str, owner: str = "root", group: str = "root",
                mode: str = "0644") -> List[Dict[str, str]]:
    """One entry per name: src_dir/name on the controller to dest_dir/name on the Pi, with owner, group and mode."""
    if isinstance(names, (str, bytes)) or not isinstance(names, Iterable):
        raise AnsibleFilterError("file_copies: expects a list of file names, got {!r}".format(names))
    entries: List[Dict[str, str]] = []
    for name in names:
        text = str(name)
        if not text or "/" in text or text in (".", ".."):
            raise AnsibleFilterError("file_copies: {!r} is not a file name (no directories; the directories are "
                                     "{} and {})".format(text, src_dir, dest_dir))
        entries.append({"src": "{}/{}".format(str(src_dir).rstrip("/"), text), "dest": "{}/{}".format(str(dest_dir).rstrip("/"), text),
                        "owner": owner, "group": group, "mode": mode})
    return entries


def checked_copies(files: Any, dest_dir: str, fix: str = "", owner: str = "root", group: str = "root",
                   mode: str = "0644") -> List[Dict[str, str]]:
    """One entry per file ({path, checksum}, as staged_artifact or ansible.builtin.stat give them; a mapping's values
    are taken): src its path, dest dest_dir/ITS_NAME, sha256 its checksum (the action plugin refuses a src that no
    longer has it, before anything on the Pi changes, ``fix`` ending the message), with owner, group and mode."""
    specs = list(files.values()) if isinstance(files, Mapping) else files
    if isinstance(specs, (str, bytes)) or not isinstance(specs, Iterable):
        raise AnsibleFilterError("checked_copies: expects a list (or a mapping) of {{path, checksum}}, got {!r}".format(files))
    entries: List[Dict[str, str]] = []
    for spec in specs:
        if not isinstance(spec, Mapping) or not spec.get("path") or not is_sha256(str(spec.get("checksum") or "").lower()):
            raise AnsibleFilterError("checked_copies: {!r} is not a controller file with its sha256; each needs path and checksum "
                                     "(64 hexadecimal digits)".format(spec))
        name = os.path.basename(str(spec["path"]))
        dest = "{}/{}".format(str(dest_dir).rstrip("/"), name)
        if any(entry["dest"] == dest for entry in entries):
            raise AnsibleFilterError("checked_copies: two files are named {} ({} and {}); each needs a name of its own in {}".format(
                name, next(e["src"] for e in entries if e["dest"] == dest), spec["path"], dest_dir))
        entries.append({"src": str(spec["path"]), "dest": dest, "sha256": str(spec["checksum"]).lower(), "fix": str(fix or ""),
                        "owner": owner, "group": group, "mode": mode})
    return entries


class FilterModule:
    def filters(self) -> Dict[str, Callable[..., Any]]:
        return {"file_copies": file_copies, "checked_copies": checked_copies}
