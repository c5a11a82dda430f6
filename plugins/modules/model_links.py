#!/usr/bin/python
# -*- coding: utf-8 -*-
"""The one owner of the model links: ``current`` (the version the appliance runs) and ``previous`` (the
rollback target), below the models directory.

* ``action=switch version=V`` (deepspeech_model, after V was proved on the Pi): ``previous`` keeps the
  version ``current`` pointed at (when it is another one), ``current`` points at V; then the versions
  beyond the ones kept (current, previous and the newest ``keep - 1`` others) are removed. With
  ``require_marker`` (the staged files, as model_marker takes them) it first checks V's ``.verified`` marker
  by model_marker's code (module_utils/durable.py's ``marker_holds``) and switches only if the marker vouches
  for those files; otherwise it changes nothing and says why (``verified``, ``reason``, ``current_target``,
  as model_marker does). On a converged Pi the role's look-up and switch are then one module run.
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
from typing import Any, Dict, List, Optional

from ansible_collections.pivoice.voice_appliance.plugins.module_utils.durable import (MARKER, VersionError, fsync_dir,
                                                                                   marker_files_error, marker_holds,
                                                                                   read_link, set_link, version_dir)

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
  require_marker:
    description:
      - With C(switch), the files of O(version) as model_marker's C(files) takes them (per file kind a dict with
        C(name) or C(path), C(checksum) and C(size)). The switch happens only if the version's C(.verified) marker
        vouches for them (the check of model_marker C(state=query)); otherwise nothing changes and C(verified) is false.
      - Not given, the switch does not look at the marker (the version was just proved).
    type: dict
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

- name: Switch to this version if a verified copy of it is installed (a converged Pi).
  pivoice.voice_appliance.model_links:
    models_dir: /opt/voice-appliance/models
    action: switch
    version: german-0.7.4-0123abcd
    keep: 1
    require_marker:
      tflite: {name: output_graph.tflite, checksum: 0123abcd, size: 47331784}
  register: model_switched
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
verified:
  description: With O(require_marker), whether the marker vouches for the files (false - nothing was changed).
  type: bool
  returned: with require_marker
reason:
  description: With O(require_marker), why the marker is not trusted ("" when it is), as model_marker says it.
  type: str
  returned: with require_marker
current_target:
  description: With O(require_marker), where C(current) pointed before ("" when it is no link), as model_marker reports it.
  type: str
  returned: with require_marker
"""

LINKS = ("current", "previous")


class LinksError(Exception):
    """A request the links cannot follow; the message names the value and the fix."""


def plan(models_dir: str, action: str, version: str = "", keep: int = 0, current: str = "",
         previous: str = "", require_marker: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """What the action does: the links afterwards, what is pruned and unmarked. Changes nothing. With
    ``require_marker`` (switch only) a version whose marker does not vouch for those files is no switch: the plan
    changes nothing and says why."""
    before = {"current": read_link(models_dir, "current"), "previous": read_link(models_dir, "previous")}
    unverified = gone = ""
    marker: Dict[str, Any] = {}
    if require_marker is not None:
        if action != "switch":
            raise LinksError("require_marker goes with action=switch only (it names the files of the version switched to); "
                             "got action={}. Leave require_marker out.".format(action))
        problem = marker_files_error(require_marker, "require_marker")
        if problem:
            raise LinksError(problem)
        # A version not copied yet (a dry run of a new one, a fresh Pi) has no marker: that is an answer, no error.
        verified, reason = marker_holds(version_dir(models_dir, version, "version", LINKS, predict=True), require_marker)
        marker = {"verified": verified, "reason": reason, "current_target": before["current"]}
        if not verified:
            return dict(marker, before=before, current=before["current"], previous=before["previous"], removed=[],
                        unverified="", previous_gone="", changed=False)
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
    return dict(marker, before=before, current=after["current"], previous=after["previous"], removed=removed,
                unverified=unverified, previous_gone=gone, changed=changed)


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
                       "current": {"type": "str", "default": ""}, "previous": {"type": "str", "default": ""},
                       "require_marker": {"type": "dict"}},
        required_if=[("action", "switch", ["version"]), ("action", "restore", ["current"])],
        supports_check_mode=True)
    params = module.params
    try:
        result = plan(params["models_dir"], params["action"], params["version"] or "", params["keep"],
                      params["current"] or "", params["previous"] or "", params["require_marker"])
        if result["changed"] and not module.check_mode:
            apply(params["models_dir"], result)
    except (LinksError, VersionError, OSError) as error:
        module.fail_json(msg=str(error))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
