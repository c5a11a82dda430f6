# -*- coding: utf-8 -*-
"""The controller's half of health_check: the paths the checks need are sent as paths_state's are.

This is paths_state's action plugin (a subclass) with the module health_check: each ``src`` is measured here and
only its sum goes to the Pi; the module puts the directories and files in place and names the files the Pi lacks
(``transfer``). Only then are those copied into a private temporary directory on the Pi, and the module runs again
with them ``staged`` and the same checks: that second run puts them in place and checks (the first one did not,
without the files). A Pi that has them costs one module run. In check mode nothing is sent.
"""
from __future__ import annotations

from typing import Any, Dict

from ansible_collections.pivoice.voice_appliance.plugins.action.paths_state import ActionModule as PathsStateAction

MODULE = "pivoice.voice_appliance.health_check"

# What the second run adds to the first one's result: everything but the paths' own keys, which the first run
# already says in full (every change, the sent files too, and its diff shows them as they will be).
PATHS_KEYS = frozenset(("changed", "changes", "files", "transfer", "transfer_index", "diff", "invocation", "checks_skipped"))


def merge(first: Dict[str, Any], second: Dict[str, Any]) -> Dict[str, Any]:
    """One result from the two module runs: the paths as the first run reported them, the checks and what the Pi
    decodes with from the second. The second's failure (a sum that did not arrive, a refused check) is the task's."""
    if second.get("failed"):
        return dict(second, changes=dict(first.get("changes") or {}))
    merged = {key: value for key, value in first.items() if key in PATHS_KEYS and key != "checks_skipped"}
    merged.update({key: value for key, value in second.items() if key not in PATHS_KEYS})
    merged["transfer"], merged["transfer_index"] = [], []
    return merged


class ActionModule(PathsStateAction):
    """Runs health_check with the sums of the controller's files; sends only what the Pi lacks, then checks."""

    MODULE = MODULE
    NAME = "health_check"
    _VALID_ARGS = frozenset(("directories", "files", "checks", "model_dir", "scorer"))

    def _merge(self, first: Dict[str, Any], second: Dict[str, Any]) -> Dict[str, Any]:
        return merge(first, second)
