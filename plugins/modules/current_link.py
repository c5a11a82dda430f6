#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Point a directory's ``current`` link at a proved version and prune what is kept no longer, in one call.

deepspeech_tools keeps each tools version in its own directory (``ARCH-INPUTSHASH``) beside the tarball it
was unpacked from. After a version proved itself on the Pi, ``current`` is switched to it atomically (a new
link renamed over the old one, the directory fsynced: a reader sees the old or the new version, never none).
Then the versions beyond the ones kept are removed: the current one stays, and of the others the newest
``keep`` by modification time (the install dates them: the tarball is unpacked with ``--touch``). Of the
archives (``archive_suffix``) only ``keep_files`` stay; every kept directory is complete, so its archive is
no longer needed. Hidden entries (a name starting with a dot) are never touched. Check mode predicts.
The logic is plain stdlib (importable and testable without Ansible).
"""
from __future__ import annotations

import os
import shutil
from typing import Any, Dict, List, Sequence

from ansible_collections.pivoice.voice_appliance.plugins.module_utils.durable import (VersionError, read_link, set_link,
                                                                                   version_dir)

DOCUMENTATION = r"""
---
module: current_link
short_description: Switch a directory's current link to a proved version and prune the older versions and archives.
description:
  - Points O(path)/current at O(version) atomically, then removes the version directories beyond the newest O(keep)
    others and every archive except O(keep_files).
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
author: voice appliance team
"""

EXAMPLES = r"""
- name: Switch current to the proved tools version and prune.
  pivoice.voice_appliance.current_link:
    path: /opt/voice-appliance/tools
    version: aarch64-0123456789ab
    keep: 1
    keep_files: [deepspeech-tools-aarch64-0123456789ab.tar.gz]
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
"""

LINK = "current"


class CurrentLinkError(Exception):
    """A request that cannot be followed; the message names the value and the fix."""


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
             check: bool = False) -> Dict[str, Any]:
    """Plan, and unless ``check``, carry the plan out: the module's whole work, returned as its result."""
    result = plan(path, version, keep, archive_suffix, keep_files, predict=check)
    if result["changed"] and not check:
        apply(path, result)
    return result


def main() -> None:  # pragma: no cover - exercised through Ansible in molecule and tests/test_current_link.py
    from ansible.module_utils.basic import AnsibleModule

    module = AnsibleModule(
        argument_spec={"path": {"type": "path", "required": True}, "version": {"type": "str", "required": True},
                       "keep": {"type": "int", "default": 1}, "archive_suffix": {"type": "str", "default": ".tar.gz"},
                       "keep_files": {"type": "list", "elements": "str", "default": []}},
        supports_check_mode=True)
    params = module.params
    try:
        module.exit_json(**converge(params["path"], params["version"], params["keep"], params["archive_suffix"],
                                    params["keep_files"], check=module.check_mode))
    except (CurrentLinkError, VersionError, OSError) as error:
        module.fail_json(msg=str(error))


if __name__ == "__main__":
    main()
