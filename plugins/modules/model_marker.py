#!/usr/bin/python
# -*- coding: utf-8 -*-
"""The `.verified` marker of a model version: checked against the files, written only after they are durable.

A model version directory holds the model files and, once DeepSpeech proved them, a `.verified`
marker (JSON: file kind -> sha256). The marker lets a re-run skip the copy and the proof, so it must
never outlive the files it vouches for:

* ``state=sealed`` fsyncs every file and the directory, then writes the marker atomically (temporary
  file, fsync, rename, fsync of the directory). After a power loss either the marker is absent or
  the files it names are complete on disk.
* ``state=query`` trusts a marker only if it is valid JSON naming exactly the expected sums and every
  file it names is a regular file of the expected size (a zero-length or truncated file, a marker
  torn by a crash, or a marker for other bytes: not verified, with the reason; the role then copies
  and proves the version again). The check is module_utils/durable.py's ``marker_holds``, which
  model_links uses too (``require_marker``: a converged Pi's look-up and switch in one module run).

The logic is plain stdlib (importable and testable without Ansible); ``main()`` wraps it.
"""
from __future__ import annotations

import json
import os
import tempfile
from typing import Any, Dict, Optional

from ansible_collections.pivoice.voice_appliance.plugins.module_utils.durable import (MARKER, marker_file_name,
                                                                                   marker_files_error, marker_holds,
                                                                                   marker_sums)

DOCUMENTATION = r"""
---
module: model_marker
short_description: Check or write (durably) the .verified marker of a model version.
description:
  - C(state=query) reports whether the version directory's C(.verified) marker can be trusted for
    I(files) (sums named in the marker, sizes of the files on disk) and where I(current) points.
  - C(state=sealed) fsyncs the files and the directory, then writes the marker atomically.
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
  state:
    description: C(query) to check the marker, C(sealed) to make the files durable and write it.
    type: str
    choices: [query, sealed]
    default: query
  current:
    description: The C(current) link; its target is returned as C(current_target).
    type: path
author: voice appliance team
"""

RETURN = r"""
verified:
  description: "The marker exists and matches the expected files (after C(sealed): true)."
  type: bool
  returned: always
reason:
  description: Why the marker is not trusted ("" when it is).
  type: str
  returned: always
current_target:
  description: Where I(current) points ("" when it is no link).
  type: str
  returned: always
"""

# The look-up is module_utils/durable.py's marker_holds: model_links (require_marker) trusts a marker by the same code.
query = marker_holds


def _fsync_path(path: str, directory: bool = False) -> None:
    fd = os.open(path, (os.O_RDONLY | os.O_DIRECTORY) if directory else os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def seal(path: str, files: Dict[str, Dict[str, Any]]) -> None:
    """fsync the files and ``path``, then write the marker atomically and durably."""
    for spec in files.values():
        _fsync_path(os.path.join(path, marker_file_name(spec)))
    _fsync_path(path, directory=True)
    fd, tmp = tempfile.mkstemp(prefix=".verified.", dir=path)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(marker_sums(files), handle, indent=4, sort_keys=True)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, os.path.join(path, MARKER))
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_path(path, directory=True)


def link_target(link: Optional[str]) -> str:
    if not link:
        return ""
    try:
        return os.readlink(link)
    except OSError:
        return ""


def main() -> None:  # pragma: no cover - exercised through Ansible in molecule
    from ansible.module_utils.basic import AnsibleModule

    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "files": {"type": "dict", "required": True},
            "state": {"type": "str", "choices": ["query", "sealed"], "default": "query"},
            "current": {"type": "path"},
        },
        supports_check_mode=True,
    )
    path, files = module.params["path"], module.params["files"]
    problem = marker_files_error(files)
    if problem:
        module.fail_json(msg=problem)
    verified, reason = query(path, files)
    changed = False
    if module.params["state"] == "sealed" and not verified:
        changed = True
        if not module.check_mode:
            try:
                seal(path, files)
            except OSError as exc:
                module.fail_json(msg="cannot write the marker in %s: %s" % (path, exc))
            verified, reason = query(path, files)
            if not verified:
                module.fail_json(msg="the marker written in %s does not hold: %s" % (path, reason))
    module.exit_json(changed=changed, verified=verified, reason=reason,
                     current_target=link_target(module.params["current"]))


if __name__ == "__main__":
    main()
