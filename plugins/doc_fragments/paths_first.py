"""The options of the modules that put a role's paths in place before their own work (health_check, systemd_units,
python_env, current_link): paths_state's, with its code (module_utils/paths.py) and its action plugin."""
from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  directories:
    description:
      - Directories to put in place first, each with C(path) (absolute), C(mode) (an octal string such as C("0755"))
        and optionally C(owner) and C(group), as for M(pivoice.voice_appliance.paths_state).
    type: list
    elements: dict
    default: []
  files:
    description:
      - Files to put in place first, each with C(dest) (absolute), C(mode), optionally C(owner) and C(group), and its
        content as C(src) (a file on the controller, found as ansible.builtin.copy finds it; sent only when the Pi lacks
        it) or C(content), with the other keys M(pivoice.voice_appliance.paths_state) takes (C(sha256), C(sha256_file),
        C(fix), C(force), C(validate)).
      - The directory of each file must exist (list it in O(directories) of the same call).
      - A file the Pi lacks is sent by the action plugin, which then runs the module again with it; only that second
        run does the module's own work.
    type: list
    elements: dict
    default: []
  staged:
    description:
      - Internal, set by the action plugin on its second call, never by a task. Per destination, the path on the Pi
        of the content the action plugin copied there.
    type: dict
    default: {}
"""
