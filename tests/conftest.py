"""Every ansible-playbook these tests start finds this checkout as the collection pivoice.voice_appliance.

The roles name the collection's modules and filters by their full names (plugins/); .collections/ holds the
link that makes the checkout that collection. A test that writes its own ansible.cfg still gets it through
the environment.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# The modules import the collection's module_utils by its full name, as Ansible ships them to the Pi: the tests
# that load a module from its file find it through the same link.
if str(REPO / ".collections") not in sys.path:
    sys.path.insert(0, str(REPO / ".collections"))

os.environ.setdefault("ANSIBLE_COLLECTIONS_PATH", os.pathsep.join(
    [str(REPO / ".collections"), "~/.ansible/collections", "/usr/share/ansible/collections"]))
