"""Every ansible-playbook these tests start finds this checkout as the collection pivoice.voice_appliance.

The roles name the collection's modules and filters by their full names (plugins/); .collections/ holds the
link that makes the checkout that collection. A test that writes its own ansible.cfg still gets it through
the environment.
"""
from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

os.environ.setdefault("ANSIBLE_COLLECTIONS_PATH", os.pathsep.join(
    [str(REPO / ".collections"), "~/.ansible/collections", "/usr/share/ansible/collections"]))
