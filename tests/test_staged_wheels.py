"""The wheels deepspeech_runtime copies from the controller's artifact cache (its own, and the files the layers of
rhasspy_asr and wyoming_asr name), in check mode.

A wheel that was never staged is refused by paths_state's action plugin or its subclass python_env's (before
anything on the Pi changes) with the role's own advice (the entry's fix): the message names the file and how to
stage it. A staged wheel passes: check mode predicts the copy. Each host runs on this controller (connection local), with the facts of a
described Pi and an artifact cache of its own: deepspeech_runtime whole, or wyoming_asr's layer (tasks_from wheel)
copied as deepspeech_runtime copies it.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
FACTS = {"architecture": "x86_64", "python": {"version": {"major": 3, "minor": 11, "micro": 2}, "executable": sys.executable}}
STAGE = ": stage it first with ansible-playbook playbooks/stage.yml -i <inventory> (site.yml does this before provisioning)."
# The copy of each role's wheel (paths_state), by the host that runs it.
COPIES = {"deepspeech_runtime": "deepspeech_runtime : Copy every layer's wheels to the Pi, build the ASR virtualenv from them, "
                                "prove it and switch to it.",
          "wyoming_asr": "Copy the wyoming layer's files as deepspeech_runtime does."}

PLAYBOOK = """
- name: Copy the wheels of described Pis in check mode.
  hosts: all
  gather_facts: false
  vars:
    ansible_facts: {facts}
  tasks:
    - name: Load the artifact table (deepspeech_runtime loads it itself).
      ansible.builtin.include_role:
        name: artifact_stage
        tasks_from: catalog
        public: true
      when: entry == 'wyoming_asr'
    - name: Run the deepspeech_runtime role.
      ansible.builtin.include_role:
        name: deepspeech_runtime
      when: entry == 'deepspeech_runtime'
    - name: Choose the wyoming layer (wyoming_asr, tasks_from wheel).
      ansible.builtin.include_role:
        name: wyoming_asr
        tasks_from: wheel
      when: entry == 'wyoming_asr'
    - name: Copy the wyoming layer's files as deepspeech_runtime does.
      pivoice.voice_appliance.paths_state:
        directories: "{{{{ wyoming_asr_venv_paths.directories }}}}"
        files: "{{{{ wyoming_asr_venv_paths.files }}}}"
      when: entry == 'wyoming_asr'
"""


def _wyoming_wheel() -> str:
    """The wyoming wheel's path below the cache: the role's version, its file name from the table."""
    version = yaml.safe_load((REPO / "roles/wyoming_asr/defaults/main.yml").read_text())["wyoming_asr_wyoming_version"]
    table = yaml.safe_load((REPO / "artifacts.yml").read_text())["artifacts"]["wyoming_wheel"]
    return "wyoming_wheel/{}/{}".format(version, table[version]["any"]["filename"])


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Dict[str, Any]]:
    work = tmp_path_factory.mktemp("staged-wheels")
    staged = work / "staged-cache" / _wyoming_wheel()
    staged.parent.mkdir(parents=True)
    staged.write_bytes(b"a wheel")
    common = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
              "voice_appliance_base_dir": str(work / "pi"), "artifact_stage_cache_dir": str(work / "empty-cache")}
    hosts = {
        "runtime_unstaged": dict(common, entry="deepspeech_runtime", deepspeech_deps_debian_arch="amd64",
                                 deepspeech_tools_venv_layer={}),
        "wyoming_unstaged": dict(common, entry="wyoming_asr", wyoming_asr_enabled=True),
        "wyoming_staged": dict(common, entry="wyoming_asr", wyoming_asr_enabled=True,
                               artifact_stage_cache_dir=str(work / "staged-cache")),
    }
    (work / "hosts.yml").write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
    (work / "play.yml").write_text(PLAYBOOK.format(facts=json.dumps(FACTS)))
    (work / "ansible.cfg").write_text("[defaults]\n")  # no timing callbacks, no fact cache: only JSON on stdout
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_CONFIG=str(work / "ansible.cfg"),
               ANSIBLE_ROLES_PATH=str(REPO / "roles"))
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(work / "hosts.yml"), "--check",
                           str(work / "play.yml")], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=300)
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        pytest.fail("ansible-playbook printed no JSON:\n" + proc.stdout[-3000:] + proc.stderr[-3000:])
    seen: Dict[str, Dict[str, Any]] = {host: {"work": str(work)} for host in hosts}
    for task in report["plays"][0]["tasks"]:
        for host, result in task["hosts"].items():
            if task["task"]["name"] == COPIES[hosts[host]["entry"]] or result.get("failed"):
                seen[host].update(result, task=task["task"]["name"])
    return seen


@pytest.mark.bad_input
def test_an_unstaged_deepspeech_wheel_is_refused_naming_it_and_how_to_stage_it(outcomes: Dict[str, Dict[str, Any]]) -> None:
    result = outcomes["runtime_unstaged"]
    assert result["task"] == COPIES["deepspeech_runtime"] and result["failed"], result
    wheel = "deepspeech-0.7.4+compat.tflite.amd64-py3-none-manylinux1_x86_64.whl"
    assert re.search(r"its src {}/empty-cache/compat-wheels/\w+/{} is not on the controller".format(
        re.escape(result["work"]), re.escape(wheel)), result["msg"]), result["msg"]
    assert result["msg"].endswith("The DeepSpeech wheel for this Pi's architecture ({}) is built into the controller's artifact "
                                  "cache ({}/empty-cache){}".format(wheel, result["work"], STAGE)), result["msg"]
    assert not (Path(result["work"]) / "pi").exists(), "nothing was made on the Pi"


@pytest.mark.bad_input
def test_an_unstaged_wyoming_wheel_is_refused_naming_it_and_how_to_stage_it(outcomes: Dict[str, Dict[str, Any]]) -> None:
    result = outcomes["wyoming_unstaged"]
    assert result["task"] == COPIES["wyoming_asr"] and result["failed"], result
    wheel = _wyoming_wheel()
    assert "its src {}/empty-cache/{} is not on the controller".format(result["work"], wheel) in result["msg"], result["msg"]
    assert result["msg"].endswith("wyoming_asr needs the wyoming wheel ({}) in the controller's artifact cache "
                                  "({}/empty-cache){}".format(Path(wheel).name, result["work"], STAGE)), result["msg"]


def test_a_staged_wheel_passes_and_check_mode_predicts_its_copy(outcomes: Dict[str, Dict[str, Any]]) -> None:
    result = outcomes["wyoming_staged"]
    assert result["task"] == COPIES["wyoming_asr"] and not result.get("failed") and result["changed"], result
    assert not (Path(result["work"]) / "pi").exists(), "check mode made nothing"
