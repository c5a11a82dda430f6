"""The data path is named once (issue 13, item 2): playbooks/vars/data_path.yml.

Statically: the steps are the ones README's table lists, in its order, each role and staging tasks file
exists, and the playbooks that stage (stage.yml) and provision (appliance.yml, rollout.yml) name no step's
role themselves. Through Ansible: site.yml, run with ``--tags preflight --check`` against this machine,
includes every provisioning role in the data path's order, runs the preflight checks through that
include (README's ``--tags preflight``) and no other task of the roles.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest
import yaml
from test_probe import _ansible_playbook

REPO = Path(__file__).resolve().parent.parent
PATH: List[Dict[str, Any]] = yaml.safe_load((REPO / "playbooks" / "vars" / "data_path.yml").read_text())["voice_appliance_data_path"]
PROVISION = [step["role"] for step in PATH if not step["gate"]]


def _readme_table() -> List[List[str]]:
    """The rows (step, role) of README's data-path table, the controller-side stage row excluded."""
    text = (REPO / "README.md").read_text()
    section = text[text.index("## The data path"):]
    rows = [line.split("|")[1:3] for line in section.split("\n\n")[2].splitlines()[2:]]
    return [[step.strip(), role.strip().split("`")[1]] for step, role in rows if step.strip() != "stage"]


def test_the_steps_are_in_order_and_verify_is_the_one_gate_at_the_end() -> None:
    """The issue's order, but runtime after tools: the ASR virtualenv is built in one piece from every wheel, the
    tools' among them, and the model step proves a new model with it."""
    assert [step["step"] for step in PATH] == ["deps", "tools", "runtime", "model", "retrain", "broker", "rhasspy", "wyoming", "verify"]
    assert [step["step"] for step in PATH if step["gate"]] == ["verify"]
    assert all(set(step) == {"step", "role", "stage", "gate"} for step in PATH), PATH


@pytest.mark.parametrize("step", PATH, ids=[step["step"] for step in PATH])
def test_each_step_names_a_role_and_staging_tasks_that_exist(step: Dict[str, Any]) -> None:
    role = REPO / "roles" / step["role"]
    assert (role / "tasks" / "main.yml").is_file(), step
    if step["stage"]:
        assert (role / "tasks" / (step["stage"] + ".yml")).is_file(), step


def test_every_role_that_runs_on_the_pi_is_a_step() -> None:
    """A new role is either a step of the data path or one of the helpers that are not (staging, shared
    values, ansible-pull's setup, which is its own playbook)."""
    roles = {path.name for path in (REPO / "roles").iterdir() if (path / "tasks" / "main.yml").is_file()}
    assert roles - {step["role"] for step in PATH} == {"artifact_stage", "voice_appliance", "appliance_pull"}


def test_readme_s_table_lists_the_steps_in_the_data_path_s_order() -> None:
    assert _readme_table() == [[step["step"], step["role"]] for step in PATH]


@pytest.mark.parametrize("playbook", ["stage.yml", "appliance.yml", "rollout.yml"])
def test_the_playbooks_that_follow_the_data_path_name_no_step_s_role_themselves(playbook: str) -> None:
    text = (REPO / "playbooks" / playbook).read_text()
    assert "vars_files: [vars/data_path.yml]" in text
    assert "voice_appliance_data_path" in text
    assert [role for role in PROVISION if role in text] == []


def test_site_follows_the_data_path_and_tags_preflight_runs_the_checks_alone(tmp_path: Path) -> None:
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": {"voice_assistants": {"hosts": {"localhost": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}}}))
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_CALLBACKS_ENABLED="ansible.posix.timer",
               ANSIBLE_FACT_CACHING="memory", ANSIBLE_NOCOLOR="1")
    run = subprocess.run([_ansible_playbook(), "-i", str(tmp_path / "hosts.yml"), "site.yml", "--tags", "preflight", "--check"],
                         cwd=str(REPO), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                         timeout=300, check=False)
    report, _ = json.JSONDecoder().raw_decode(run.stdout[run.stdout.index("{"):])
    tasks = [(task["task"]["name"], task["hosts"].get("localhost", {})) for play in report["plays"] for task in play["tasks"]]
    included = [result["include_args"]["name"] for name, host in tasks if name.startswith("Provision the Pi")
                for result in host["results"]]
    assert included == PROVISION
    include = yaml.safe_load((REPO / "roles" / "deepspeech_deps" / "tasks" / "main.yml").read_text())[0]["name"]
    ran = [name.split(" : ", 1) for name, host in tasks
           if " : " in name and "Validating arguments" not in name and not name.endswith(" : " + include)]
    assert {role for role, _ in ran} == {"deepspeech_deps"}, ran
    preflight = yaml.safe_load((REPO / "roles" / "deepspeech_deps" / "tasks" / "preflight.yml").read_text())
    assert [name for _, name in ran] == [task["name"] for task in preflight if "name" in task]
