"""The controller's staging (role artifact_stage) against a real HTTP server on 127.0.0.1.

harness/artifact_server.py serves the artifacts, logs every request and injects the faults of
real networks; the role's own tasks run through ansible-playbook on a fleet of local hosts.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import pytest
import yaml
from role_playbook import failure_messages, run_role_playbook

REPO = Path(__file__).resolve().parent.parent
SERVER = REPO / "harness" / "artifact_server.py"
FLEET = ["pi-1", "pi-2", "pi-3", "pi-4"]

PLAYBOOK = """
- name: Stage artifacts for a fleet.
  hosts: all
  gather_facts: false
  tasks:
    - name: Load the table.
      ansible.builtin.include_role:
        name: artifact_stage
        tasks_from: catalog
    - name: Fetch once for the whole fleet.
      ansible.builtin.include_role:
        name: artifact_stage
        tasks_from: fetch
        apply:
          delegate_to: localhost
          run_once: true
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Origin:
    """The artifact server and its request log."""

    def __init__(self, root: Path, log: Path, port: int) -> None:
        self.root, self.log, self.port = root, log, port
        self.url = "http://127.0.0.1:{}".format(port)

    def requests(self) -> List[Dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]

    def gets(self) -> List[str]:
        return [r["path"] for r in self.requests() if r["method"] == "GET" and r["path"] != "/_faults"]

    def set_faults(self, faults: Dict[str, str]) -> None:
        import urllib.request
        method = "PUT" if faults else "DELETE"
        req = urllib.request.Request(self.url + "/_faults", data=json.dumps(faults).encode(), method=method)
        urllib.request.urlopen(req, timeout=5).read()


@contextlib.contextmanager
def _server(root: Path, log: Path, *options: str) -> Iterator[int]:
    """harness/artifact_server.py serving root on a free loopback port, ready when yielded."""
    port = _free_port()
    proc = subprocess.Popen([sys.executable, str(SERVER), "--root", str(root), "--port", str(port), "--log", str(log)]
                            + list(options))
    try:
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def origin(tmp_path: Path) -> Iterator[Origin]:
    root = tmp_path / "origin"
    for name, size in (("alpha", 300_000), ("beta", 50_000)):
        (root / name / "1.0").mkdir(parents=True)
        (root / name / "1.0" / (name + ".bin")).write_bytes(os.urandom(size))
    log = tmp_path / "requests.jsonl"
    with _server(root, log, "--gdrive", "1AbCdrivefileid=alpha/1.0/alpha.bin") as port:
        yield Origin(root, log, port)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Stage:
    """One controller: a catalog, a cache, and ansible-playbook runs of the role."""

    def __init__(self, tmp: Path, origin: Origin) -> None:
        self.tmp, self.origin = tmp, origin
        self.cache = tmp / "cache"
        self.catalog: Dict[str, Any] = {"artifacts": {}}
        for name in ("alpha", "beta"):
            path = origin.root / name / "1.0" / (name + ".bin")
            self.catalog["artifacts"][name] = {"1.0": {"any": {
                "filename": path.name, "url": "{}/{}/1.0/{}".format(origin.url, name, path.name), "sha256": _sha256(path)}}}
        (tmp / "playbook.yml").write_text(PLAYBOOK)
        (tmp / "hosts.ini").write_text("[all]\n" + "".join(
            "{} ansible_connection=local ansible_python_interpreter={}\n".format(h, sys.executable) for h in FLEET))
        (tmp / "ansible.cfg").write_text("[defaults]\n")

    def run(self, extra: Optional[Dict[str, Any]] = None, check: bool = False) -> Dict[str, Any]:
        (self.tmp / "artifacts.yml").write_text(yaml.safe_dump(self.catalog))
        variables = {
            "artifact_stage_catalog_file": str(self.tmp / "artifacts.yml"),
            "artifact_stage_cache_dir": str(self.cache),
            "artifact_stage_local_dir": str(self.tmp / "dropped"),
            "artifact_stage_items": [{"name": n, "version": "1.0", "variant": "any"} for n in ("alpha", "beta")],
            "artifact_stage_retries": 0, "artifact_stage_retry_delay": 0, "artifact_stage_timeout": 5,
        }
        variables.update(extra or {})
        rc, report = run_role_playbook(self.tmp, variables, check)
        failures = failure_messages(res for play in report["plays"] for task in play["tasks"] for res in task["hosts"].values())
        # How many items each task worked on (a loop's results; 1 for a task without a loop that was not skipped).
        items = {task["task"]["name"]: max(len(res.get("results", [])) if "results" in res else int(not res.get("skipped"))
                                           for res in task["hosts"].values())
                 for play in report["plays"] for task in play["tasks"] if task["hosts"]}
        return {"rc": rc, "stats": report["stats"], "failures": failures, "items": items}


@pytest.fixture
def stage(tmp_path: Path, origin: Origin) -> Stage:
    return Stage(tmp_path, origin)


def _changed(result: Dict[str, Any]) -> int:
    return sum(s["changed"] for s in result["stats"].values())


def test_a_fleet_downloads_each_artifact_once_and_a_rerun_transfers_nothing(stage: Stage, origin: Origin) -> None:
    first = stage.run()
    assert first["rc"] == 0, first["failures"]
    assert sorted(origin.gets()) == ["/alpha/1.0/alpha.bin", "/beta/1.0/beta.bin"], "one GET per artifact for 4 Pis"
    for name in ("alpha", "beta"):
        cached = stage.cache / name / "1.0" / (name + ".bin")
        assert _sha256(cached) == stage.catalog["artifacts"][name]["1.0"]["any"]["sha256"]
    sent_before = sum(r["bytes"] for r in origin.requests())

    again = stage.run()
    assert again["rc"] == 0 and _changed(again) == 0, again
    assert sum(r["bytes"] for r in origin.requests()) == sent_before, "a re-run must transfer zero bytes"

    checked = stage.run(check=True)
    assert checked["rc"] == 0 and _changed(checked) == 0, checked

    # A converged cache is read once; the fetching tasks are not even included (no client is started, no directory made).
    included = [count for name, count in again["items"].items() if name.endswith("Fetch the pending artifacts into the cache, checksummed.")]
    assert included == [0], again["items"]
    assert not [name for name in again["items"] if "Fetch each" in name or "artifact cache" in name], again["items"]
    assert len([name for name in first["items"] if "Fetch each" in name]) == 3, "the first run fetched through the included tasks"


def test_a_damaged_cached_artifact_is_fetched_again_and_only_it(stage: Stage, origin: Origin) -> None:
    assert stage.run()["rc"] == 0
    cached = stage.cache / "beta" / "1.0" / "beta.bin"
    cached.write_bytes(b"bit rot")
    gets_before = len(origin.gets())

    repaired = stage.run()
    assert repaired["rc"] == 0 and _changed(repaired) == 1, repaired
    assert origin.gets()[gets_before:] == ["/beta/1.0/beta.bin"], "only the damaged artifact is fetched again"
    assert _sha256(cached) == stage.catalog["artifacts"]["beta"]["1.0"]["any"]["sha256"]
    assert [count for name, count in repaired["items"].items() if "Fetch each artifact once by its location" in name] == [1]


def _pending_filter() -> Any:
    import importlib.util
    spec = importlib.util.spec_from_file_location("artifact_cache_filter", REPO / "plugins" / "filter" / "artifact_cache.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_artifacts_pending_lists_what_the_cache_lacks_or_holds_wrongly(tmp_path: Path) -> None:
    module = _pending_filter()
    good, bad = tmp_path / "a" / "1" / "a.bin", tmp_path / "b" / "1" / "b.bin"
    for path in (good, bad):
        path.parent.mkdir(parents=True)
        path.write_bytes(path.name.encode())
    catalog = {"a": {"1": {"x": {"filename": "a.bin", "sha256": _sha256(good)}}},
               "b": {"1": {"x": {"filename": "b.bin", "sha256": "0" * 64}}},
               "c": {"1": {"x": {"filename": "c.bin", "sha256": "1" * 64}}},
               "d": {"1": {"x": {"filename": "b.bin"}}}}
    items = [{"name": n, "version": "1", "variant": "x"} for n in "abcda"]
    # a: held; b: another sum; c: missing; d: no sum known (first use) -> fetched and measured as before.
    assert [i["name"] for i in module.artifacts_pending(items, catalog, {}, str(tmp_path))] == ["b", "c", "d"]
    # A sum recorded on first use counts like a pinned one.
    (tmp_path / "d" / "1").mkdir(parents=True)
    (tmp_path / "d" / "1" / "b.bin").write_bytes(b"b.bin")
    trusted = {"d": {"1": {"x": _sha256(bad)}}}
    assert [i["name"] for i in module.artifacts_pending(items, catalog, trusted, str(tmp_path))] == ["b", "c"]
    assert module.artifacts_pending([], catalog, {}, str(tmp_path)) == []


@pytest.mark.bad_input
@pytest.mark.parametrize("items,message", [
    ("alpha", "expects a list"),
    ([{"name": "a"}], "needs name, version and variant"),
    ([{"name": "zzz", "version": "1", "variant": "x"}], "zzz 1 x is not in the artifact table"),
])
def test_artifacts_pending_refuses_a_malformed_request(tmp_path: Path, items: Any, message: str) -> None:
    from ansible.errors import AnsibleFilterError
    with pytest.raises(AnsibleFilterError, match=message):
        _pending_filter().artifacts_pending(items, {}, {}, str(tmp_path))


def _settings(tmp_path: Path, **changes: Any) -> Dict[str, Any]:
    return dict({"catalog_file": "/repo/artifacts.yml", "trusted_sums_file": "/cache/trusted-sums.yml", "mirror_url": "",
                 "local_dir": str(tmp_path / "dropped"), "trust_on_first_use": False}, **changes)


def test_checked_requests_pass_through_when_each_has_an_entry_a_source_and_a_sum(tmp_path: Path) -> None:
    catalog = {"a": {"1": {"x": {"filename": "a.bin", "url": "http://127.0.0.1:1/a.bin", "sha256": "a" * 64}}},
               "p": {"1": {"x": {"filename": "p.whl", "pip": {"package": "p", "version": "1"}}}},
               "m": {"1": {"x": {"filename": "m.bin"}}}}
    items = [{"name": "a", "version": "1", "variant": "x"}, {"name": "p", "version": "1", "variant": "x"}]
    check = _pending_filter().artifact_requests_checked
    assert check(items, catalog, {}, _settings(tmp_path, trust_on_first_use="yes")) == items
    # A sum recorded on first use counts as one; a mirror or a dropped-in file is a source.
    mirrored = [{"name": "m", "version": "1", "variant": "x"}]
    assert check(mirrored, catalog, {"m": {"1": {"x": "b" * 64}}}, _settings(tmp_path, mirror_url="http://127.0.0.1:1")) == mirrored
    (tmp_path / "dropped" / "m" / "1").mkdir(parents=True)
    (tmp_path / "dropped" / "m" / "1" / "m.bin").write_bytes(b"m")
    assert check(mirrored, catalog, {"m": {"1": {"x": "b" * 64}}}, _settings(tmp_path)) == mirrored


@pytest.mark.bad_input
@pytest.mark.parametrize("item, trusted, message", [
    ({"name": "a", "version": "1", "variant": "pb"}, {},
     "Artifact a 1 for pb is not in the artifact table (/repo/artifacts.yml). Known variants: x. Add it to "
     "artifact_stage_catalog_overrides with its filename, source"),
    ({"name": "zzz", "version": "1", "variant": "x"}, {}, "Known variants: none."),
    ({"name": "s", "version": "1", "variant": "x"}, {},
     "There is no source for s 1 x: set its url, gdrive_id, gdrive_folder or package coordinates (pip: {package, version, ...} "
     "or npm: {package, version}) with artifact_stage_catalog_overrides, set artifact_stage_mirror_url, or put the file at "
     "{dropped}/s/1/s.bin."),
    ({"name": "a", "version": "1", "variant": "x"}, {},
     'No sha256 is pinned for a 1 x (a.bin). Pin it in artifact_stage_catalog_overrides (a: {"1": {x: {sha256: ...}}}) '
     "with the sum of a copy you trust (sha256sum FILE), or set artifact_stage_trust_on_first_use: true to accept what the "
     "first download gives; its sum is then recorded in /cache/trusted-sums.yml and enforced from then on."),
])
def test_a_request_that_cannot_be_fetched_is_refused_naming_it_and_the_fix(tmp_path: Path, item: Dict[str, str],
                                                                          trusted: Dict[str, Any], message: str) -> None:
    from ansible.errors import AnsibleFilterError
    catalog = {"a": {"1": {"x": {"filename": "a.bin", "url": "http://127.0.0.1:1/a.bin"}}}, "s": {"1": {"x": {"filename": "s.bin"}}}}
    with pytest.raises(AnsibleFilterError) as refused:
        _pending_filter().artifact_requests_checked([item], catalog, trusted, _settings(tmp_path))
    assert message.replace("{dropped}", str(tmp_path / "dropped")) in str(refused.value), str(refused.value)


ITEM = {"name": "model", "version": "1.0", "variant": "tflite"}


def test_artifact_sum_is_the_pinned_sum_else_the_first_use_record_else_none() -> None:
    """The one rule every user of a staged artifact's sum follows (artifact_stage's fetch, deepspeech_model)."""
    artifact_sum = _pending_filter().artifact_sum
    pinned, recorded = "ab" * 32, "cd" * 32
    trusted = {"model": {"1.0": {"tflite": recorded}}}
    catalog = {"model": {"1.0": {"tflite": {"filename": "m.tflite", "sha256": pinned.upper()}}}}
    assert artifact_sum(ITEM, catalog, trusted) == pinned, "a pinned sum wins over a first-use record (lower case)"
    for unpinned in ("", None):
        catalog["model"]["1.0"]["tflite"]["sha256"] = unpinned
        assert artifact_sum(ITEM, catalog, trusted) == recorded, "trusted on first use: the recorded sum"
        assert artifact_sum(ITEM, catalog, {}) == "" and artifact_sum(ITEM, catalog, None) == "", "unknown yet"
    del catalog["model"]["1.0"]["tflite"]["sha256"]
    assert artifact_sum(ITEM, catalog, {"model": {"1.0": {"pb": recorded}}}) == "", "another variant's record is not this one's"
    assert artifact_sum(dict(ITEM, version=1.0), {"model": {"1.0": {"tflite": {"filename": "m", "sha256": pinned}}}}, {}) == pinned


@pytest.mark.bad_input
@pytest.mark.parametrize("pinned,recorded,message", [
    ("abc123", "", "the sha256 pinned for model 1.0 tflite is 'abc123', not a sha256 sum (64 hexadecimal digits). Correct it in "
                   "the artifact table or artifact_stage_catalog_overrides"),
    ("g" * 64, "", "the sha256 pinned for model 1.0 tflite is '{}', not a sha256 sum".format("g" * 64)),
    ("", "no sum", "the sum recorded on first use for model 1.0 tflite is 'no sum', not a sha256 sum (64 hexadecimal digits). "
                   "Correct it in the trust-on-first-use record (artifact_stage_trusted_sums_file)"),
])
def test_artifact_sum_refuses_a_value_that_is_no_sha256_naming_it_and_the_fix(pinned: str, recorded: str, message: str) -> None:
    from ansible.errors import AnsibleFilterError
    catalog = {"model": {"1.0": {"tflite": {"filename": "m.tflite", "sha256": pinned}}}}
    with pytest.raises(AnsibleFilterError) as error:
        _pending_filter().artifact_sum(ITEM, catalog, {"model": {"1.0": {"tflite": recorded}}})
    assert message in str(error.value)


@pytest.mark.bad_input
@pytest.mark.parametrize("item,message", [
    ("model", "artifact_sum: 'model' is not an artifact request; each needs name, version and variant"),
    ({"name": "model", "version": "1.0"}, "each needs name, version and variant"),
    (dict(ITEM, variant="pb"), "artifact_sum: model 1.0 pb is not in the artifact table"),
])
def test_artifact_sum_refuses_a_request_it_cannot_answer(item: Any, message: str) -> None:
    from ansible.errors import AnsibleFilterError
    with pytest.raises(AnsibleFilterError) as error:
        _pending_filter().artifact_sum(item, {"model": {"1.0": {"tflite": {"filename": "m.tflite"}}}}, {})
    assert message in str(error.value)


def test_staged_artifact_describes_a_cached_file_by_its_recorded_sum_without_reading_it(tmp_path: Path) -> None:
    module = _pending_filter()
    graph = tmp_path / "model" / "1.0" / "m.tflite"
    graph.parent.mkdir(parents=True)
    graph.write_bytes(b"the graph")
    recorded = "cd" * 32  # not the file's sum: the filter takes the record, the copy checks the file against it
    catalog = {"model": {"1.0": {"tflite": {"filename": "m.tflite", "sha256": ""}}}}
    trusted = {"model": {"1.0": {"tflite": recorded}}}
    assert module.staged_artifact(ITEM, catalog, trusted, str(tmp_path)) == {"path": str(graph), "checksum": recorded, "size": 9}
    catalog["model"]["1.0"]["tflite"]["sha256"] = _sha256(graph)
    assert module.staged_artifact(ITEM, catalog, trusted, str(tmp_path))["checksum"] == _sha256(graph), "a pin wins"


@pytest.mark.bad_input
@pytest.mark.parametrize("fault,message", [
    ("missing", "staged_artifact: model 1.0 tflite is not staged on the controller ({path} is missing). Run playbooks/stage.yml "
                "first (site.yml does)."),
    ("directory", "staged_artifact: model 1.0 tflite is not staged on the controller ({path} is missing)"),
    ("unknown", "staged_artifact: no sha256 is known for model 1.0 tflite ({path}): none is pinned in the artifact table and none "
                "was recorded on first use (artifact_stage_trusted_sums_file). Stage it with playbooks/stage.yml (site.yml does), "
                "which checks it and records its sum."),
])
def test_staged_artifact_refuses_a_file_the_cache_lacks_or_whose_sum_is_unknown(tmp_path: Path, fault: str, message: str) -> None:
    from ansible.errors import AnsibleFilterError
    path = tmp_path / "model" / "1.0" / "m.tflite"
    path.parent.mkdir(parents=True)
    if fault == "directory":
        path.mkdir()
    elif fault == "unknown":
        path.write_bytes(b"the graph")
    catalog = {"model": {"1.0": {"tflite": {"filename": "m.tflite", "sha256": "" if fault == "unknown" else "ab" * 32}}}}
    with pytest.raises(AnsibleFilterError) as error:
        _pending_filter().staged_artifact(ITEM, catalog, {}, str(tmp_path))
    assert message.format(path=path) in str(error.value)


@pytest.mark.fault
@pytest.mark.parametrize("fault,expect", [
    ("500", "HTTP 500"),
    ("truncate", "Incomplete read"),
    ("short", "did not match"),
    ("corrupt", "did not match"),
    ("slow:8", "timed out"),
])
def test_a_bad_download_fails_clearly_and_leaves_the_cache_clean(stage: Stage, origin: Origin, fault: str, expect: str) -> None:
    origin.set_faults({"/alpha/1.0/alpha.bin": fault})
    result = stage.run({"artifact_stage_timeout": 3})
    assert result["rc"] != 0
    message = " ".join(" ".join(result["failures"]).split())
    assert "Could not stage alpha 1.0 any from {}/alpha/1.0/alpha.bin".format(origin.url) in message, message
    assert expect in message, message
    if fault in ("short", "corrupt"):  # a checksum mismatch shows the expected and the actual sum
        expected = stage.catalog["artifacts"]["alpha"]["1.0"]["any"]["sha256"]
        assert expected in message, message
    assert not (stage.cache / "alpha" / "1.0" / "alpha.bin").exists(), "a bad download must not stay in the cache"


@pytest.mark.bad_input
def test_unpinned_artifact_is_refused_unless_trusted_on_first_use(stage: Stage, origin: Origin) -> None:
    real_sum = stage.catalog["artifacts"]["beta"]["1.0"]["any"].pop("sha256")
    refused = stage.run()
    assert refused["rc"] != 0
    assert any("No sha256 is pinned for beta 1.0 any (beta.bin)" in " ".join(m.split()) for m in refused["failures"]), refused
    assert origin.gets() == [], "nothing is downloaded before every sum is settled"

    trusted = stage.run({"artifact_stage_trust_on_first_use": True})
    assert trusted["rc"] == 0, trusted["failures"]
    recorded = yaml.safe_load((stage.cache / "trusted-sums.yml").read_text())
    assert recorded == {"beta": {"1.0": {"any": real_sum}}}

    # From now on the recorded sum is enforced: a changed file at the origin is refused.
    (stage.cache / "beta" / "1.0" / "beta.bin").unlink()
    origin.set_faults({"/beta/1.0/beta.bin": "corrupt"})
    changed = stage.run()
    assert changed["rc"] != 0 and real_sum in " ".join(changed["failures"]), changed


def test_mirror_and_dropped_files_replace_the_origin(stage: Stage, origin: Origin) -> None:
    for entry in stage.catalog["artifacts"].values():
        entry["1.0"]["any"]["url"] = "http://127.0.0.1:9/unreachable"  # discard port: nothing listens
    dropped = stage.tmp / "dropped" / "beta" / "1.0"
    dropped.mkdir(parents=True)
    (dropped / "beta.bin").write_bytes((origin.root / "beta" / "1.0" / "beta.bin").read_bytes())
    result = stage.run({"artifact_stage_mirror_url": origin.url + "/"})
    assert result["rc"] == 0, result["failures"]
    assert origin.gets() == ["/alpha/1.0/alpha.bin"], "alpha from the mirror, beta from the dropped file"
    assert (stage.cache / "beta" / "1.0" / "beta.bin").exists()


def test_google_drive_large_file_confirmation_is_passed(stage: Stage, origin: Origin) -> None:
    entry = stage.catalog["artifacts"]["alpha"]["1.0"]["any"]
    entry["url"] = ""
    entry["gdrive_id"] = "1AbCdrivefileid"
    result = stage.run({"artifact_stage_gdrive_base_url": origin.url})
    assert result["rc"] == 0, result["failures"]
    assert [p for p in origin.gets() if not p.startswith("/beta/")] == ["/uc", "/download"], \
        "the confirmation page first, then the file"
    assert _sha256(stage.cache / "alpha" / "1.0" / "alpha.bin") == entry["sha256"]
    again = stage.run({"artifact_stage_gdrive_base_url": origin.url})
    assert again["rc"] == 0 and _changed(again) == 0 and len(origin.gets()) == 3, "re-run: nothing fetched, no change"


@pytest.mark.bad_input
def test_google_drive_file_with_a_wrong_sum_is_refused(stage: Stage, origin: Origin) -> None:
    entry = stage.catalog["artifacts"]["alpha"]["1.0"]["any"]
    entry.update(url="", gdrive_id="1AbCdrivefileid", sha256="0" * 64)
    result = stage.run({"artifact_stage_gdrive_base_url": origin.url})
    message = " ".join(" ".join(result["failures"]).split())
    actual = _sha256(origin.root / "alpha" / "1.0" / "alpha.bin")
    assert result["rc"] != 0 and "did not match {}; it was {}".format("0" * 64, actual) in message, message
    assert not (stage.cache / "alpha" / "1.0" / "alpha.bin").exists()


def test_credentials_are_used_and_never_shown(stage: Stage, origin: Origin, tmp_path: Path) -> None:
    log = tmp_path / "private.jsonl"
    secret = "s3cr3t-pa55"
    with _server(origin.root, log, "--auth", "fleet:" + secret) as port:
        for name in ("alpha", "beta"):
            entry = stage.catalog["artifacts"][name]["1.0"]["any"]
            entry["url"] = entry["url"].replace(origin.url, "http://127.0.0.1:{}".format(port))
        denied = stage.run({"artifact_stage_credentials": {"alpha": {"username": "fleet", "password": "wrong"}}})
        assert denied["rc"] != 0 and "alpha.bin: Request failed (HTTP 401)" in " ".join(" ".join(denied["failures"]).split())
        assert secret not in json.dumps(denied) and "wrong" not in json.dumps(denied["failures"])
        creds = {n: {"username": "fleet", "password": secret} for n in ("alpha", "beta")}
        granted = stage.run({"artifact_stage_credentials": creds})
        assert granted["rc"] == 0, granted
        assert secret not in json.dumps(granted)
        statuses = [json.loads(line)["status"] for line in log.read_text().splitlines()]
        assert statuses.count(200) == 2 and 401 in statuses
