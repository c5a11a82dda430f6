# -*- coding: utf-8 -*-
"""The controller's half of systemd_units: the files a role's units use are sent as paths_state's are.

This is paths_state's action plugin (a subclass) with the module systemd_units: each ``src`` is measured here and
only its sum goes to the Pi; the module puts the directories and files in place, names the files the Pi lacks
(``transfer``) and then, if it lacks none, installs the units. Otherwise those files are copied into a private
temporary directory on the Pi and the module runs again with them ``staged`` and the same units: that second run
puts them in place and installs the units. A Pi that has them costs one module run. In check mode nothing is sent.
"""
from __future__ import annotations

from typing import Any, Dict, List

from ansible_collections.pivoice.voice_appliance.plugins.action.paths_state import ActionModule as PathsStateAction

MODULE = "pivoice.voice_appliance.systemd_units"


class ActionModule(PathsStateAction):
    """Runs systemd_units with the sums of the controller's files; sends only what the Pi lacks, then installs the units."""

    MODULE = MODULE
    MERGES_WORK = True
    NAME = "systemd_units"
    _VALID_ARGS = frozenset(("directories", "files", "absent", "units", "started", "restarted", "restart_on", "stopped",
                             "directory", "receipt"))

    def _second_args(self, args: Dict[str, Any], wire: List[Dict[str, Any]], staged: Dict[str, str],
                     first: Dict[str, Any]) -> Dict[str, Any]:
        """The units as the task gave them, with the restarts the first run's changes call for (the second run sees
        only the sent files' changes)."""
        second = super()._second_args(args, wire, staged, first)
        second["restarted"] = list(dict.fromkeys(list(second.get("restarted") or []) + list(first.get("restarts_due") or [])))
        return second
