# -*- coding: utf-8 -*-
"""The controller's half of python_env: the wheels a virtualenv is built from are sent as paths_state's files are.

This is paths_state's action plugin (a subclass) with the module python_env: each wheel's ``src`` is measured here
and only its sum goes to the Pi; the module puts the wheel directories and the wheels in place, names the wheels the
Pi lacks (``transfer``) and then, if it lacks none, decides (and builds) the virtualenv. Otherwise those wheels are
copied into a private temporary directory on the Pi and the module runs again with them ``staged`` and the same
layers: that second run puts them in place and builds. A Pi that has them costs one module run. In check mode
nothing is sent.
"""
from __future__ import annotations

from ansible_collections.pivoice.voice_appliance.plugins.action.paths_state import ActionModule as PathsStateAction

MODULE = "pivoice.voice_appliance.python_env"


class ActionModule(PathsStateAction):
    """Runs python_env with the sums of the controller's wheels; sends only what the Pi lacks, then builds."""

    MODULE = MODULE
    MERGES_WORK = True
    NAME = "python_env"
    _VALID_ARGS = frozenset(("directories", "files", "link", "store", "python", "system_site_packages", "layers", "proof",
                             "keep_previous", "receipt"))
