"""receipt_fact, voice_verify's reading of the local facts this run wrote: each is the receipt of the call that makes
what it names live (python_env, systemd_units), returned in that call's registered result. The filter on results shaped
as the modules return them, and voice_verify's first task (its own vars and condition, read from the role) deciding,
through ansible-playbook, whether the Pi's facts must be read anew."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.pivoice.voice_appliance.plugins.filter.receipt_fact import receipt_fact

REPO = Path(__file__).resolve().parent.parent

RHASSPY = {"site_id": "kitchen", "mqtt_host": "127.0.0.1", "mqtt_port": 1883}
DEEPSPEECH = {"kind": "wheel", "flavour": "tflite"}
WYOMING_ON = {"enabled": True, "host": "127.0.0.1", "port": 10300}
WYOMING_OFF = {"enabled": False, "host": "127.0.0.1", "port": 10300}


def _written(path: str, fact: Dict[str, Any], changed: bool = False) -> Dict[str, Any]:
    """A registered result of a call that wrote (or found) its receipt, as systemd_units and python_env return it."""
    return {"changed": changed, "receipt_changed": changed, "changes": {},
            "receipt": {"path": path, "content": json.dumps(fact, indent=4) + "\n"}}


SKIPPED = {"changed": False, "skipped": True, "skip_reason": "Conditional result was False", "false_condition": "x"}


def test_the_fact_is_the_receipts_content_read_as_json() -> None:
    assert receipt_fact(_written("/etc/ansible/facts.d/rhasspy_asr.fact", RHASSPY)) == RHASSPY
    assert receipt_fact(_written("/etc/ansible/facts.d/rhasspy_asr.fact", RHASSPY, changed=True)) == RHASSPY


@pytest.mark.parametrize("result", [
    None,
    SKIPPED,
    {"changed": True, "receipt_changed": True, "changes": {"/f": ["receipt"]}},  # check mode: the Pi does not hold it
    {"changed": False, "receipt_changed": False},  # a call without a receipt
    dict(_written("/f", RHASSPY), failed=True, msg="systemctl start failed"),  # (ignore_errors)
    {"changed": False, "receipt": {"path": "/f", "content": "[section]\nkey=value\n"}},  # no JSON: read it anew
], ids=["undefined", "skipped", "check-mode", "no-receipt", "failed", "not-json"])
def test_nothing_is_known_when_the_call_did_not_leave_its_receipt_on_the_pi(result: Any) -> None:
    assert receipt_fact(result) is None


def test_of_two_calls_writing_one_fact_the_one_that_ran_counts() -> None:
    on = _written("/etc/ansible/facts.d/wyoming_asr.fact", WYOMING_ON)
    off = _written("/etc/ansible/facts.d/wyoming_asr.fact", WYOMING_OFF)
    assert receipt_fact([on, SKIPPED]) == WYOMING_ON
    assert receipt_fact([SKIPPED, off]) == WYOMING_OFF
    assert receipt_fact([None, off]) == WYOMING_OFF
    assert receipt_fact([None, None]) is None and receipt_fact([]) is None


@pytest.mark.bad_input
@pytest.mark.parametrize("value, message", [
    ("rhasspy_asr_units", r"got str 'rhasspy_asr_units'\. Give the task's registered variable"),
    (42, r"got int 42"),
    (["not a result"], r"'not a result' is no registered result"),
])
def test_what_is_no_registered_result_is_refused_naming_it(value: Any, message: str) -> None:
    with pytest.raises(AnsibleFilterError, match=message):
        receipt_fact(value)


# --- voice_verify's first task: read the Pi's local facts anew, or take this run's receipts ----------------------

GATHERED = {"deepspeech": DEEPSPEECH, "rhasspy_asr": RHASSPY, "wyoming_asr": WYOMING_ON}
CONVERGED = {"deepspeech_runtime_env": _written("/etc/ansible/facts.d/deepspeech.fact", DEEPSPEECH),
             "rhasspy_asr_units": _written("/etc/ansible/facts.d/rhasspy_asr.fact", RHASSPY),
             "wyoming_asr_units": _written("/etc/ansible/facts.d/wyoming_asr.fact", WYOMING_ON),
             "wyoming_asr_stopped": SKIPPED}

# Per host: its registered results and gathered local facts, and whether the task reads the facts anew.
CASES: Dict[str, Any] = {
    "converged": (dict(CONVERGED, ansible_local=GATHERED), False),
    "fact-changed": (dict(CONVERGED, rhasspy_asr_units=_written("/etc/ansible/facts.d/rhasspy_asr.fact", dict(RHASSPY, mqtt_port=1884), True),
                          ansible_local=GATHERED), True),
    "verify-alone": ({"ansible_local": GATHERED}, True),
    "wyoming-off": (dict(CONVERGED, wyoming_asr_units=SKIPPED,
                         wyoming_asr_stopped=_written("/etc/ansible/facts.d/wyoming_asr.fact", WYOMING_OFF),
                         ansible_local=dict(GATHERED, wyoming_asr=WYOMING_OFF)), False),
    "wyoming-turned-off-now": (dict(CONVERGED, wyoming_asr_units=SKIPPED,
                                    wyoming_asr_stopped=_written("/etc/ansible/facts.d/wyoming_asr.fact", WYOMING_OFF, True),
                                    ansible_local=GATHERED), True),
    "check-mode-would-write": (dict(CONVERGED, deepspeech_runtime_env={"changed": True, "receipt_changed": True, "built": False},
                                    ansible_local=GATHERED), True),
    "no-facts-gathered": (dict(CONVERGED), True),
}


def test_voice_verify_reads_the_facts_anew_unless_this_runs_receipts_are_the_ones_gathered(tmp_path: Path) -> None:
    tasks = yaml.safe_load((REPO / "roles" / "voice_verify" / "tasks" / "main.yml").read_text())
    first = tasks[0]
    assert first["name"].startswith("Read the Pi's local facts anew") and "ansible.builtin.setup" in first
    # The same vars and condition, with debug in place of setup (this controller's facts are not the case's).
    probe = {"name": "Decide as voice_verify decides.", "ansible.builtin.debug": {"msg": "read anew"},
             "vars": first["vars"], "when": first["when"]}
    playbook = [{"name": "voice_verify's decision per case.", "hosts": "all", "gather_facts": False, "tasks": [probe]}]
    (tmp_path / "playbook.yml").write_text(yaml.safe_dump(playbook, sort_keys=False))
    hosts = {name: dict(variables, ansible_connection="local", ansible_python_interpreter=sys.executable)
             for name, (variables, _) in CASES.items()}
    (tmp_path / "hosts.yml").write_text(json.dumps({"all": {"hosts": hosts}}))
    (tmp_path / "ansible.cfg").write_text("[defaults]\nretry_files_enabled = false\n")
    env = dict(os.environ, ANSIBLE_CONFIG=str(tmp_path / "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="ansible.posix.json")
    done = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(tmp_path / "hosts.yml"),
                           str(tmp_path / "playbook.yml")], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.JSONDecoder().raw_decode(done.stdout[done.stdout.index("{"):])[0]
    results = report["plays"][0]["tasks"][0]["hosts"]
    reads = {host: not result.get("skipped", False) for host, result in results.items()}
    assert reads == {name: expected for name, (_, expected) in CASES.items()}
