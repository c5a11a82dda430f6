#!/usr/bin/python
# -*- coding: utf-8 -*-
"""What a Pi decodes with now, read in one call: the model version `current` points to, the sums its
`.verified` marker names, and the live scorer's sha256 and modification time.

Verification used to read these with a ``slurp`` and two ``stat`` tasks (three round trips to the Pi, about
1.5 s each under qemu). Read-only; a missing or unreadable marker or scorer is reported, not an error (the
fleet report leaves those fields empty). The logic is plain stdlib (importable and testable without Ansible).
"""
from __future__ import annotations

import json
import os
from typing import Any, Callable, Dict

DOCUMENTATION = r"""
---
module: installed_state
short_description: Read the current model version, its verified sums and the live scorer's sha256 in one call.
description:
  - Reads where the model directory (normally the C(current) link) points, the C(.verified) marker in it, and the
    sha256 and modification time of the scorer. Changes nothing; supports check mode.
options:
  model_dir:
    description: The directory of the model the Pi decodes with (normally C(MODELS/current)).
    type: path
    required: true
  scorer:
    description: The scorer the Pi decodes with; empty when it decodes without one.
    type: path
    default: ""
author: voice appliance team
"""

RETURN = r"""
model_id:
  description: The name of the version directory (the link's target, or the directory's own name).
  type: str
  returned: always
model_sums:
  description: The marker's sums per file kind; empty when there is no readable marker (see C(model_sums_error)).
  type: dict
  returned: always
scorer:
  description: C(exists), C(sha256) and C(mtime) of the scorer.
  type: dict
  returned: always
"""


def read(model_dir: str, scorer: str, sha256: Callable[[str], str]) -> Dict[str, Any]:
    """``sha256`` hashes a file (the module passes AnsibleModule.sha256)."""
    model_dir = model_dir.rstrip("/") or "/"
    target = os.readlink(model_dir) if os.path.islink(model_dir) else model_dir
    result: Dict[str, Any] = {"changed": False, "model_id": os.path.basename(target.rstrip("/")), "model_sums": {}}
    try:
        with open(os.path.join(model_dir, ".verified"), encoding="utf-8") as handle:
            sums = json.load(handle)
        if not isinstance(sums, dict):
            raise ValueError("not a JSON object")
        result["model_sums"] = {str(kind): str(value) for kind, value in sums.items()}
    except (OSError, ValueError) as error:
        result["model_sums_error"] = "{}: {}".format(os.path.join(model_dir, ".verified"), error)
    result["scorer"] = {"exists": False, "sha256": "", "mtime": None}
    if scorer:
        try:
            mtime = os.stat(scorer).st_mtime
            result["scorer"] = {"exists": True, "sha256": sha256(scorer), "mtime": mtime}
        except OSError as error:
            result["scorer"]["error"] = "{}: {}".format(scorer, error.strerror or error)
    return result


def main() -> None:  # pragma: no cover - exercised through Ansible in molecule
    from ansible.module_utils.basic import AnsibleModule

    module = AnsibleModule(argument_spec={"model_dir": {"type": "path", "required": True},
                                          "scorer": {"type": "path", "default": ""}},
                           supports_check_mode=True)
    module.exit_json(**read(module.params["model_dir"], module.params["scorer"] or "", module.sha256))


if __name__ == "__main__":
    main()
