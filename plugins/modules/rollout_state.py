#!/usr/bin/python
# -*- coding: utf-8 -*-
"""The working state a rollout comes back to, kept on the Pi until the Pi verified (or was restored).

Before a rollout changes a Pi, ``state=remembered`` records which model version ``current`` and
``previous`` point at and the sha256 of the generated scorer, in a root-only file beside the models
(written atomically and fsynced). The record is removed (``state=absent``) once the Pi passed its
verification or was restored. A Pi that became unreachable in between keeps the record: the next
rollout finds it, takes the recorded state (not the half-changed one it finds) as the state to come
back to, and says that it resumes an interrupted rollout.

The logic is plain stdlib (importable and testable without Ansible); ``main()`` wraps it.
"""
from __future__ import annotations

import json
import os
import time
from typing import Any, Dict, Optional

from ansible_collections.pivoice.voice_appliance.plugins.module_utils.durable import replace_file, sha256_file

DOCUMENTATION = r"""
---
module: rollout_state
short_description: Remember (on the Pi) the model and scorer a rollout comes back to; forget it after.
options:
  record:
    description: The record file (in a root-owned directory).
    type: path
    required: true
  models_dir:
    description: The directory holding the model versions and the C(current)/C(previous) links.
    type: path
    required: true
  scorer:
    description: The generated scorer in use.
    type: path
    required: true
  state:
    description: C(remembered) records the state (or returns the record of an interrupted rollout);
      C(absent) removes the record.
    type: str
    choices: [remembered, absent]
    default: remembered
author: voice appliance team
"""

RETURN = r"""
model:
  description: Where C(current) pointed ("" when it was no link).
  type: str
previous:
  description: Where C(previous) pointed ("" when there was none).
  type: str
scorer_sha256:
  description: sha256 of the generated scorer ("" when there was none).
  type: str
since:
  description: When the state was recorded (UTC, ISO 8601).
  type: str
resumed:
  description: The record was left by an earlier rollout that never finished on this Pi.
  type: bool
"""

FIELDS = ("model", "previous", "scorer_sha256", "since")


def _link(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return ""


def _sha256(path: str) -> str:
    try:
        return sha256_file(path, follow=False)
    except OSError:
        return ""


def observe(models_dir: str, scorer: str) -> Dict[str, str]:
    """The state on the Pi now."""
    return {"model": _link(os.path.join(models_dir, "current")),
            "previous": _link(os.path.join(models_dir, "previous")),
            "scorer_sha256": _sha256(scorer),
            "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def load(record: str) -> Optional[Dict[str, str]]:
    """The record of an interrupted rollout, or None (no record, or one that is not a record: ignored)."""
    try:
        fd = os.open(record, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in FIELDS):
        return None
    return {k: data[k] for k in FIELDS}


def save(record: str, state: Dict[str, str]) -> None:
    """Write the record atomically and durably, readable by root only."""
    text = json.dumps(state, indent=2, sort_keys=True) + "\n"
    replace_file(record, lambda handle: handle.write(text.encode("utf-8")), 0o600, prefix=".rollout-state.")


def remember(record: str, models_dir: str, scorer: str, write: bool = True) -> Dict[str, Any]:
    """The state to come back to: an interrupted rollout's record, else the state now (recorded)."""
    earlier = load(record)
    if earlier is not None:
        return dict(earlier, resumed=True, changed=False)
    now = observe(models_dir, scorer)
    if write:
        save(record, now)
    return dict(now, resumed=False, changed=True)


def forget(record: str, write: bool = True) -> bool:
    if not os.path.lexists(record):
        return False
    if write:
        os.unlink(record)
    return True


def main() -> None:  # pragma: no cover - exercised through Ansible in molecule
    from ansible.module_utils.basic import AnsibleModule

    module = AnsibleModule(
        argument_spec={
            "record": {"type": "path", "required": True},
            "models_dir": {"type": "path", "required": True},
            "scorer": {"type": "path", "required": True},
            "state": {"type": "str", "choices": ["remembered", "absent"], "default": "remembered"},
        },
        supports_check_mode=True,
    )
    params = module.params
    try:
        if params["state"] == "absent":
            module.exit_json(changed=forget(params["record"], not module.check_mode))
        result = remember(params["record"], params["models_dir"], params["scorer"], not module.check_mode)
    except OSError as exc:
        module.fail_json(msg="cannot keep the rollout state in %s: %s" % (params["record"], exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
