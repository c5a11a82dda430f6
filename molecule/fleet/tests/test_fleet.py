"""The fleet rollout: model fleet-2 in batches, gated by the health check, with one Pi getting a damaged build.

converge provisioned every Pi with model 1. Here playbooks/rollout.yml rolls model fleet-2 out with the
ramp 1, 2, 4, rest and max_fail_percentage 0. fleet-a05's build of model fleet-2 is damaged (it loads but
hears nonsense): its batch fails verification, fleet-a05 goes back to model 1, and the rollout stops
before the next batch. Then playbooks/verify.yml proves every Pi healthy, and the fleet reports of
both runs are read.
"""
from __future__ import annotations

import base64
import functools
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

import pytest
import yaml

REPO = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"])
sys.path.insert(0, str(REPO / "tests"))
from mqtt_client import ACCEPTED, NOT_AUTHORIZED, Client  # noqa: E402  (the repository's test helper)
EPHEMERAL = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
DAMAGED = "fleet-a05"
SERIAL = [1, 2, 4, "100%"]
SHARED_DEFAULTS = yaml.safe_load((REPO / "roles" / "voice_appliance" / "defaults" / "main.yml").read_text(encoding="utf-8"))
SHARED = ["voice_appliance_user", "voice_appliance_group", "voice_appliance_base_dir", "voice_appliance_state_dir",
          "voice_appliance_config_dir"]
MOVED = "fleet-a03"  # its owner moved every shared value (molecule.yml host_vars)
MODELS = "/opt/voice-appliance/models"
EXPECTED = (REPO / "files" / "fixture" / "das_ist_ein_test.txt").read_text(encoding="utf-8").strip()


def _batches(hosts: List[str]) -> List[List[str]]:
    batches, start = [], 0
    for size in SERIAL:
        count = len(hosts) if size == "100%" else int(size)
        batches.append(hosts[start:start + count])
        start += count
    return [batch for batch in batches if batch]


def _on_pi(pi: str, command: str) -> str:
    return subprocess.run(["docker", "exec", pi, "sh", "-c", command], stdout=subprocess.PIPE,
                          universal_newlines=True, check=True).stdout.strip()


@functools.lru_cache(maxsize=None)
def _inventory() -> Dict[str, Any]:
    """ansible-inventory --list, read once: the inventory does not change while the tests run."""
    out = subprocess.run(["ansible-inventory", "-i", INVENTORY, "--list"], stdout=subprocess.PIPE,
                         universal_newlines=True, check=True).stdout
    listed: Dict[str, Any] = json.loads(out)
    return listed


def _pis() -> List[str]:
    """The group's Pis in inventory order (the order rollout.yml batches them in)."""
    return list(_inventory()["voice_assistants"]["hosts"])


def _inventory_vars(pi: str) -> Dict[str, Any]:
    """The Pi's variables as the inventory gives them (group and host vars merged, not yet templated)."""
    return dict(_inventory()["_meta"]["hostvars"][pi])


def _shared(pi: str) -> Dict[str, str]:
    """The Pi's shared values (roles/voice_appliance): its inventory's, else the defaults."""
    given = _inventory_vars(pi)
    return {name: str(given.get(name, SHARED_DEFAULTS[name])) for name in SHARED}


def _state(pi: str) -> Dict[str, str]:
    shared = _shared(pi)
    models = shared["voice_appliance_base_dir"] + "/models"
    scorer = shared["voice_appliance_state_dir"] + "/generated.scorer"
    return {"model": _on_pi(pi, "readlink " + models + "/current"), "previous": _on_pi(pi, "readlink " + models + "/previous || true"),
            "scorer": _on_pi(pi, "sha256sum " + scorer + " | cut -d' ' -f1")}


def _playbook(name: str, report: Path, *extra: str) -> Dict[str, Any]:
    env = dict(os.environ, ANSIBLE_ROLES_PATH=str(REPO / "roles"), ANSIBLE_CALLBACK_PLUGINS=str(REPO / "plugins" / "callback"),
               ANSIBLE_CALLBACKS_ENABLED="fleet_report", PI_VOICE_FLEET_REPORT_DIR=str(report), ANSIBLE_FORCE_COLOR="0")
    started = time.time()
    run = subprocess.run(["ansible-playbook", "-i", INVENTORY, str(REPO / "playbooks" / name)] + list(extra),
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, env=env,
                         check=False, timeout=3600)
    print("{} took {:.0f} s, exit {}".format(name, time.time() - started, run.returncode))
    return {"rc": run.returncode, "out": run.stdout, "report": report}


@pytest.fixture(scope="module")
def fleet() -> Dict[str, Any]:
    hosts = _pis()
    before = {pi: _state(pi) for pi in hosts}
    rollout = _playbook("rollout.yml", EPHEMERAL / "report-rollout", "-e", "fleet_model_version=fleet-2",
                        "-e", json.dumps({"rollout_serial": SERIAL}))
    after = {pi: _state(pi) for pi in hosts}
    return {"hosts": hosts, "batches": _batches(hosts), "before": before, "after": after, "rollout": rollout}


def _rows(report: Path) -> Dict[str, Dict[str, Any]]:
    data = json.loads((report / "fleet-report.json").read_text(encoding="utf-8"))
    return {row["host"]: row for row in data["hosts"]}


def _stopped_at(fleet: Dict[str, Any]) -> int:
    return next(i for i, batch in enumerate(fleet["batches"]) if DAMAGED in batch)


def test_the_rollout_stops_after_the_batch_with_the_failed_pi(fleet: Dict[str, Any]) -> None:
    rollout = fleet["rollout"]
    assert rollout["rc"] != 0, rollout["out"][-3000:]
    assert "{} failed the rollout at".format(DAMAGED) in rollout["out"], rollout["out"][-5000:]
    stop = _stopped_at(fleet)
    assert stop < len(fleet["batches"]) - 1, "the damaged Pi must not be in the last batch: {}".format(fleet["batches"])
    for pi in [pi for batch in fleet["batches"][stop + 1:] for pi in batch]:
        assert fleet["after"][pi] == fleet["before"][pi], (pi, "was changed after the rollout should have stopped")
        assert fleet["after"][pi]["model"].startswith("fixture_model-1-"), fleet["after"][pi]


def test_the_healthy_pis_of_the_reached_batches_run_model_2(fleet: Dict[str, Any]) -> None:
    reached = [pi for batch in fleet["batches"][:_stopped_at(fleet) + 1] for pi in batch if pi != DAMAGED]
    assert len(reached) >= 3, fleet["batches"]
    for pi in reached:
        assert fleet["after"][pi]["model"].startswith("fixture_model-fleet-2-"), (pi, fleet["after"][pi])
        assert fleet["after"][pi]["previous"] == fleet["before"][pi]["model"]


def test_the_failed_pi_runs_its_previous_model_and_scorer(fleet: Dict[str, Any]) -> None:
    assert fleet["after"][DAMAGED] == fleet["before"][DAMAGED], fleet["after"][DAMAGED]  # model, previous, scorer
    # The damaged version stays for a look, no longer marked verified (rollback.yml would refuse it).
    damaged = _on_pi(DAMAGED, "ls -d " + MODELS + "/fixture_model-fleet-2-damaged-*")
    assert damaged and _on_pi(DAMAGED, "test -e {}/.verified && echo verified || echo unverified".format(damaged)) == "unverified"
    # The ASR service serves model 1 again: the recording over MQTT is heard right.
    asr = json.loads(_on_pi(DAMAGED, "cat /etc/ansible/facts.d/rhasspy_asr.fact"))
    assert asr["username"] and asr["password_file"], asr  # the fleet's broker requires a login
    heard = json.loads(_on_pi(DAMAGED, "/opt/voice-appliance/venv/bin/voice-hermes-check --wav "
                                       "/var/lib/voice-appliance/verify/das_ist_ein_test.wav --site-id {} --port {} "
                                       "--username {} --password-file {}".format(
                                           asr["site_id"], asr["mqtt_port"], asr["username"], asr["password_file"])))
    assert heard["transcript"] == EXPECTED, heard


def test_the_rollout_report_has_a_row_per_pi(fleet: Dict[str, Any]) -> None:
    report = fleet["rollout"]["report"]
    rows = _rows(report)
    assert set(rows) == set(fleet["hosts"]), sorted(rows)
    stop = _stopped_at(fleet)
    for index, batch in enumerate(fleet["batches"]):
        for pi in batch:
            status = rows[pi]["status"]
            if pi == DAMAGED:
                assert status == "rolled back" and "failed the rollout at" in rows[pi]["reason"], rows[pi]
            elif index <= stop:
                assert status == "ok" and rows[pi]["model_id"].startswith("fixture_model-fleet-2-"), rows[pi]
            else:
                assert status == "not reached", rows[pi]
    markdown = (report / "fleet-report.md").read_text(encoding="utf-8")
    html = (report / "fleet-report.html").read_text(encoding="utf-8")
    for pi in fleet["hosts"]:
        assert pi in markdown and pi in html
    assert "rolled back" in markdown and "rolled back" in html


def test_after_the_rollout_every_pi_verifies(fleet: Dict[str, Any]) -> None:
    verify = _playbook("verify.yml", EPHEMERAL / "report-verify")
    assert verify["rc"] == 0, verify["out"][-5000:]
    rows = _rows(verify["report"])
    assert set(rows) == set(fleet["hosts"])
    for pi, row in rows.items():
        assert row["status"] == "ok", row
        assert [check["path"] for check in row["checks"]] == ["cli", "mqtt", "wyoming"], row
        assert all(check["transcript"] == EXPECTED and check["wer"] == 0 for check in row["checks"]), row
        assert row["model_id"] == fleet["after"][pi]["model"] and len(row["model_sha256"]) == 64, row
        assert row["scorer_sha256"] == fleet["after"][pi]["scorer"], row
    arches = {row["arch"] for row in rows.values()}
    assert arches == {"x86_64", "armv7l", "aarch64"}, arches  # amd64, 32-bit bookworm and 64-bit trixie
    # The HTML page embeds the RTF plot as an image: one bar per Pi.
    html = (verify["report"] / "fleet-report.html").read_text(encoding="utf-8")
    image = re.search(r'<img[^>]+src="data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)"', html)
    assert image, html[:2000]
    svg = base64.b64decode(image.group(1)).decode("utf-8")
    assert svg.count("<rect") >= len(fleet["hosts"]) and all(pi in svg for pi in fleet["hosts"]), svg[:2000]


RECORD = MODELS + "/.rollout-remembered.json"


def test_a_pi_lost_mid_rollout_resumes_from_the_state_it_kept(fleet: Dict[str, Any]) -> None:
    """The Pi goes away (powered off) after its model switched, before its verification: the state to
    come back to stays on the Pi, and the next rollout resumes from it and says so."""
    pi = "fleet-a10"
    before = _state(pi)
    assert before["model"] == fleet["after"][pi]["model"] and not before["model"].startswith("fixture_model-fleet-2-"), before
    env = dict(os.environ, ANSIBLE_ROLES_PATH=str(REPO / "roles"), ANSIBLE_CALLBACK_PLUGINS=str(REPO / "plugins" / "callback"),
               ANSIBLE_CALLBACKS_ENABLED="fleet_report", PI_VOICE_FLEET_REPORT_DIR=str(EPHEMERAL / "report-lost"),
               ANSIBLE_FORCE_COLOR="0")
    run = subprocess.Popen(["ansible-playbook", "-i", INVENTORY, "--limit", pi, str(REPO / "playbooks" / "rollout.yml"),
                            "-e", "fleet_model_version=fleet-2"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, env=env)
    try:
        deadline = time.time() + 900
        while time.time() < deadline:
            switched = subprocess.run(["docker", "exec", pi, "sh", "-c", "test -f {} && readlink {}/current".format(RECORD, MODELS)],
                                      stdout=subprocess.PIPE, universal_newlines=True, check=False).stdout.strip()
            if switched.startswith("fixture_model-fleet-2-"):
                break
            assert run.poll() is None, "the rollout ended before the Pi switched its model"
            time.sleep(0.5)
        else:
            pytest.fail("the Pi never switched to model fleet-2")
        # Power off: killed at once, no shutdown during which the rollout could still reach the Pi.
        subprocess.run(["docker", "kill", pi], check=True, stdout=subprocess.DEVNULL)
        out, _ = run.communicate(timeout=900)
    finally:
        if run.poll() is None:
            run.kill()
        subprocess.run(["docker", "start", pi], check=False, stdout=subprocess.DEVNULL)
    assert run.returncode != 0, out[-3000:]
    # Over ssh a powered-off Pi is "unreachable"; through the docker connection the stopped container's error
    # comes back as a failed task ("Container ... is not running"). Either way the rollout did not finish it.
    lost = _rows(EPHEMERAL / "report-lost")[pi]
    assert lost["status"] in ("unreachable", "failed"), lost
    assert "is not running" in out or "UNREACHABLE" in out, out[-3000:]
    for _ in range(120):  # systemd boots the Pi again
        if subprocess.run(["docker", "exec", pi, "systemctl", "is-system-running", "--wait"], stdout=subprocess.PIPE,
                          check=False).returncode in (0, 1):
            break
        time.sleep(1)
    kept = json.loads(_on_pi(pi, "cat " + RECORD))
    assert kept["model"] == before["model"] and kept["previous"] == before["previous"], kept
    assert kept["scorer_sha256"] == before["scorer"], kept
    assert _on_pi(pi, "stat -c %U:%a " + RECORD) == "root:600"

    again = _playbook("rollout.yml", EPHEMERAL / "report-resumed", "--limit", pi, "-e", "fleet_model_version=fleet-2")
    assert again["rc"] == 0, again["out"][-5000:]
    row = _rows(again["report"])[pi]
    assert row["status"] == "ok", row
    assert any("resumed a rollout interrupted on this Pi (its state of {}".format(kept["since"]) in note
               for note in row["notes"]), row
    after = _state(pi)
    assert after["model"].startswith("fixture_model-fleet-2-") and after["previous"] == before["model"], after
    assert _on_pi(pi, "test -e {} && echo kept || echo gone".format(RECORD)) == "gone", "verified: the record is forgotten"


def test_a_pi_with_its_own_account_and_directories_runs_wholly_from_them(fleet: Dict[str, Any]) -> None:
    """fleet-a03's owner changed the account and all three directories (roles/voice_appliance): every piece
    moved, nothing was made at the defaults' places, and the rollout and verification worked there too."""
    moved, default = _shared(MOVED), {name: str(SHARED_DEFAULTS[name]) for name in SHARED}
    assert all(moved[name] != default[name] for name in SHARED), moved  # the scenario moved every one
    user, base, state, config = (moved["voice_appliance_" + key] for key in ("user", "base_dir", "state_dir", "config_dir"))
    # Nothing at the default places, no default account.
    for name in ("voice_appliance_base_dir", "voice_appliance_state_dir", "voice_appliance_config_dir"):
        assert _on_pi(MOVED, "test -e {} && echo exists || echo absent".format(default[name])) == "absent", default[name]
    assert _on_pi(MOVED, "getent passwd {} || true".format(default["voice_appliance_user"])) == ""
    assert _on_pi(MOVED, "id -gn " + user) == moved["voice_appliance_group"]
    # The moved places hold the venv, the live model, the generated scorer, the configuration.
    assert _on_pi(MOVED, "test -x {}/venv/bin/deepspeech && readlink {}/models/current".format(base, base)).startswith("fixture_model-fleet-2-")
    assert _on_pi(MOVED, "stat -c %U {} {}/generated.scorer".format(state, state)).split() == [user, user]
    assert _on_pi(MOVED, "test -f {}/retrain.json && echo yes".format(config)) == "yes"
    # Every service runs as the moved account, from the moved venv.
    for unit in ("rhasspy-asr-deepspeech-hermes.service", "wyoming-asr.service"):
        props = dict(line.split("=", 1) for line in _on_pi(MOVED, "systemctl show -p User -p MainPID -p ActiveState " + unit).splitlines())
        assert props["ActiveState"] == "active" and props["User"] == user, (unit, props)
        assert _on_pi(MOVED, "ps -o user= -p " + props["MainPID"]) == user, unit
        assert (base + "/venv/") in _on_pi(MOVED, "tr '\\0' ' ' < /proc/{}/cmdline".format(props["MainPID"])), unit
    assert _on_pi(MOVED, "systemctl show -p User --value voice-retrain.service") == user
    # No unit or configuration of the appliance still names a default place.
    stale = _on_pi(MOVED, "grep -rlE '{}|{}|{}' /etc/systemd/system /etc/ansible/facts.d {} || true".format(
        default["voice_appliance_base_dir"], default["voice_appliance_state_dir"], default["voice_appliance_config_dir"], config))
    assert stale == "", stale


@pytest.mark.bad_input
def test_the_external_broker_lets_only_the_fleets_login_in_and_no_pi_exposes_it(fleet: Dict[str, Any]) -> None:
    """The fleet's broker requires a login: anonymous clients and a wrong password are refused, the fleet's
    account gets in (and every Pi's verification over MQTT passed through it). On every Pi the password is on
    no command line, and only root-only files (or the service's group-readable account file) hold it."""
    given = _inventory_vars(fleet["hosts"][0])
    port, username = int(given["fixture_external_broker_port"]), given["fixture_external_broker_username"]
    password = (EPHEMERAL / "external-broker.secret").read_text(encoding="utf-8").split()[0]
    answers = []
    for login in ((), (username, password[::-1]), (username, password)):
        client = Client(port, *login)
        answers.append(client.rc)
        client.close()
    assert answers == [NOT_AUTHORIZED, NOT_AUTHORIZED, ACCEPTED]
    for pi in fleet["hosts"]:
        assert password not in _on_pi(pi, "ps -eo args"), pi
        holders = _on_pi(pi, "grep -rlF -e {} /etc /var/lib /run /home 2>/dev/null || true".format(password)).split()
        assert any(path.endswith("/{}.password".format(username)) for path in holders), (pi, holders)
        for path in holders:  # the account file, Rhasspy's profile (its core logs in with it) and its backups
            owner, group, mode = _on_pi(pi, "stat -c '%U %G %a' " + path).split()
            others, group_bits = int(mode, 8) & 0o007, int(mode, 8) & 0o070
            assert others == 0 and (group_bits == 0 or group in ("root", _shared(pi)["voice_appliance_group"])), \
                (pi, path, owner, group, mode)
