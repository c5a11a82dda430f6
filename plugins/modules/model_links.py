#!/usr/bin/python
# -*- coding: utf-8 -*-
"""The one owner of the model links: ``current`` (the version the appliance runs) and ``previous`` (the
rollback target), below the models directory.

* ``action=switch version=V`` (deepspeech_model, after V was proved on the Pi): ``previous`` keeps the
  version ``current`` pointed at (when it is another one), ``current`` points at V; then the versions
  beyond the ones kept (current, previous and the newest ``keep - 1`` others) are removed.
* ``action=rollback`` (playbooks/rollback.yml): ``current`` and ``previous`` swap, only if ``previous``
  is a verified version (its ``.verified`` marker exists), so a second rollback undoes the first.
* ``action=restore current=C previous=P`` (voice_verify, after a failed rollout): the links go back to
  the remembered versions; the version switched away from loses its ``.verified`` marker (it failed), but
  stays on disk for a look.

Every link is replaced atomically (a new link beside it renamed over it, then the directory fsynced):
readers see the old or the new version, never none. Versions are names inside the models directory;
anything else is refused. The logic is plain stdlib (importable and testable without Ansible).
"""
from __future__ import annotations

import os
import shutil
from typing import Any, Dict, List

from ansible_collections.pivoice.voice_appliance.plugins.module_utils.durable import (VersionError, fsync_dir, read_link,
                                                                                   set_link, version_dir)

DOCUMENTATION = r"""
---
module: model_links
short_description: Switch, roll back or restore the model links current and previous (atomically).
description:
  - The only code that changes the C(current) and C(previous) links of the models directory.
options:
  models_dir:
    description: The directory holding the model versions (NAME-VERSION-HASH directories) and the links.
    type: path
    required: true
  action:
    description:
      - C(switch) points C(current) at O(version) and keeps the version it pointed at as C(previous), then prunes.
      - C(rollback) swaps C(current) and C(previous) if C(previous) is verified.
      - C(restore) points the links at O(current) and O(previous) and unmarks the version switched away from.
    type: str
    choices: [switch, rollback, restore]
    required: true
  version:
    description: The version C(switch) makes current (a directory name in O(models_dir)).
    type: str
  keep:
    description: With C(switch), versions kept besides C(current) and C(previous) are the newest O(keep) - 1; 0 keeps all.
    type: int
    default: 0
  current:
    description: The version C(restore) makes current.
    type: str
  previous:
    description: The version C(restore) makes previous ("" removes the link, as does a version that no longer exists).
    type: str
    default: ""
author: voice appliance team
"""

EXAMPLES = r"""
- name: Switch to the proved version.
  pivoice.voice_appliance.model_links:
    models_dir: /opt/voice-appliance/models
    action: switch
    version: german-0.7.4-0123abcd
    keep: 1
"""

RETURN = r"""
current:
  description: Where C(current) points afterwards.
  type: str
previous:
  description: Where C(previous) points afterwards ("" when there is none).
  type: str
before:
  description: The links before (C(current), C(previous)).
  type: dict
removed:
  description: The versions removed by pruning (names).
  type: list
  elements: str
unverified:
  description: The version whose C(.verified) marker C(restore) removed ("" when none).
  type: str
previous_gone:
  description: With C(restore), the remembered previous version that no longer exists (pruned); C(previous) is then removed.
  type: str
"""

MARKER = ".verified"
LINKS = ("current", "previous")


class LinksError(Exception):
    """A request the links cannot follow; the message names the value and the fix."""


def plan(models_dir: str, action: str, version: str = "", keep: int = 0, current: str = "",
         previous: str = "") -> Dict[str, Any]:
    """What the action does: the links afterwards, what is pruned and unmarked. Changes nothing."""
    before = {"current": read_link(models_dir, "current"), "previous": read_link(models_dir, "previous")}
    unverified = gone = ""
    if action == "switch":
        version_dir(models_dir, version, "version", LINKS)
        after = {"current": version,
                 "previous": before["current"] if before["current"] and before["current"] != version else before["previous"]}
    elif action == "rollback":
        if not before["previous"] or not os.path.isfile(os.path.join(models_dir, before["previous"], MARKER)):
            raise LinksError("there is no verified previous model version in {} to roll back to (previous: {}); it keeps {}. "
                             "Nothing was changed.".format(models_dir, before["previous"] or "none", before["current"] or "no model"))
        after = {"current": before["previous"], "previous": before["current"]}
    elif action == "restore":
        version_dir(models_dir, current, "current", LINKS)
        if previous:
            try:
                version_dir(models_dir, previous, "previous", LINKS)
            except VersionError:
                # Pruned meanwhile (the switch keeps current, previous and keep - 1 others): no link to nothing.
                gone = previous
                previous = ""
        after = {"current": current, "previous": previous}
        switched_from = before["current"]
        if switched_from and switched_from != current and "/" not in switched_from \
                and os.path.isfile(os.path.join(models_dir, switched_from, MARKER)):
            unverified = switched_from
    else:
        raise LinksError("action must be switch, rollback or restore; got {!r}".format(action))
    removed: List[str] = []
    if action == "switch" and keep > 0:
        kept = {after["current"], after["previous"]}
        others = [entry for entry in os.scandir(models_dir)
                  if entry.is_dir(follow_symlinks=False) and not entry.name.startswith(".") and entry.name not in kept]
        others.sort(key=lambda entry: entry.stat(follow_symlinks=False).st_mtime, reverse=True)
        removed = sorted(entry.name for entry in others[keep - 1:])
    changed = after != before or bool(removed) or bool(unverified)
    return {"before": before, "current": after["current"], "previous": after["previous"], "removed": removed,
            "unverified": unverified, "previous_gone": gone, "changed": changed}


def apply(models_dir: str, result: Dict[str, Any]) -> None:
    """Carry out a plan: previous first (the rollback target is never lost), then current, then the rest."""
    if result["unverified"]:
        os.unlink(os.path.join(models_dir, result["unverified"], MARKER))
        fsync_dir(os.path.join(models_dir, result["unverified"]))
    set_link(models_dir, "previous", result["previous"])
    set_link(models_dir, "current", result["current"])
    for name in result["removed"]:
        shutil.rmtree(os.path.join(models_dir, name))


def main() -> None:  # pragma: no cover - exercised through Ansible in molecule
    from ansible.module_utils.basic import AnsibleModule

    module = AnsibleModule(
        argument_spec={"models_dir": {"type": "path", "required": True},
                       "action": {"type": "str", "required": True, "choices": ["switch", "rollback", "restore"]},
                       "version": {"type": "str", "default": ""}, "keep": {"type": "int", "default": 0},
                       "current": {"type": "str", "default": ""}, "previous": {"type": "str", "default": ""}},
        required_if=[("action", "switch", ["version"]), ("action", "restore", ["current"])],
        supports_check_mode=True)
    params = module.params
    try:
        result = plan(params["models_dir"], params["action"], params["version"] or "", params["keep"],
                      params["current"] or "", params["previous"] or "")
        if result["changed"] and not module.check_mode:
            apply(params["models_dir"], result)
    except (LinksError, VersionError, OSError) as error:
        module.fail_json(msg=str(error))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
