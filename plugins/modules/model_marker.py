#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Seal a model version: its `.verified` marker, written only after its files are durable.

A model version directory holds the model files and, once DeepSpeech proved them, a `.verified`
marker (JSON: file kind -> sha256). The marker lets a re-run skip the copy and the proof, so it must
never outlive the files it vouches for: every file and the directory are fsynced, then the marker is
written atomically and durably (module_utils/durable.py's ``replace_file``). After a power loss either
the marker is absent or the files it names are complete on disk.

Whether a marker holds is module_utils/durable.py's ``marker_holds`` (valid JSON naming exactly the
expected sums, every file it names a regular file of the expected size). model_links uses it before a
switch (``require_marker``); this module uses it to skip a sealed version and to prove what it wrote.

The logic is plain stdlib (importable and testable without Ansible); ``main()`` wraps it.
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict

from ansible_collections.pivoice.voice_appliance.plugins.module_utils.durable import (MARKER, fsync_dir, marker_file_name,
                                                                                   marker_files_error, marker_holds,
                                                                                   marker_sums, replace_file)

DOCUMENTATION = r"""
---
module: model_marker
short_description: Seal a model version with its .verified marker, written durably after its files.
description:
  - Fsyncs the version's files and directory, then writes the C(.verified) marker atomically. A version whose
    marker already holds for I(files) is left as it is.
options:
  path:
    description: The model version directory.
    type: path
    required: true
  files:
    description: Per file kind (tflite, pb, scorer, alphabet ...) a dict with C(name) or C(path) (its base
      name is the file name in I(path); a stat result of the staged file will do), C(checksum) (sha256) and
      C(size) (bytes).
    type: dict
    required: true
author: voice appliance team
"""

RETURN = r"""
verified:
  description: The marker holds for I(files) (in check mode, whether it already did).
  type: bool
  returned: always
reason:
  description: Why the marker did not hold before ("" when it did).
  type: str
  returned: always
"""


def _fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def seal(path: str, files: Dict[str, Dict[str, Any]]) -> None:
    """fsync the files and ``path``, then write the marker atomically and durably."""
    for spec in files.values():
        _fsync_path(os.path.join(path, marker_file_name(spec)))
    fsync_dir(path)
    text = json.dumps(marker_sums(files), indent=4, sort_keys=True) + "\n"
    replace_file(os.path.join(path, MARKER), lambda out: out.write(text.encode("utf-8")), 0o644, prefix=MARKER + ".")


def main() -> None:  # pragma: no cover - exercised through Ansible in molecule
    from ansible.module_utils.basic import AnsibleModule

    module = AnsibleModule(
        argument_spec={"path": {"type": "path", "required": True}, "files": {"type": "dict", "required": True}},
        supports_check_mode=True,
    )
    path, files = module.params["path"], module.params["files"]
    problem = marker_files_error(files)
    if problem:
        module.fail_json(msg=problem)
    verified, reason = marker_holds(path, files)
    if verified or module.check_mode:
        module.exit_json(changed=not verified, verified=verified, reason=reason)
    try:
        seal(path, files)
    except OSError as exc:
        module.fail_json(msg="cannot write the marker in %s: %s" % (path, exc))
    holds, problem = marker_holds(path, files)
    if not holds:
        module.fail_json(msg="the marker written in %s does not hold: %s" % (path, problem))
    module.exit_json(changed=True, verified=True, reason=reason)


if __name__ == "__main__":
    main()
