"""The role deepspeech_model against this machine as the Pi (local connection, directories below tmp_path).

The staged files come from a controller cache written here, their sums pinned in an artifact table (or recorded
on first use); DeepSpeech is a stand-in script that loads the graph as the real one would fail to: a graph that
is not TFLite makes it crash. The role's own tasks run through ansible-playbook, with their own ansible.cfg.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest
import yaml
from role_playbook import failure_messages, run_role_playbook

REPO = Path(__file__).resolve().parent.parent

PLAYBOOK = """
- name: Install the model on the Pi.
  hosts: all
  gather_facts: false
  tasks:
    - name: Run the role.
      ansible.builtin.include_role:
        name: deepspeech_model
"""

# Loads the graph as DeepSpeech does: a file that is not TFLite (TFL3 at offset 4) ends it with a signal.
DEEPSPEECH = """#!/bin/sh
model="$2"
test "$(dd if="$model" bs=1 skip=4 count=4 2>/dev/null)" = TFL3 || kill -SEGV $$
echo
"""

GRAPH = b"\x1c\x00\x00\x00TFL3" + b"weights" * 4000
ALPHABET = b"a\nb\nc\n"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Pi:
    """One controller (artifact table, cache) and one Pi (its models directory), and playbook runs of the role."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.cache = tmp / "cache"
        self.models = tmp / "pi" / "models"
        self.models.parent.mkdir()
        self.catalog: Dict[str, Any] = {"artifacts": {"m": {}}}
        (tmp / "deepspeech").write_text(DEEPSPEECH)
        os.chmod(str(tmp / "deepspeech"), 0o755)
        (tmp / "playbook.yml").write_text(PLAYBOOK)
        (tmp / "hosts.ini").write_text("pi ansible_connection=local ansible_python_interpreter={}\n".format(sys.executable))
        (tmp / "ansible.cfg").write_text("[defaults]\n")

    def stage(self, version: str, files: Dict[str, bytes], pinned: bool = True) -> Dict[str, str]:
        """The files of a model version in the cache and the table (sums pinned, else recorded as on first use)."""
        entries: Dict[str, Any] = {}
        names = {"tflite": "output_graph.tflite", "alphabet": "alphabet.txt"}
        for variant, data in files.items():
            path = self.cache / "m" / version / names[variant]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            entries[variant] = {"filename": names[variant], "url": "", "sha256": _sha(data) if pinned else ""}
        self.catalog["artifacts"]["m"][version] = entries
        if not pinned:
            record = self.cache / "trusted-sums.yml"
            trusted = yaml.safe_load(record.read_text()) if record.exists() else {}
            trusted.setdefault("m", {})[version] = {variant: _sha(data) for variant, data in files.items()}
            record.write_text(yaml.safe_dump(trusted))
        return {variant: _sha(data) for variant, data in files.items()}

    def run(self, version: str, check: bool = False) -> Dict[str, Any]:
        (self.tmp / "artifacts.yml").write_text(yaml.safe_dump(self.catalog))
        variables = {
            "artifact_stage_catalog_file": str(self.tmp / "artifacts.yml"), "artifact_stage_cache_dir": str(self.cache),
            "deepspeech_model_name": "m", "deepspeech_model_version": version, "deepspeech_model_dir": str(self.models),
            "deepspeech_model_deepspeech_command": str(self.tmp / "deepspeech"), "deepspeech_model_free_margin_mb": 1,
            "deepspeech_runtime_choice": {"flavour": "tflite", "arch": "amd64"},
        }
        rc, report = run_role_playbook(self.tmp, variables, check)
        tasks = [(task["task"]["name"], task["hosts"]["pi"]) for play in report["plays"] for task in play["tasks"]
                 if "pi" in task["hosts"]]
        failed = failure_messages(result for _, result in tasks)
        return {"rc": rc, "changed": report["stats"]["pi"]["changed"], "tasks": tasks,
                "failed": " ".join(" ".join(failed).split())}

    def current(self) -> str:
        link = self.models / "current"
        return os.readlink(str(link)) if link.is_symlink() else ""

    def versions(self) -> List[str]:
        return sorted(p.name for p in self.models.iterdir() if p.is_dir() and not p.is_symlink()) if self.models.exists() else []


@pytest.fixture
def pi(tmp_path: Path) -> Pi:
    return Pi(tmp_path)


def _ran(run: Dict[str, Any], name: str) -> Optional[Dict[str, Any]]:
    """The result of the task of that name (the report puts the role's name before it) that ran, if any."""
    return next((result for task, result in run["tasks"] if task.split(" : ", 1)[-1] == name and not result.get("skipped")), None)


SWITCH_IF_VERIFIED = "Switch `current` to this version atomically if a verified copy of it is installed, and prune old versions."
SWITCH_PROVED = "Switch `current` to the verified version atomically and prune old versions."
COPY = "Create the directory of the new version and copy the model files from the controller's cache into it."


def _on_the_pi(run: Dict[str, Any]) -> List[Any]:
    """The tasks that ran a module on the Pi (not skipped, not a controller action), with their actions."""
    controller = {"ansible.builtin." + name for name in ("set_fact", "assert", "debug", "fail", "include_role", "include_tasks",
                                                         "include_vars", "validate_argument_spec")}
    return [(task.split(" : ", 1)[-1], result.get("action")) for task, result in run["tasks"]
            if not result.get("skipped") and result.get("action") not in controller]


def test_a_model_is_copied_proved_marked_and_switched_to_and_a_rerun_changes_nothing(pi: Pi) -> None:
    sums = pi.stage("1", {"tflite": GRAPH, "alphabet": ALPHABET})
    cold = pi.run("1")
    assert cold["rc"] == 0, cold["failed"]
    version = pi.current()
    assert version.startswith("m-1-") and pi.versions() == [version]
    assert (pi.models / version / "output_graph.tflite").read_bytes() == GRAPH
    assert json.loads((pi.models / version / ".verified").read_text()) == sums, "the marker names the staged sums"

    warm = pi.run("1")
    assert warm["rc"] == 0 and warm["changed"] == 0, warm["failed"]
    checked = pi.run("1", check=True)
    assert checked["rc"] == 0 and checked["changed"] == 0, checked["failed"]
    # A converged Pi's model step is one module run: the marker's look-up and the switch together.
    for run in (warm, checked):
        assert _on_the_pi(run) == [(SWITCH_IF_VERIFIED, "pivoice.voice_appliance.model_links")], run["tasks"]
        assert _ran(run, SWITCH_IF_VERIFIED)["verified"] is True
    # Named and marked by the recorded sums: no task measures the staged files (staging did, this run), on the
    # controller or on the Pi; the copy (paths_state) checks them when it sends them.
    for run in (cold, warm):
        assert not [name for name, result in run["tasks"] if result.get("action") == "ansible.builtin.stat"], run["tasks"]


def test_a_new_version_in_check_mode_changes_nothing_and_says_what_would_change(pi: Pi) -> None:
    pi.stage("1", {"tflite": GRAPH, "alphabet": ALPHABET})
    assert pi.run("1")["rc"] == 0
    working = pi.current()
    pi.stage("2", {"tflite": GRAPH + b"v2", "alphabet": ALPHABET})
    checked = pi.run("2", check=True)
    assert checked["rc"] == 0 and checked["changed"] > 0, checked["failed"]
    copy = _ran(checked, "Create the directory of the new version and copy the model files from the controller's cache into it.")
    assert copy is not None and copy["changed"]
    assert pi.current() == working and pi.versions() == [working], "a dry run changes nothing on the Pi"
    looked = _ran(checked, SWITCH_IF_VERIFIED)
    assert looked is not None and (looked["verified"], looked["reason"], looked["changed"]) == (False, "no marker", False)
    assert _ran(checked, SWITCH_PROVED) is None, "nothing to switch to in a dry run: the version's directory is not made"


def test_a_removed_current_link_is_put_back_in_the_one_run_without_copying_again(pi: Pi) -> None:
    pi.stage("1", {"tflite": GRAPH, "alphabet": ALPHABET})
    assert pi.run("1")["rc"] == 0
    version = pi.current()
    (pi.models / "current").unlink()
    checked = pi.run("1", check=True)
    assert checked["rc"] == 0 and checked["changed"] == 1 and pi.current() == "", checked["tasks"]
    run = pi.run("1")
    assert run["rc"] == 0 and run["changed"] == 1, run["failed"]
    switched = _ran(run, SWITCH_IF_VERIFIED)
    assert switched is not None and (switched["verified"], switched["current_target"], switched["current"]) == (True, "", version)
    assert _ran(run, COPY) is None and _ran(run, SWITCH_PROVED) is None
    assert pi.current() == version and pi.versions() == [version]


def test_an_installed_verified_version_is_switched_back_to_without_copying_again(pi: Pi) -> None:
    """Version 2 was proved, then the users rolled back to 1: the next run for 2 switches to it (1 stays previous)."""
    pi.stage("1", {"tflite": GRAPH, "alphabet": ALPHABET})
    assert pi.run("1")["rc"] == 0
    one = pi.current()
    pi.stage("2", {"tflite": GRAPH + b"v2", "alphabet": ALPHABET})
    assert pi.run("2")["rc"] == 0
    two = pi.current()
    os.unlink(str(pi.models / "current"))
    os.symlink(one, str(pi.models / "current"))
    os.unlink(str(pi.models / "previous"))
    os.symlink(two, str(pi.models / "previous"))
    run = pi.run("2")
    assert run["rc"] == 0 and run["changed"] == 1, run["failed"]
    assert _ran(run, SWITCH_IF_VERIFIED)["current_target"] == one and _ran(run, COPY) is None
    assert (pi.current(), os.readlink(str(pi.models / "previous")), pi.versions()) == (two, one, sorted([one, two]))


@pytest.mark.fault
def test_a_model_file_emptied_on_the_pi_is_sent_again_alone_and_proved(pi: Pi) -> None:
    pi.stage("1", {"tflite": GRAPH, "alphabet": ALPHABET})
    assert pi.run("1")["rc"] == 0
    version = pi.models / pi.current()
    (version / "output_graph.tflite").write_bytes(b"")
    alphabet = (version / "alphabet.txt").stat().st_ino
    run = pi.run("1")
    assert run["rc"] == 0, run["failed"]
    copy = _ran(run, "Create the directory of the new version and copy the model files from the controller's cache into it.")
    assert copy is not None and copy["changes"] == {str(version / "output_graph.tflite"): ["content"]}
    said = _ran(run, "Say why an installed copy of this version is proved again.")
    assert said is not None and said["msg"] == (
        "{v} is not trusted: tflite file {v}/output_graph.tflite has 0 bytes, {n} were verified (damaged, e.g. by a power loss). "
        "It is copied and proved again (it is the current version).".format(v=version, n=len(GRAPH))), said
    assert _ran(run, SWITCH_PROVED) is not None
    assert (version / "output_graph.tflite").read_bytes() == GRAPH and (version / "alphabet.txt").stat().st_ino == alphabet
    assert pi.versions() == [version.name], "the current version proved again in place"


@pytest.mark.bad_input
@pytest.mark.parametrize("fault,message", [
    ("missing", "staged_artifact: m 2 tflite is not staged on the controller ({graph} is missing). Run playbooks/stage.yml first "
                "(site.yml does)."),
    ("unknown", "staged_artifact: no sha256 is known for m 2 tflite ({graph}): none is pinned in the artifact table and none was "
                "recorded on first use (artifact_stage_trusted_sums_file). Stage it with playbooks/stage.yml"),
], ids=["missing", "unknown-sum"])
def test_a_file_the_cache_lacks_or_whose_sum_is_unknown_is_refused_before_the_pi_changes(pi: Pi, fault: str, message: str) -> None:
    pi.stage("1", {"tflite": GRAPH, "alphabet": ALPHABET})
    assert pi.run("1")["rc"] == 0
    working = pi.current()
    pi.stage("2", {"tflite": GRAPH + b"v2", "alphabet": ALPHABET})
    graph = pi.cache / "m" / "2" / "output_graph.tflite"
    if fault == "missing":
        graph.unlink()
    else:
        pi.catalog["artifacts"]["m"]["2"]["tflite"]["sha256"] = ""
    run = pi.run("2")
    assert run["rc"] != 0 and message.format(graph=graph) in run["failed"], run["failed"]
    assert pi.current() == working and pi.versions() == [working], "nothing on the Pi changed"


@pytest.mark.fault
@pytest.mark.parametrize("pinned", [True, False], ids=["pinned", "trusted-on-first-use"])
def test_a_staged_file_changed_since_staging_is_refused_before_the_pi_changes(pi: Pi, pinned: bool) -> None:
    """Another run staged other bytes under the same name and version: the sum the table pins (or the first use
    recorded) no longer holds, and nothing reaches the Pi."""
    pi.stage("1", {"tflite": GRAPH, "alphabet": ALPHABET}, pinned=pinned)
    assert pi.run("1")["rc"] == 0
    working = pi.current()
    sums = pi.stage("2", {"tflite": GRAPH + b"v2", "alphabet": ALPHABET}, pinned=pinned)
    replaced = pi.cache / "m" / "2" / "output_graph.tflite"
    replaced.write_bytes(GRAPH + b"other")
    run = pi.run("2")
    assert run["rc"] != 0
    for part in (str(replaced), sums["tflite"], _sha(GRAPH + b"other"), "run playbooks/stage.yml again"):
        assert part in run["failed"], (part, run["failed"])
    assert pi.current() == working and pi.versions() == [working], "nothing on the Pi changed"



@pytest.mark.fault
@pytest.mark.parametrize("before", ["nothing", "a working version", "this version, damaged"])
def test_a_model_that_does_not_prove_is_reported_with_what_the_pi_is_left_with(pi: Pi, before: str) -> None:
    """The rescue's message says what is true: a working model kept, none yet, or the damaged current one left."""
    pi.stage("1", {"tflite": GRAPH, "alphabet": ALPHABET})
    working = ""
    if before != "nothing":
        assert pi.run("1")["rc"] == 0
        working = pi.current()
    if before == "this version, damaged":
        (pi.models / working / "output_graph.tflite").write_bytes(b"")
        version = "1"
    else:
        pi.stage("2", {"tflite": GRAPH + b"v2", "alphabet": ALPHABET})
        version = "2"
    (pi.tmp / "deepspeech").write_text("#!/bin/sh\necho 'CreateModel failed with error code 12288' >&2\nexit 3\n")
    run = pi.run(version)
    assert run["rc"] != 0
    said = {
        "nothing": "was refused and removed; this Pi has no model installed yet. Reason:",
        "a working version": "was refused and removed; this Pi keeps its working model {} ({}/current). Reason:".format(
            working, pi.models),
        "this version, damaged": "was refused. It is the version {}/current points at, left in place for you to inspect".format(
            pi.models),
    }[before]
    assert said in run["failed"] and "CreateModel failed with error code 12288" in run["failed"], run["failed"]
    assert pi.current() == working and pi.versions() == ([working] if working else [])
