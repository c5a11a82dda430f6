"""Every shared value (account, directories, virtualenv, model link, generated scorer) is defined once,
in the role voice_appliance, and every role derives its own from it (issue 13, item 3).

Statically: no role default or variable file spells the shared paths or the account any more, and
every role that touches the Pi depends on voice_appliance. Through Ansible: a play with every such
role, the account and the three directories changed in the inventory, shows every derived variable
of every role moved with them (nothing of the roles' tasks runs: only their argument checks).
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest
import yaml
from ansible_collections.pivoice.voice_appliance.plugins.filter.shared_values import shared_value_errors
from task_tree import task_file
from test_probe import _ansible_playbook

REPO = Path(__file__).resolve().parent.parent
ROLES = REPO / "roles"
SHARED = yaml.safe_load((ROLES / "voice_appliance" / "defaults" / "main.yml").read_text())
OLD = ("/opt/voice-appliance", "/var/lib/voice-appliance/", "/etc/voice-appliance")
# Roles that run on the Pi (artifact_stage runs on the controller only).
PI_ROLES = sorted(p.parent.parent.name for p in ROLES.glob("*/meta/main.yml")
                  if p.parent.parent.name not in ("voice_appliance", "artifact_stage"))
MOVED = {"voice_appliance_user": "assistant", "voice_appliance_group": "assistants",
         "voice_appliance_base_dir": "/srv/va", "voice_appliance_state_dir": "/srv/va-state",
         "voice_appliance_config_dir": "/srv/va-etc"}
# Shared switches (not paths): the roles' variables that follow them are checked on their own.
SWITCHES = ("voice_appliance_wyoming_",)


def _derived() -> Dict[str, List[str]]:
    """Per role, its default variables that are derived from a shared value."""
    found: Dict[str, List[str]] = {}
    for role in PI_ROLES:
        defaults = yaml.safe_load((ROLES / role / "defaults" / "main.yml").read_text()) or {}
        found[role] = sorted(name for name, value in defaults.items() if "voice_appliance_" in json.dumps(value)
                             and not all(shared.startswith(SWITCHES) for shared in re.findall(r"voice_appliance_\w+", json.dumps(value))))
    return found


def _play(tmp_path: Path, inventory_vars: Dict[str, Any], play: Dict[str, Any], *args: str,
          **env_extra: str) -> "subprocess.CompletedProcess[str]":
    """ansible-playbook on localhost (local connection) with these inventory variables and this one play."""
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump({"all": {"hosts": {"localhost": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}, "vars": inventory_vars}}))
    (tmp_path / "play.yml").write_text(yaml.safe_dump([play], sort_keys=False))
    (tmp_path / "ansible.cfg").write_text("[defaults]\nroles_path = {}\nretry_files_enabled = false\n".format(ROLES))
    env = dict(os.environ, ANSIBLE_CONFIG=str(tmp_path / "ansible.cfg"), **env_extra)
    return subprocess.run([_ansible_playbook(), "-i", str(tmp_path / "hosts.yml"), str(tmp_path / "play.yml"), *args], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, timeout=300, check=False)


def test_the_shared_paths_and_the_account_are_spelled_only_in_voice_appliance() -> None:
    spelled = []
    for role in PI_ROLES:
        for part in ("defaults", "vars"):
            path = ROLES / role / part / "main.yml"
            if not path.exists():
                continue
            for name, value in (yaml.safe_load(path.read_text()) or {}).items():
                text = json.dumps(value)
                if any(old in text for old in OLD) and name != "appliance_pull_legacy_state_dirs":
                    spelled.append("{}/{}: {} = {}".format(role, part, name, text))
                if name.endswith(("_user", "_group")) and value in ("voice",):
                    spelled.append("{}/{}: {} = {}".format(role, part, name, text))
    assert spelled == []
    assert SHARED["voice_appliance_user"] == "voice" and SHARED["voice_appliance_base_dir"] == "/opt/voice-appliance"


@pytest.mark.parametrize("role", PI_ROLES)
def test_every_role_on_the_pi_depends_on_the_shared_values(role: str) -> None:
    meta = yaml.safe_load((ROLES / role / "meta" / "main.yml").read_text())
    assert {"role": "voice_appliance"} in meta["dependencies"], meta["dependencies"]


def test_a_changed_account_and_directories_move_every_piece(tmp_path: Path) -> None:
    derived = _derived()
    names = [name for role in PI_ROLES for name in derived[role]]
    assert len(names) >= 30, derived  # the venv, paths and account of every role
    play = {"name": "Every role with the shared values moved.", "hosts": "localhost", "gather_facts": False, "roles": PI_ROLES,
            "post_tasks": [{"name": "Show the derived values.", "tags": ["shown"],
                            "ansible.builtin.debug": {"msg": "{{ dict(names | zip(query('ansible.builtin.vars', *names))) }}"},
                            "vars": {"names": names}}]}
    run = _play(tmp_path, dict(MOVED, appliance_pull_repo_url="file:///srv/fleet.git"),  # the one required option
                play, "--tags", "shown", ANSIBLE_STDOUT_CALLBACK="ansible.posix.json")
    assert run.returncode == 0, run.stdout[-4000:]
    report: Dict[str, Any] = json.loads(run.stdout[run.stdout.find("\n{") + 1:])  # after any warning lines
    shown = [task for play in report["plays"] for task in play["tasks"] if task["task"]["name"] == "Show the derived values."]
    values: Dict[str, Any] = shown[0]["hosts"]["localhost"]["msg"]
    stale = {name: value for name, value in values.items() if any(old.rstrip("/") in json.dumps(value) for old in OLD)}
    assert stale == {}
    for name, value in values.items():
        if name.endswith("_user"):
            assert value == "assistant", name
        elif name.endswith("_group"):
            assert value == "assistants", name
        else:
            assert any(str(value).startswith(new) or "/srv/va" in json.dumps(value) for new in MOVED.values()), (name, value)
    assert values["deepspeech_runtime_venv"] == values["rhasspy_asr_venv"] == values["wyoming_asr_venv"] == "/srv/va/venv"
    assert values["scorer_retrain_output_scorer"] == values["wyoming_asr_generated_scorer"] == "/srv/va-state/generated.scorer"
    assert values["rhasspy_asr_model_link"] == "/srv/va/models/current"


@pytest.mark.parametrize("switches,expected", [
    ({}, [True, True, ["python3-zeroconf"]]),
    ({"voice_appliance_wyoming_zeroconf": False}, [True, False, []]),
    ({"voice_appliance_wyoming_enabled": False}, [False, True, []]),
])
def test_the_wyoming_switches_are_shared_by_the_service_and_the_one_apt_call(tmp_path: Path, switches: Dict[str, Any],
                                                                             expected: List[Any]) -> None:
    """wyoming_asr follows the shared switches, and deepspeech_deps' apt call gets python3-zeroconf from them."""
    names = ["wyoming_asr_enabled", "wyoming_asr_zeroconf", "voice_appliance_debian_packages"]
    play = {"name": "The Wyoming switches.", "hosts": "localhost", "gather_facts": False, "roles": ["deepspeech_deps", "wyoming_asr"],
            "post_tasks": [{"name": "Show the derived values.", "tags": ["shown"],
                            "ansible.builtin.debug": {"msg": "{{ query('ansible.builtin.vars', *names) }}"}, "vars": {"names": names}}]}
    run = _play(tmp_path, switches, play, "--tags", "shown", ANSIBLE_STDOUT_CALLBACK="ansible.posix.json")
    assert run.returncode == 0, run.stdout[-4000:]
    report: Dict[str, Any] = json.loads(run.stdout[run.stdout.find("\n{") + 1:])
    shown = [task for play in report["plays"] for task in play["tasks"] if task["task"]["name"] == "Show the derived values."]
    assert [v if not isinstance(v, str) else v == "True" for v in shown[0]["hosts"]["localhost"]["msg"]] == expected


@pytest.mark.bad_input
@pytest.mark.parametrize("moved,message", [
    ({"voice_appliance_user": "root"}, "voice_appliance_user/voice_appliance_group is root/voice: the appliance's services run as an unprivileged account"),
    ({"voice_appliance_state_dir": "/opt/voice-appliance/state"},
     "voice_appliance_state_dir (/opt/voice-appliance/state) is voice_appliance_base_dir (/opt/voice-appliance) or lies inside it"),
    ({"voice_appliance_config_dir": "/var/lib/voice-appliance/"},
     "voice_appliance_config_dir (/var/lib/voice-appliance/) is voice_appliance_state_dir (/var/lib/voice-appliance) or lies inside it"),
    ({"rhasspy_asr_mqtt_port": 1884, "rhasspy_asr_mqtt_bind_address": "127.0.0.1"},
     "rhasspy_asr_mqtt_bind_address is set, but this release names it mqtt_broker_bind_address (the MQTT broker is the role "
     "mqtt_broker now; its endpoint and accounts are shared values of voice_appliance). rhasspy_asr_mqtt_port is set, but "
     "this release names it voice_appliance_mqtt_port"),
])
def test_root_or_mixed_directories_are_refused_before_any_role_runs(tmp_path: Path, moved: Dict[str, str], message: str) -> None:
    run = _play(tmp_path, moved, {"name": "The first role that uses the shared values.", "hosts": "localhost",
                                  "gather_facts": False, "roles": ["deepspeech_deps"]}, ANSIBLE_NOCOLOR="1")
    assert run.returncode != 0
    assert message in " ".join(run.stdout.split()), run.stdout[-3000:]
    assert "TASK [deepspeech_deps" not in run.stdout.replace("TASK [deepspeech_deps : Validating arguments", ""), run.stdout[-3000:]


@pytest.mark.bad_input
@pytest.mark.parametrize("changed,expected", [
    ({}, []),
    ({"voice_appliance_group": 0}, ["voice_appliance_user/voice_appliance_group is voice/0: the appliance's services run as an "
                                    "unprivileged account; give another name (the default is voice)."]),
    ({"voice_appliance_base_dir": "/srv/va/", "voice_appliance_state_dir": "/srv/va", "voice_appliance_config_dir": "/srv/va-etc"},
     ["voice_appliance_base_dir (/srv/va/) is voice_appliance_state_dir (/srv/va) or lies inside it; voice_appliance_state_dir "
      "(/srv/va) is voice_appliance_base_dir (/srv/va/) or lies inside it: the base, state and configuration directories must be "
      "separate (e.g. /opt/voice-appliance, /var/lib/voice-appliance, /etc/voice-appliance)."]),
    ({"voice_appliance_state_dir": "/srv/va-state", "voice_appliance_config_dir": "/srv/va-state-etc"}, []),  # a prefix, not inside
])
def test_shared_value_errors_name_every_problem_with_its_fix(changed: Dict[str, Any], expected: List[str]) -> None:
    values = {name: SHARED[name] for name in ("voice_appliance_user", "voice_appliance_group", "voice_appliance_base_dir",
                                              "voice_appliance_state_dir", "voice_appliance_config_dir")}
    assert shared_value_errors(dict(values, **changed)) == expected


def test_shared_value_errors_report_every_problem_at_once() -> None:
    errors = shared_value_errors({"voice_appliance_user": "root", "voice_appliance_group": "voice", "voice_appliance_base_dir": "/a",
                                  "voice_appliance_state_dir": "/a/b", "voice_appliance_config_dir": "/c"},
                                 ["old_b", "old_a"], {"old_a": "new_a", "old_b": "new_b"})
    assert [e.split(" ", 1)[0] for e in errors] == ["voice_appliance_user/voice_appliance_group", "voice_appliance_state_dir", "old_a"]
    assert errors[2].index("old_a is set") < errors[2].index("old_b is set") and errors[2].endswith(
        "Rename them in your inventory or group_vars and run again; nothing was changed.")


def test_every_unit_is_installed_the_one_way() -> None:
    """Every systemd unit a role writes goes through the module systemd_units (verified under its real name,
    written atomically, systemd reloaded once): no template task writes a unit, every unit's template exists in
    its role, and nothing else spells systemd-analyze verify."""
    units = []
    for path in sorted(ROLES.glob("*/tasks/*.yml")):
        role = path.parent.parent
        for task in task_file(path):
            args = task.get("ansible.builtin.template") or task.get("ansible.builtin.copy") or {}
            dest = str(args.get("dest", ""))
            assert not dest.startswith("/etc/systemd/system/"), (path, task["name"])
            given = (task.get("pivoice.voice_appliance.systemd_units") or {}).get("units", [])
            if isinstance(given, str):  # an expression over the task's vars (mqtt_broker's drop-in, with the local broker)
                given = [value for name, value in (task.get("vars") or {}).items() if name in given and isinstance(value, dict)]
                assert given, (path, task["name"], "units names none of the task's vars")
            for unit in given:
                template = re.search(r"lookup\('ansible.builtin.template', '([^']+)'\)", unit["content"])
                assert template and (role / "templates" / template.group(1)).is_file(), (path, unit)
                units.append(unit["name"])
    assert len(units) >= 11, units
    spelled = [str(p.relative_to(REPO)) for p in list(ROLES.rglob("*.yml")) + list((REPO / "plugins").rglob("*.py"))
               if "systemd-analyze verify" in p.read_text() and p.name != "systemd_units.py"]
    assert spelled == []
