"""The raw probe (playbooks/probe.yml) against real targets: Docker containers of the bookworm image.

Each container is made into the Pi it stands for: a supported bookworm Pi; a "buster" Pi whose only
python3 answers like Python 3.7.3 (the real interpreter behind a wrapper that reports 3.7.3 to
whatever asks, as a buster Pi's would); a Pi without python3; a Pi whose /etc/os-release says stretch.
The real probe play runs against them with ansible-playbook over the community.docker.docker
connection, and the JSON callback tells which host was refused with which message.
"""
from __future__ import annotations

import ast
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
PROBE = REPO / "playbooks" / "probe.yml"
IMAGE = "pi-voice/debian:bookworm-amd64"

# The Python a buster Pi has: every question about its version is answered with 3.7.3.
FAKE_PYTHON_37 = r"""#!/bin/sh
# Stands in for Raspberry Pi OS buster's Python 3.7.3: the real interpreter, reporting 3.7.3.
case "$1" in
  --version|-V) echo "Python 3.7.3"; exit 0 ;;
  -c)
    code=$2; shift 2
    exec /opt/real-python/python3.11 -c 'import collections, sys
sys.version_info = collections.namedtuple("version_info", "major minor micro releaselevel serial")(3, 7, 3, "final", 0)
sys.version = "3.7.3 (default, Jan 22 2021, 20:04:44) \n[GCC 8.3.0]"
sys.hexversion = 0x030703f0
exec(compile(sys.argv.pop(1), "<string>", "exec"))' "$code" "$@" ;;
esac
echo "this stand-in for Python 3.7.3 runs only -c and --version" >&2
exit 2
"""

BUSTER_OS_RELEASE = """PRETTY_NAME="Raspbian GNU/Linux 10 (buster)"
NAME="Raspbian GNU/Linux"
VERSION_ID="10"
VERSION="10 (buster)"
VERSION_CODENAME=buster
ID=raspbian
ID_LIKE=debian
"""

STRETCH_OS_RELEASE = """PRETTY_NAME="Debian GNU/Linux 9 (stretch)"
NAME="Debian GNU/Linux"
VERSION_ID="9"
VERSION="9 (stretch)"
VERSION_CODENAME=stretch
ID=debian
"""

# Inventory name -> (shell commands run as root in the container, their stdin, a check that must succeed after).
PIS: Dict[str, Any] = {
    "pi-good": ("true", None, "command -v python3"),
    "pi-buster": (
        "mkdir -p /opt/real-python && mv /usr/bin/python3.11 /opt/real-python/ && rm -f /usr/bin/python3"
        " && cat > /usr/bin/python3 && chmod 0755 /usr/bin/python3"
        " && rm -f /etc/os-release && printf '%s' '" + BUSTER_OS_RELEASE + "' > /etc/os-release",
        FAKE_PYTHON_37,
        "test \"$(python3 --version)\" = 'Python 3.7.3'"
        " && test \"$(python3 -c 'import sys; print(sys.version_info[:3])')\" = '(3, 7, 3)'"
        " && ! command -v python3.11",
    ),
    "pi-no-python": ("mkdir -p /opt/hidden && mv /usr/bin/python3* /opt/hidden/", None, "! command -v python3"),
    "pi-stretch": (
        "rm -f /etc/os-release && printf '%s' '" + STRETCH_OS_RELEASE + "' > /etc/os-release",
        None,
        "grep -qx VERSION_CODENAME=stretch /etc/os-release",
    ),
}

# Two probes, as site.yml runs them (its own import and stage.yml's), then what every real playbook does next.
PLAYBOOK = """
- name: Probe the Pis.
  ansible.builtin.import_playbook: {probe}

- name: Probe the Pis again, as site.yml does through each imported playbook.
  ansible.builtin.import_playbook: {probe}

- name: Gather facts after the probe, as the real playbooks do.
  hosts: voice_assistants
  gather_facts: true
  tasks:
    - name: Show the Python Ansible found.
      ansible.builtin.debug:
        msg: "{{{{ ansible_facts.python.version.major }}}}.{{{{ ansible_facts.python.version.minor }}}}"
"""

RAW_TASK = "Read the Pi's python3 and release without Python (read-only)."
LAST_TASK = "Show the Python Ansible found."


def _docker_available() -> Optional[str]:
    """None when docker answers, else why not."""
    if not shutil.which("docker"):
        return "the docker command is not installed"
    try:
        info = subprocess.run(["docker", "info"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        return "docker info failed: {}".format(error)
    return None if info.returncode == 0 else "no docker engine answers: " + info.stderr.strip()[-500:]


def _docker(*args: str, stdin: Optional[str] = None) -> "subprocess.CompletedProcess[str]":
    return subprocess.run(["docker", *args], input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def pis() -> Iterator[Dict[str, str]]:
    """Inventory name -> name of a running container made into that Pi; removed afterwards."""
    why = _docker_available()
    if why:
        pytest.skip("docker is not available ({}): the probe needs real targets".format(why))
    if _docker("image", "inspect", IMAGE).returncode != 0:
        pytest.fail("the image {} is missing: build it with `make setup` (harness/setup.sh)".format(IMAGE))
    prefix = "pi-voice-probe-" + secrets.token_hex(4)
    containers = {name: "{}-{}".format(prefix, name[3:]) for name in PIS}
    try:
        for name, container in containers.items():
            started = _docker("run", "-d", "--rm", "--network", "none", "--name", container, IMAGE, "sleep", "infinity")
            assert started.returncode == 0, started.stderr
            commands, stdin, check = PIS[name]
            made = _docker("exec", "-i", container, "sh", "-c", commands, stdin=stdin or "")
            assert made.returncode == 0, (name, made.stderr)
            checked = _docker("exec", container, "sh", "-c", check)
            assert checked.returncode == 0, (name, "the container is not the Pi it should be", checked.stdout, checked.stderr)
        yield containers
    finally:
        for container in containers.values():
            _docker("rm", "-f", container)


def _ansible_playbook() -> str:
    found = shutil.which("ansible-playbook") or str(Path(sys.executable).parent / "ansible-playbook")
    if not os.path.exists(found):
        pytest.fail("ansible-playbook not found: run the tests from the controller venv (make test)")
    return found


def _run(work: Path, pis: Dict[str, str], hosts: List[str], *extra: str) -> Dict[str, Any]:
    """Run the probe playbook against the named Pis; the JSON report, the rc and per-host results."""
    (work / "playbook.yml").write_text(PLAYBOOK.format(probe=PROBE))
    (work / "hosts.ini").write_text("[voice_assistants]\n" + "".join(
        "{} ansible_connection=community.docker.docker ansible_host={}\n".format(name, pis[name]) for name in hosts))
    (work / "ansible.cfg").write_text("[defaults]\n")  # no fleet report, no fact cache: only JSON on stdout
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_CONFIG=str(work / "ansible.cfg"))
    run = subprocess.run([_ansible_playbook(), "-i", str(work / "hosts.ini"), str(work / "playbook.yml"), *extra],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                         timeout=300, check=False)
    start = run.stdout.find("{")
    try:
        report, _ = json.JSONDecoder().raw_decode(run.stdout[max(start, 0):])
    except ValueError:
        pytest.fail("ansible-playbook printed no JSON:\n" + run.stdout[-3000:] + run.stderr[-3000:])
    results: Dict[str, List[Dict[str, Any]]] = {name: [] for name in hosts}
    for number, play in enumerate(report["plays"]):
        for task in play["tasks"]:
            for host, result in task["hosts"].items():
                results[host].append(dict(result, _play=number, _task=task["task"]["name"]))
    return {"rc": run.returncode, "report": report, "results": results, "stderr": run.stderr}


def _refusal(outcome: Dict[str, Any], host: str) -> str:
    failed = [result for result in outcome["results"][host] if result.get("failed")]
    assert failed, "{} was not refused: {}".format(host, outcome["results"][host])
    assert len(failed) == 1 and failed[0]["_play"] == 0, failed
    return " ".join(str(failed[0].get("msg")).split())


def _assert_nothing_changed(outcome: Dict[str, Any]) -> None:
    changed = [(host, result["_task"]) for host, results in outcome["results"].items() for result in results if result.get("changed")]
    assert not changed, changed


def test_a_supported_pi_passes_the_probe_in_check_mode(pis: Dict[str, str], tmp_path: Path) -> None:
    outcome = _run(tmp_path, pis, ["pi-good"], "--check")
    assert outcome["rc"] == 0, outcome["results"]
    results = outcome["results"]["pi-good"]
    raw = [result for result in results if result["_task"] == RAW_TASK]
    assert len(raw) == 1 and raw[0]["_play"] == 0 and not raw[0].get("skipped"), raw  # ran although --check
    found = [result["ansible_facts"]["pi_probe"] for result in results if "pi_probe" in result.get("ansible_facts", {})]
    assert len(found) == 1, results
    assert found[0]["python3"] == "/usr/bin/python3" and found[0]["python_version"].startswith("3.11."), found
    assert found[0]["os_codename"] == "bookworm" and found[0]["os_id"] == "debian", found
    assert [result["msg"] for result in results if result["_task"] == LAST_TASK] == ["3.11"], results
    _assert_nothing_changed(outcome)


@pytest.mark.bad_input
def test_python_3_7_is_refused_with_the_upgrade_to_bullseye_message(pis: Dict[str, str], tmp_path: Path) -> None:
    outcome = _run(tmp_path, pis, ["pi-buster"])
    assert outcome["rc"] != 0
    message = _refusal(outcome, "pi-buster")
    assert message.startswith("Cannot manage pi-buster (Raspbian GNU/Linux 10 (buster)): its Python is 3.7.3 (/usr/bin/python3)"), message
    assert "cannot manage a Pi with Python older than 3.8 at all" in message, message
    assert "Fix: upgrade the Pi to Raspberry Pi OS bullseye or later" in message, message
    _assert_nothing_changed(outcome)


@pytest.mark.bad_input
def test_a_pi_without_python3_is_refused_with_the_install_message(pis: Dict[str, str], tmp_path: Path) -> None:
    outcome = _run(tmp_path, pis, ["pi-no-python"])
    assert outcome["rc"] != 0
    message = _refusal(outcome, "pi-no-python")
    assert message.startswith("Cannot manage pi-no-python (Debian GNU/Linux 12 (bookworm)): it has no python3"), message
    assert "Fix: install python3: sudo apt install python3." in message, message
    assert "not supported" not in message, message  # bookworm is: no note about the release
    _assert_nothing_changed(outcome)


@pytest.mark.bad_input
def test_an_unsupported_release_is_refused_naming_it(pis: Dict[str, str], tmp_path: Path) -> None:
    outcome = _run(tmp_path, pis, ["pi-stretch"])
    assert outcome["rc"] != 0
    message = _refusal(outcome, "pi-stretch")
    assert message.startswith("Unsupported release on pi-stretch: Debian GNU/Linux 9 (stretch) (ID=debian, VERSION_CODENAME=stretch"), message
    assert "supports Raspberry Pi OS / Debian bullseye, bookworm, trixie on armhf, arm64 and amd64" in message, message
    _assert_nothing_changed(outcome)


def test_a_fleet_owners_release_list_applies_to_the_probe(pis: Dict[str, str], tmp_path: Path) -> None:
    outcome = _run(tmp_path, pis, ["pi-stretch"], "-e", json.dumps({"deepspeech_deps_supported_releases": ["stretch", "bookworm"]}))
    assert outcome["rc"] == 0, outcome["results"]


def test_refused_pis_do_not_stop_the_others(pis: Dict[str, str], tmp_path: Path) -> None:
    outcome = _run(tmp_path, pis, sorted(PIS))
    assert outcome["rc"] != 0
    results = outcome["results"]
    # The supported Pi went on to fact gathering and the last task.
    assert not any(result.get("failed") for result in results["pi-good"]), results["pi-good"]
    assert [result["msg"] for result in results["pi-good"] if result["_task"] == LAST_TASK] == ["3.11"], results["pi-good"]
    # Each other Pi was refused by the probe, with its own reason, and reached nothing after it.
    reasons = {"pi-buster": "older than 3.8", "pi-no-python": "it has no python3", "pi-stretch": "VERSION_CODENAME=stretch"}
    for host, reason in reasons.items():
        assert reason in _refusal(outcome, host), results[host]
        assert all(result["_play"] == 0 for result in results[host]), results[host]
    stats = outcome["report"]["stats"]
    assert stats["pi-good"]["failures"] == 0 and all(stats[host]["failures"] == 1 for host in reasons), stats
    # Probed once per run: the second import of the probe does not read the Pis again.
    assert [result["_play"] for result in results["pi-good"] if result["_task"] == RAW_TASK] == [0], results["pi-good"]
    _assert_nothing_changed(outcome)


def test_the_probes_release_list_is_the_preflights() -> None:
    defaults = yaml.safe_load((REPO / "roles/deepspeech_deps/defaults/main.yml").read_text())
    play = yaml.safe_load(PROBE.read_text())[0]
    fallback = re.search(r"default\((\[[^\]]*\])\)", play["vars"]["pi_probe_supported_releases"])
    assert fallback, play["vars"]["pi_probe_supported_releases"]
    assert ast.literal_eval(fallback.group(1)) == defaults["deepspeech_deps_supported_releases"]
    assert "buster" not in defaults["deepspeech_deps_supported_releases"]


@pytest.mark.parametrize("playbook", ["site.yml"] + sorted("playbooks/" + p.name for p in (REPO / "playbooks").glob("*.yml")))
def test_every_playbook_that_reaches_the_pis_probes_them_first(playbook: str) -> None:
    entries = yaml.safe_load((REPO / playbook).read_text())
    reaches_pis = any(entry.get("hosts") == "voice_assistants" or "ansible.builtin.import_playbook" in entry for entry in entries)
    if playbook == "playbooks/probe.yml" or not reaches_pis:
        return
    path = REPO / playbook
    first = entries[0].get("ansible.builtin.import_playbook", "")
    while first and Path(first).name != "probe.yml":  # an entry point that imports the data path (site.yml)
        path = path.parent / first
        first = yaml.safe_load(path.read_text())[0].get("ansible.builtin.import_playbook", "")
    assert Path(first).name == "probe.yml", "{} does not import the probe first".format(playbook)
