"""Every preflight refusal of the deepspeech_deps role, fed the bad input it must refuse.

One ansible-playbook run checks many imaginary machines at once: each inventory host runs the
role's real preflight tasks on this controller (connection local) with its ``ansible_facts``
replaced by a described machine. The JSON callback tells which host failed with which message.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent

# Free disk space is measured on the machine itself (df), so this controller's real disk stands in;
# the full-disk case asks for more than any disk has.
HOST_VARS = {"full_disk": "deepspeech_deps_min_free_disk_mb=1000000000"}

# A Raspberry Pi 4 with a 32-bit Raspberry Pi OS bookworm: the machine every case starts from.
GOOD: Dict[str, Any] = {
    "distribution": "Debian",
    "distribution_release": "bookworm",
    "distribution_version": "12",
    "architecture": "armv7l",
    "memtotal_mb": 3796,
    "python": {"version": {"major": 3, "minor": 11, "micro": 2}, "executable": "/usr/bin/python3"},
}

def _python(minor: int, micro: int) -> Dict[str, Any]:
    return {"python": {"version": {"major": 3, "minor": minor, "micro": micro}, "executable": "/usr/bin/python3"}}


CASES: Dict[str, Dict[str, Any]] = {
    "good": {},
    # The support matrix: bullseye (3.9), bookworm (3.11), trixie (3.13) on armhf, arm64 and amd64.
    "bullseye_arm64": dict({"distribution_release": "bullseye", "distribution_version": "11", "architecture": "aarch64"},
                           **_python(9, 2)),
    "raspbian_bullseye_armhf": dict({"distribution": "Raspbian", "distribution_release": "bullseye", "distribution_version": "11"},
                                    **_python(9, 2)),
    "trixie_amd64": dict({"distribution_release": "trixie", "distribution_version": "13", "architecture": "x86_64"},
                         **_python(13, 5)),
    # Buster (Python 3.7) is no longer supported: current Ansible cannot manage it (playbooks/probe.yml
    # refuses it before fact gathering); should its facts ever arrive, the preflight refuses it too.
    "raspbian_buster": dict({"distribution": "Raspbian", "distribution_release": "buster", "distribution_version": "10"},
                            **_python(7, 3)),
    "debian_buster": {"distribution_release": "buster", "distribution_version": "10"},
    "ubuntu": {"distribution": "Ubuntu", "distribution_release": "jammy", "distribution_version": "22.04"},
    "stretch": {"distribution_release": "stretch", "distribution_version": "9"},
    "pi_zero": {"architecture": "armv6l"},
    "i686": {"architecture": "i686"},
    "old_python": _python(5, 3),
    "python_3_7": _python(7, 3),
    "python_3_8": _python(8, 10),
    "small_ram": {"memtotal_mb": 480},
    "full_disk": {},
}

EXPECTED: Dict[str, Any] = {
    "good": None,
    "bullseye_arm64": None,
    "raspbian_bullseye_armhf": None,
    "trixie_amd64": None,
    "raspbian_buster": "Unsupported operating system 'Raspbian 10 (buster)'. The voice appliance supports Debian / Raspbian "
                       "(Raspberry Pi OS reports itself as one of these) bullseye, bookworm, trixie. "
                       "Upgrade the Pi to Raspberry Pi OS bullseye or later",
    "debian_buster": "Unsupported operating system 'Debian 10 (buster)'",
    "ubuntu": "Unsupported operating system 'Ubuntu 22.04 (jammy)'",
    "stretch": "Unsupported operating system 'Debian 9 (stretch)'",
    "pi_zero": "Unsupported architecture 'armv6l': the official DeepSpeech 0.7.4 ARM library needs an ARMv8 CPU with FP/NEON (Raspberry Pi 3 or 4",
    "i686": "Unsupported architecture 'i686'. Supported: armv7l, aarch64, x86_64",
    "old_python": "Python 3.5 (/usr/bin/python3) is too old: the appliance needs Python 3.9 or newer. "
                  "Upgrade the Pi to Raspberry Pi OS bullseye or later",
    "python_3_7": "Python 3.7 (/usr/bin/python3) is too old: the appliance needs Python 3.9 or newer. "
                  "Upgrade the Pi to Raspberry Pi OS bullseye or later",
    "python_3_8": "Python 3.8 (/usr/bin/python3) is too old: the appliance needs Python 3.9 or newer",
    "small_ram": "Not enough memory: 480 MiB total, the appliance needs at least 850 MiB",
    "full_disk": re.compile(r"Not enough free disk space for /opt/voice-appliance: \d+ MiB free on '/[^']*', "
                            r"the appliance needs at least 1000000000 MiB"),
}

PLAYBOOK = """
- name: Run the preflight checks against described machines.
  hosts: all
  gather_facts: false
  vars:
    ansible_facts: "{{ described_machines[inventory_hostname] }}"
  tasks:
    - name: Run the deepspeech_deps preflight.
      ansible.builtin.include_role:
        name: deepspeech_deps
        tasks_from: preflight
"""


def _ansible_playbook() -> str:
    found = shutil.which("ansible-playbook") or str(Path(sys.executable).parent / "ansible-playbook")
    if not os.path.exists(found):
        pytest.fail("ansible-playbook not found: run the tests from the controller venv (make test)")
    return found


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Dict[str, Any]]:
    work = tmp_path_factory.mktemp("preflight")
    machines = {name: dict(GOOD, **change) for name, change in CASES.items()}
    (work / "machines.json").write_text(json.dumps({"described_machines": machines}))
    (work / "playbook.yml").write_text(PLAYBOOK)
    (work / "hosts.ini").write_text(
        "[all]\n" + "".join("{} ansible_connection=local ansible_python_interpreter={} {}\n".format(n, sys.executable, HOST_VARS.get(n, ""))
                     for n in CASES)
    )
    (work / "ansible.cfg").write_text("[defaults]\n")  # no timing callbacks, no fact cache: only JSON on stdout
    env = dict(os.environ, ANSIBLE_ROLES_PATH=str(REPO / "roles"), ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
               ANSIBLE_CONFIG=str(work / "ansible.cfg"))
    run = subprocess.run(
        [_ansible_playbook(), "-i", str(work / "hosts.ini"), str(work / "playbook.yml"), "-e", "@" + str(work / "machines.json")],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=300, check=False,
    )
    try:
        report = json.loads(run.stdout)
    except ValueError:
        pytest.fail("ansible-playbook printed no JSON:\n" + run.stdout[-3000:] + run.stderr[-3000:])
    results: Dict[str, Dict[str, Any]] = {name: {"failed": False, "msg": None} for name in CASES}
    for task in report["plays"][0]["tasks"]:
        for host, result in task["hosts"].items():
            if result.get("failed"):
                results[host] = {"failed": True, "msg": result.get("msg"), "task": task["task"]["name"]}
    return results


@pytest.mark.bad_input
@pytest.mark.parametrize("case", sorted(CASES))
def test_preflight(outcomes: Dict[str, Dict[str, Any]], case: str) -> None:
    outcome = outcomes[case]
    expected = EXPECTED[case]
    if expected is None:
        assert not outcome["failed"], "a supported machine was refused: {}".format(outcome)
    else:
        assert outcome["failed"], "machine '{}' was not refused".format(case)
        message = " ".join(str(outcome["msg"]).split())
        if isinstance(expected, str):
            assert expected in message, outcome
        else:
            assert expected.search(message), outcome


def test_supported_releases_and_minimum_python() -> None:
    """The role's defaults state the support matrix: bullseye (3.9), bookworm, trixie; no buster."""
    defaults = yaml.safe_load((REPO / "roles/deepspeech_deps/defaults/main.yml").read_text())
    assert defaults["deepspeech_deps_supported_releases"] == ["bullseye", "bookworm", "trixie"]
    assert defaults["deepspeech_deps_min_python"] == "3.9"


SETTINGS = {"supported_distributions": ["Debian", "Raspbian"], "supported_releases": ["bullseye", "bookworm", "trixie"],
            "refused_architectures": {"armv6l": "a Pi Zero cannot run it"}, "arch_map": {"armv7l": "armhf", "aarch64": "arm64"},
            "min_python": "3.9", "min_ram_mb": 850, "min_free_disk_mb": 1500, "base_dir": "/opt/voice-appliance"}
DF = ["armhf", "Filesystem 1024-blocks Used Available Capacity Mounted on",
      "/dev/root 30000000 10000000 {} 34% /".format(2000 * 1024)]


@pytest.mark.bad_input
def test_every_problem_is_named_at_once_and_a_refused_cpu_only_once() -> None:
    from ansible_collections.pivoice.voice_appliance.plugins.filter.preflight import preflight_errors
    assert preflight_errors(GOOD, DF, SETTINGS) == []
    machine = dict(GOOD, architecture="armv6l", memtotal_mb=480, **_python(7, 3))
    errors = preflight_errors(machine, ["armel"] + DF[1:], dict(SETTINGS, min_free_disk_mb=3000))
    assert [e.split(" ", 2)[:2] for e in errors] == [["Unsupported", "architecture"], ["Unsupported", "userland"],
                                                    ["Python", "3.7"], ["Not", "enough"], ["Not", "enough"]]
    assert errors[0] == "Unsupported architecture 'armv6l': a Pi Zero cannot run it."
    assert errors[-1].startswith("Not enough free disk space for /opt/voice-appliance: 2000 MiB free on '/', the appliance needs "
                                 "at least 3000 MiB.")
    assert preflight_errors(dict(GOOD, **_python(10, 1)), DF, SETTINGS) == [], "3.10 is not older than 3.9"


@pytest.mark.bad_input
def test_a_python_whose_version_the_facts_lack_is_named_not_raised() -> None:
    from ansible_collections.pivoice.voice_appliance.plugins.filter.preflight import preflight_errors
    machine = dict(GOOD, python={"executable": "/usr/bin/python3"})
    assert preflight_errors(machine, DF, SETTINGS) == [
        "The Python version of /usr/bin/python3 is unknown (the facts hold no python.version). Gather the Pi's facts (the "
        "play's gather_facts, or ansible.builtin.setup) before this check."]
