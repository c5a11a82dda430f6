"""Filter artifacts_pending: which requested artifacts the controller's cache does not yet hold with their sum.

artifact_stage fetches only these. A cached file counts as held when its sha256 equals the sum the artifact
table pins or, for an artifact trusted on first use, the sum recorded then; a file without a known sum, a
missing file and a file with another sum are pending, and the fetch tasks handle them exactly as before (a
wrong file is fetched again and checked; a first-use file is measured and recorded). On a converged fleet the
list is empty, so a re-run starts no download client and creates no directory: it only reads the cache once.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Dict, Iterable, List, Mapping

from ansible.errors import AnsibleFilterError

from ansible_collections.pivoice.voice_appliance.plugins.module_utils.durable import sha256_file


def _lookup(table: Mapping[str, Any], item: Mapping[str, Any]) -> Any:
    node: Any = table
    for key in ("name", "version", "variant"):
        if not isinstance(node, Mapping):
            return None
        node = node.get(str(item[key]))
    return node


def artifacts_pending(items: Iterable[Any], catalog: Mapping[str, Any], trusted: Mapping[str, Any],
                      cache_dir: str) -> List[Dict[str, Any]]:
    """The items (name, version, variant) whose file under cache_dir/NAME/VERSION/FILENAME is missing or does
    not have the pinned (else the first-use) sha256. Order is kept; a duplicate is listed once."""
    if isinstance(items, (str, bytes, Mapping)) or not isinstance(items, Iterable):
        raise AnsibleFilterError("artifacts_pending: expects a list of {{name, version, variant}}, got {!r}".format(items))
    pending: List[Dict[str, Any]] = []
    seen = set()
    for item in items:
        if not isinstance(item, Mapping) or not all(key in item for key in ("name", "version", "variant")):
            raise AnsibleFilterError("artifacts_pending: {!r} is not an artifact request; each needs name, version "
                                     "and variant".format(item))
        key = (str(item["name"]), str(item["version"]), str(item["variant"]))
        if key in seen:
            continue
        seen.add(key)
        entry = _lookup(catalog or {}, item)
        if not isinstance(entry, Mapping) or not entry.get("filename"):
            raise AnsibleFilterError("artifacts_pending: {} {} {} is not in the artifact table".format(*key))
        expected = str(entry.get("sha256") or _lookup(trusted or {}, item) or "").lower()
        path = os.path.join(str(cache_dir), key[0], key[1], str(entry["filename"]))
        held = len(expected) == 64 and os.path.isfile(path) and sha256_file(path) == expected
        if not held:
            pending.append(dict(item))
    return pending


class FilterModule:
    def filters(self) -> Dict[str, Callable[..., Any]]:
        return {"artifacts_pending": artifacts_pending}
