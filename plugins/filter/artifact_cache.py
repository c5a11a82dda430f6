"""Filters of the controller's artifact cache: the sum an artifact must have, and what the cache lacks.

``artifact_sum`` is the one place that decides which sha256 an artifact is held to: the one the artifact table
pins, else the one recorded when it was trusted on first use, else none yet ("": the first download's sum is
measured and recorded). artifact_stage (this filter, its fetch tasks) and deepspeech_model use it.

``staged_artifact`` describes an artifact the cache holds by its path, that sum and its size, without reading it:
deepspeech_model names, marks and copies the model files with it (paths_state checks each against that sum when it
is copied), so a converged Pi costs the controller no second sum of files that staging measured this run.

``artifact_requests_checked`` refuses a request that cannot be fetched (not in the table, no source, no sum to hold it
to while trust-on-first-use is off), naming it and the fix; artifact_stage checks every request with it before
anything is fetched.

``artifacts_pending`` names the requested artifacts the cache does not yet hold with that sum; artifact_stage
fetches only these. A missing file, a file with another sum and a file without a known sum are pending, and the
fetch tasks handle them exactly as before (a wrong file is fetched again and checked; a first-use file is measured
and recorded). On a converged fleet the list is empty, so a re-run starts no download client and creates no
directory: it only reads the cache once.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple

from ansible.errors import AnsibleFilterError
from ansible.module_utils.parsing.convert_bool import boolean

from ansible_collections.pivoice.voice_appliance.plugins.module_utils.durable import is_sha256, sha256_file


def _lookup(table: Mapping[str, Any], item: Mapping[str, Any], keys: Tuple[str, ...] = ("name", "version", "variant")) -> Any:
    """The node of a NAME -> VERSION -> VARIANT table that ``item``'s values of ``keys`` lead to; None if there is none."""
    node: Any = table
    for key in keys:
        if not isinstance(node, Mapping):
            return None
        node = node.get(str(item[key]))
    return node


def _key(caller: str, item: Any) -> Tuple[str, str, str]:
    """(name, version, variant) of an artifact request; refuses anything else, naming it."""
    if not isinstance(item, Mapping) or not all(key in item for key in ("name", "version", "variant")):
        raise AnsibleFilterError("{}: {!r} is not an artifact request; each needs name, version and variant".format(caller, item))
    return str(item["name"]), str(item["version"]), str(item["variant"])


def _entry(caller: str, item: Mapping[str, Any], catalog: Optional[Mapping[str, Any]]) -> Mapping[str, Any]:
    entry = _lookup(catalog or {}, item)
    if not isinstance(entry, Mapping) or not entry.get("filename"):
        raise AnsibleFilterError("{}: {} {} {} is not in the artifact table".format(caller, *_key(caller, item)))
    return entry


def artifact_sum(item: Any, catalog: Mapping[str, Any], trusted: Optional[Mapping[str, Any]]) -> str:
    """The sha256 (lower case) the artifact ``item`` ({name, version, variant}) must have: the one ``catalog`` (the
    artifact table) pins, else the one ``trusted`` (the trust-on-first-use record) holds, else "" (none known yet).
    A pinned or recorded value that is not a sha256 is refused, naming it and where to correct it."""
    key = _key("artifact_sum", item)
    pinned = str(_entry("artifact_sum", item, catalog).get("sha256") or "").strip().lower()
    if pinned:
        if not is_sha256(pinned):
            raise AnsibleFilterError(
                "artifact_sum: the sha256 pinned for {} {} {} is {!r}, not a sha256 sum (64 hexadecimal digits). Correct it in "
                "the artifact table or artifact_stage_catalog_overrides with the sum of a copy you trust (sha256sum FILE), or "
                "set it to \"\" to use trust-on-first-use.".format(*key, pinned))
        return pinned
    recorded = str(_lookup(trusted or {}, item) or "").strip().lower()
    if recorded and not is_sha256(recorded):
        raise AnsibleFilterError(
            "artifact_sum: the sum recorded on first use for {} {} {} is {!r}, not a sha256 sum (64 hexadecimal digits). "
            "Correct it in the trust-on-first-use record (artifact_stage_trusted_sums_file), or pin the sum in "
            "artifact_stage_catalog_overrides.".format(*key, recorded))
    return recorded


def _cache_path(cache_dir: str, item: Mapping[str, Any], entry: Mapping[str, Any]) -> str:
    """One layout: cache_dir/NAME/VERSION/FILENAME."""
    return os.path.join(str(cache_dir), str(item["name"]), str(item["version"]), str(entry["filename"]))


def staged_artifact(item: Any, catalog: Mapping[str, Any], trusted: Optional[Mapping[str, Any]], cache_dir: str) -> Dict[str, Any]:
    """The staged file of the artifact ``item`` as ``{path, checksum, size}`` (checksum: its artifact_sum; named as
    ansible.builtin.stat names them). The file is not read: whoever copies it checks it against that sum. Refused,
    naming the file and the fix, when the cache lacks it or no sum is known for it."""
    key = _key("staged_artifact", item)
    path = _cache_path(cache_dir, item, _entry("staged_artifact", item, catalog))
    checksum = artifact_sum(item, catalog, trusted)
    try:
        size = os.stat(path).st_size if os.path.isfile(path) else -1
    except OSError:
        size = -1
    if size < 0:
        raise AnsibleFilterError("staged_artifact: {} {} {} is not staged on the controller ({} is missing). Run "
                                 "playbooks/stage.yml first (site.yml does).".format(*key, path))
    if not checksum:
        raise AnsibleFilterError("staged_artifact: no sha256 is known for {} {} {} ({}): none is pinned in the artifact table "
                                 "and none was recorded on first use (artifact_stage_trusted_sums_file). Stage it with "
                                 "playbooks/stage.yml (site.yml does), which checks it and records its sum.".format(*key, path))
    return {"path": path, "checksum": checksum, "size": size}


def _has(entry: Mapping[str, Any], *path: str) -> bool:
    node: Any = entry
    for key in path:
        node = node.get(key) if isinstance(node, Mapping) else None
    return bool(str(node or "").strip()) if not isinstance(node, Mapping) else bool(node)


def artifact_requests_checked(items: Iterable[Any], catalog: Mapping[str, Any], trusted: Optional[Mapping[str, Any]],
                              settings: Mapping[str, Any]) -> List[Dict[str, Any]]:
    """The requests ``items`` as they are, once each is known to be fetchable: in the artifact table, with a source
    and with a sum to hold it to. Otherwise refused, naming the request and the fix.

    settings: catalog_file (named when an entry is missing), mirror_url and local_dir (sources of their own),
    trust_on_first_use (the fleet's switch) and trusted_sums_file (where first-use sums are recorded)."""
    if isinstance(items, (str, bytes, Mapping)) or not isinstance(items, Iterable):
        raise AnsibleFilterError("artifact_requests_checked: expects a list of {{name, version, variant}}, got {!r}".format(items))
    checked = list(items)
    for item in checked:
        name, version, variant = _key("artifact_requests_checked", item)
        entry = _lookup(catalog or {}, item)
        if not isinstance(entry, Mapping) or not entry.get("filename"):
            known = _lookup(catalog or {}, item, ("name", "version"))
            raise AnsibleFilterError(
                "Artifact {n} {v} for {var} is not in the artifact table ({table}). Known variants: {known}. Add it to "
                "artifact_stage_catalog_overrides with its filename, source (url, gdrive_id, gdrive_folder, or pip:/npm: "
                "package coordinates) and sha256.".format(n=name, v=version, var=variant, table=settings.get("catalog_file"),
                                                         known=", ".join(known) if isinstance(known, Mapping) and known else "none"))
        relative = "{}/{}/{}".format(name, version, entry["filename"])
        dropped = os.path.join(str(settings.get("local_dir") or ""), relative)
        if not (any(_has(entry, *path) for path in (("url",), ("gdrive_id",), ("gdrive_folder",), ("pip", "package"), ("npm", "package")))
                or str(settings.get("mirror_url") or "") or os.path.isfile(dropped)):
            raise AnsibleFilterError(
                "There is no source for {n} {v} {var}: set its url, gdrive_id, gdrive_folder or package coordinates (pip: "
                "{{package, version, ...}} or npm: {{package, version}}) with artifact_stage_catalog_overrides, set "
                "artifact_stage_mirror_url, or put the file at {dropped}.".format(n=name, v=version, var=variant, dropped=dropped))
        if not (artifact_sum(item, catalog, trusted) or boolean(settings.get("trust_on_first_use"), strict=False)
                or boolean(entry.get("trust_on_first_use"), strict=False)):
            raise AnsibleFilterError(
                "No sha256 is pinned for {n} {v} {var} ({f}). Pin it in artifact_stage_catalog_overrides ({n}: {{\"{v}\": "
                "{{{var}: {{sha256: ...}}}}}}) with the sum of a copy you trust (sha256sum FILE), or set "
                "artifact_stage_trust_on_first_use: true to accept what the first download gives; its sum is then recorded in "
                "{record} and enforced from then on.".format(n=name, v=version, var=variant, f=entry["filename"],
                                                             record=settings.get("trusted_sums_file")))
    return checked


def artifacts_pending(items: Iterable[Any], catalog: Mapping[str, Any], trusted: Optional[Mapping[str, Any]],
                      cache_dir: str) -> List[Dict[str, Any]]:
    """The items (name, version, variant) whose file under cache_dir/NAME/VERSION/FILENAME is missing or does
    not have its artifact_sum. Order is kept; a duplicate is listed once."""
    if isinstance(items, (str, bytes, Mapping)) or not isinstance(items, Iterable):
        raise AnsibleFilterError("artifacts_pending: expects a list of {{name, version, variant}}, got {!r}".format(items))
    pending: List[Dict[str, Any]] = []
    seen = set()
    for item in items:
        key = _key("artifacts_pending", item)
        if key in seen:
            continue
        seen.add(key)
        path = _cache_path(cache_dir, item, _entry("artifacts_pending", item, catalog))
        expected = artifact_sum(item, catalog, trusted)
        held = bool(expected) and os.path.isfile(path) and sha256_file(path) == expected
        if not held:
            pending.append(dict(item))
    return pending


class FilterModule:
    def filters(self) -> Dict[str, Callable[..., Any]]:
        return {"artifact_sum": artifact_sum, "staged_artifact": staged_artifact, "artifacts_pending": artifacts_pending,
                "artifact_requests_checked": artifact_requests_checked}
