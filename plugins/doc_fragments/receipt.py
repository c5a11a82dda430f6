"""The ``receipt`` option of the modules that make something live (python_env, systemd_units)."""
from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  receipt:
    description:
      - A file that says what the module made live (an Ansible local fact, say), written atomically (owned by the
        module's user, mode 0644, its directory made if missing) when its content or mode differs.
      - Written only once what it describes is live; a failure before leaves it as it was, so it never names
        something the Pi does not run.
    type: dict
    suboptions:
      path:
        description: The file.
        type: path
        required: true
      content:
        description: Its content.
        type: str
        required: true
"""
