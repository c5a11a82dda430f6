"""The ``receipt`` option of the modules that make something live (python_env, systemd_units)."""
from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  receipt:
    description:
      - A file that says what the module made live (an Ansible local fact, say), written atomically (owned by the
        module's user, mode 0644, its directory made if missing) when its content or mode differs.
      - The written file is read back before it replaces the old one, and it must hold O(receipt.content) and parse as
        JSON to its value, else the module fails and the old file is left as it was.
      - Written only once what it describes is live; a failure before leaves it as it was, so it never names
        something the Pi does not run.
    type: dict
    suboptions:
      path:
        description: The file.
        type: path
        required: true
      content:
        description: Its content, a JSON document (content that is no JSON is refused before anything is written,
          also in check mode).
        type: str
        required: true
"""
