# -*- coding: utf-8 -*-
"""The controller's half of current_link: a version's archive is sent as paths_state's files are.

This is paths_state's action plugin (a subclass) with the module current_link: the archive's ``src`` is measured
here and only its sum goes to the Pi; the module puts the version's directories and its archive in place, names
the archive if the Pi lacks it (``transfer``) and then, if it lacks nothing, unpacks, proves and switches.
Otherwise the archive is copied into a private temporary directory on the Pi and the module runs again with it
``staged``: that second run puts it in place, unpacks, proves and switches. A Pi that has it costs one module run.
In check mode nothing is sent.
"""
from __future__ import annotations

from ansible_collections.pivoice.voice_appliance.plugins.action.paths_state import ActionModule as PathsStateAction

MODULE = "pivoice.voice_appliance.current_link"


class ActionModule(PathsStateAction):
    """Runs current_link with the sum of the controller's archive; sends it only when the Pi lacks it, then switches."""

    MODULE = MODULE
    MERGES_WORK = True
    NAME = "current_link"
    _VALID_ARGS = frozenset(("directories", "files", "path", "version", "keep", "archive_suffix", "keep_files", "proof",
                             "proof_timeout", "unpack"))
