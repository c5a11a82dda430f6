# -*- coding: utf-8 -*-
"""The controller's half of systemd_units: the files a role's units use are sent as paths_state's are.

This is paths_state's action plugin (a subclass) with the module systemd_units: each ``src`` is measured here and
only its sum goes to the Pi; the module puts the directories and files in place, names the files the Pi lacks
(``transfer``) and then, if it lacks none, installs the units. Otherwise those files are copied into a private
temporary directory on the Pi and the module runs again with them ``staged`` and the same units: that second run
puts them in place and installs the units. A Pi that has them costs one module run. In check mode nothing is sent.
"""
from __future__ import annotations

from typing import Any, Dict

from ansible_collections.pivoice.voice_appliance.plugins.action.paths_state import ActionModule as PathsStateAction

MODULE = "pivoice.voice_appliance.systemd_units"


def merge(first: Dict[str, Any], second: Dict[str, Any]) -> Dict[str, Any]:
    """One result from the two module runs: the changes of both (the paths from the first, the sent files and the
    units from the second), the units' result from the second, both diffs. The second's failure (a sum that did not
    arrive, a refused unit) is the task's, with the first's changes (they were made)."""
    if second.get("failed"):
        return dict(second, changes=dict(first.get("changes") or {}, **(second.get("changes") or {})))
    changes = dict(first.get("changes") or {}, **(second.get("changes") or {}))
    merged = dict(second, changed=bool(changes), changes=changes, files=first.get("files", []), transfer=[])
    if "diff" in first or "diff" in second:
        merged["diff"] = list(first.get("diff") or []) + list(second.get("diff") or [])
    return merged


class ActionModule(PathsStateAction):
    """Runs systemd_units with the sums of the controller's files; sends only what the Pi lacks, then installs the units."""

    MODULE = MODULE
    NAME = "systemd_units"
    _VALID_ARGS = frozenset(("directories", "files", "absent", "units", "started", "restarted", "stopped", "directory", "receipt"))

    def _merge(self, first: Dict[str, Any], second: Dict[str, Any]) -> Dict[str, Any]:
        return merge(first, second)
