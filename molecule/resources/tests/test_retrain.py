"""Scorer retraining on the converged Pi: the tools, the path unit, the hardened service, failure safety."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterator

import pytest

SCENARIO = os.environ.get("MOLECULE_SCENARIO_NAME", "default")
REPO = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", Path(__file__).resolve().parents[3]))
FIXTURE = Path(os.environ.get("PI_VOICE_FIXTURE_DIR", REPO / "files" / "fixture"))

VENV = "/opt/voice-appliance/venv"
TOOLS = "/opt/voice-appliance/tools/current"
MODEL = "/opt/voice-appliance/models/current"
SENTENCES = "/etc/voice-appliance/sentences.ini"
SCORER = "/var/lib/voice-appliance/generated.scorer"
WAV = "/opt/voice-appliance/verify/das_ist_ein_test.wav"
# A retrain under qemu (armhf) takes many times longer than on amd64.
TIMEOUT = {"default": 120, "armhf": 900}.get(SCENARIO, 900)
ONLY_AMD64 = pytest.mark.skipif(SCENARIO != "default", reason="runs once, on the fast amd64 Pi (costs minutes under qemu)")


def _sha(host: Any, path: str) -> str:
    return host.check_output("sha256sum " + path).split()[0]


def _invocation(host: Any) -> str:
    return host.check_output("systemctl show -p InvocationID --value voice-retrain.service")


def _wait_for_run(host: Any, before: str) -> Dict[str, str]:
    """Wait until a retrain that started after `before` (an InvocationID) has finished; its unit properties."""
    deadline = time.time() + TIMEOUT
    while time.time() < deadline:
        props = dict(line.split("=", 1) for line in host.check_output(
            "systemctl show -p InvocationID -p ActiveState -p Result voice-retrain.service").splitlines())
        if props["InvocationID"] not in ("", before) and props["ActiveState"] in ("inactive", "failed"):
            return props
        time.sleep(1)
    pytest.fail("no retrain ran to its end within {} s of the edit (journal:\n{})".format(
        TIMEOUT, host.run("journalctl -u voice-retrain.service -n 30 --no-pager -o cat").stdout))


def _write_sentences(host: Any, text: str) -> None:
    # As the service group edits it: rewrite in place (the path unit sees the close after writing).
    cmd = "printf '%s' {} | sudo -u voice tee {} >/dev/null".format(_quote(text), SENTENCES)
    host.run_test(cmd)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


@pytest.fixture()
def restore_sentences(host: Any) -> Iterator[None]:
    """Put the original sentences.ini back after a test and wait for the scorer it gives."""
    original = host.file(SENTENCES).content_string
    yield
    before = _invocation(host)
    _write_sentences(host, original)
    props = _wait_for_run(host, before)
    host.run("systemctl reset-failed voice-retrain.service")
    assert props["Result"] == "success", props


@pytest.fixture()
def restore_sentences_quietly(host: Any) -> Iterator[None]:
    """Put the original sentences.ini back without a retrain, for tests whose failed run left the scorer as the
    original sentences built it: written while the watcher is stopped (a retrain per fault test costs minutes under qemu)."""
    original = host.file(SENTENCES).content_string
    yield
    _wait_until_idle(host)
    host.run_test("systemctl stop voice-retrain.path")
    try:
        _write_sentences(host, original)
    finally:
        host.run("systemctl reset-failed voice-retrain.service")
        host.run_test("systemctl start voice-retrain.path")


def _wait_until_idle(host: Any) -> None:
    deadline = time.time() + TIMEOUT
    while host.run("systemctl is-active voice-retrain.service").stdout.strip() in ("activating", "active", "deactivating"):
        if time.time() > deadline:
            pytest.fail("voice-retrain.service still runs after {} s".format(TIMEOUT))
        time.sleep(1)


def test_old_tools_versions_are_pruned(host: Any) -> None:
    """prepare.yml left two older versions (and tarballs); only the newest older one is kept beside current."""
    manifest = json.loads(host.file(TOOLS + "/MANIFEST.json").content_string)
    current = "{}-{}".format(manifest["arch"], manifest["inputs_hash"])
    assert host.file(TOOLS).linked_to == "/opt/voice-appliance/tools/" + current
    left = set(host.check_output("ls -A /opt/voice-appliance/tools").split())
    assert left == {"current", current, "deepspeech-tools-{}.tar.gz".format(current), manifest["arch"] + "-0ld0000000b2"}, left


def test_kenlm_tools_are_static_and_run(host: Any) -> None:
    for tool in ("lmplz", "filter", "build_binary"):
        ldd = host.run("ldd {}/bin/{}".format(TOOLS, tool))
        assert "not a dynamic executable" in ldd.stdout + ldd.stderr, (tool, ldd.stdout, ldd.stderr)
    assert host.check_output(TOOLS + "/bin/smoke-test").startswith("kenlm ok")


def test_tools_tarball_is_named_by_its_inputs(host: Any) -> None:
    manifest = json.loads(host.file(TOOLS + "/MANIFEST.json").content_string)
    target = host.file(TOOLS).linked_to
    assert target.endswith("/{}-{}".format(manifest["arch"], manifest["inputs_hash"])), (target, manifest)
    assert any(w.startswith("voice_appliance-") for w in manifest["wheels"]), manifest["wheels"]


def test_retrain_configuration_points_at_the_current_model(host: Any) -> None:
    config = json.loads(host.file("/etc/voice-appliance/retrain.json").content_string)
    assert config["alphabet"] == MODEL + "/alphabet.txt" and config["model"] == MODEL + "/output_graph.tflite", config
    assert config["output_scorer"] == SCORER and config["kenlm_bin_dir"] == TOOLS + "/bin", config
    assert config["verify_transcript"] == (FIXTURE / "das_ist_ein_test.txt").read_text().strip(), config
    assert config.get("base_scorer", MODEL + "/kenlm.scorer").startswith(MODEL + "/"), "the base scorer stays in the model"


def test_generated_scorer_is_installed_and_decodes_the_recording(host: Any) -> None:
    scorer = host.file(SCORER)
    assert scorer.is_file and scorer.user == "voice", (scorer.exists, scorer.user)
    out = host.check_output("{}/bin/deepspeech --model {}/output_graph.tflite --scorer {} --audio {} 2>/dev/null".format(
        VENV, MODEL, SCORER, WAV))
    assert out.strip() == (FIXTURE / "das_ist_ein_test.txt").read_text().strip()


def test_retrain_service_is_hardened(host: Any) -> None:
    out = host.run("systemd-analyze security voice-retrain.service --no-pager")
    found = re.search(r"Overall exposure level for voice-retrain\.service: ([0-9.]+)", out.stdout)
    assert found, out.stdout[-2000:] + out.stderr
    assert float(found.group(1)) <= 3.0, out.stdout
    unit = host.check_output("systemctl show -p User -p ProtectSystem -p NoNewPrivileges voice-retrain.service")
    assert "User=voice" in unit and "ProtectSystem=strict" in unit and "NoNewPrivileges=yes" in unit, unit


def test_path_unit_watches_the_sentences(host: Any) -> None:
    assert host.service("voice-retrain.path").is_enabled
    assert host.check_output("systemctl is-active voice-retrain.path") == "active"


def test_editing_sentences_rebuilds_the_scorer(host: Any, restore_sentences: None) -> None:
    spell = "{}/bin/voice-scorer-package inspect {} --alphabet {}/alphabet.txt --spell {}".format(
        VENV, SCORER, MODEL, _quote("schalte das radio an"))
    assert host.run(spell).rc == 1, "'radio' must not be in the seeded vocabulary"
    old = _sha(host, SCORER)
    before = _invocation(host)
    started = time.time()
    _write_sentences(host, host.file(SENTENCES).content_string + "\n[Radio]\nschalte das radio (an | aus)\n")
    props = _wait_for_run(host, before)
    took = time.time() - started
    assert props["Result"] == "success", (props, host.run("journalctl -u voice-retrain -n 30 --no-pager -o cat").stdout)
    assert _sha(host, SCORER) != old, "the scorer must change"
    assert host.run(spell).rc == 0, "the new scorer must hold the new words"
    # The next transcription uses the new scorer, and it still decodes the recording.
    out = host.check_output("{}/bin/deepspeech --model {}/output_graph.tflite --scorer {} --audio {} 2>/dev/null".format(
        VENV, MODEL, SCORER, WAV))
    assert out.strip() == "das ist ein test", out
    print("retrain after the edit took {:.1f} s".format(took))


def test_malformed_sentences_leave_the_previous_scorer_live(host: Any, restore_sentences_quietly: None) -> None:
    old = _sha(host, SCORER)
    before = _invocation(host)
    _write_sentences(host, "[Licht]\nschalte (das licht an\n")
    props = _wait_for_run(host, before)
    assert props["Result"] != "success", props
    log = host.check_output("journalctl -u voice-retrain.service --no-pager -o cat _SYSTEMD_INVOCATION_ID=" + props["InvocationID"])
    assert "sentences.ini:2" in log, log
    assert _sha(host, SCORER) == old, "a failed retrain must not touch the installed scorer"


def test_a_killed_retrain_leaves_the_previous_scorer_live(host: Any, restore_sentences_quietly: None) -> None:
    """kill -9 once the new scorer is built and being verified (the deepspeech decode runs), before the swap."""
    old = _sha(host, SCORER)
    before = _invocation(host)
    # New words: had the run ended, the scorer would differ.
    _write_sentences(host, host.file(SENTENCES).content_string + "\n[Radio]\nschalte das radio (ein | aus)\n")
    killed = host.run("timeout {} sh -c 'until pgrep -u voice -f \"bin/deepspeech --model\" >/dev/null; do sleep 0.02; done;"
                      " kill -9 $(pgrep -u voice -f \"bin/voice-retrain --config\")'".format(TIMEOUT))
    assert killed.rc == 0, "voice-retrain never reached its verification decode, or had ended: " + killed.stderr
    props = _wait_for_run(host, before)
    assert props["Result"] == "signal", props
    log = host.check_output("journalctl -u voice-retrain.service --no-pager -o cat _SYSTEMD_INVOCATION_ID=" + props["InvocationID"])
    assert "package: " in log and "verify: decoded" not in log, "the kill must land between packaging and the swap:\n" + log
    assert _sha(host, SCORER) == old, "a killed retrain must not touch the installed scorer"
    host.run_test("{}/bin/voice-scorer-package inspect {} --alphabet {}/alphabet.txt".format(VENV, SCORER, MODEL))


@ONLY_AMD64
def test_an_edit_saved_during_a_retrain_is_not_lost(host: Any, restore_sentences: None) -> None:
    """The path unit does not watch while the service runs; the service starts one more run itself."""
    digits = "(eins | zwei | drei | vier | fünf | sechs | sieben | acht | neun | null)"
    original = host.file(SENTENCES).content_string
    _write_sentences(host, original + "\n[Zahlen]\n" + " ".join([digits] * 5) + "\n")
    host.run_test("timeout 60 sh -c 'until pgrep -u voice -f \"bin/voice-retrain --config\" >/dev/null; do sleep 0.05; done'")
    _write_sentences(host, original + "\n[Zahlen]\n" + " ".join([digits] * 5) + "\n[Radio]\nradio aus\n")
    spell = "{}/bin/voice-scorer-package inspect {} --alphabet {}/alphabet.txt --spell {}".format(
        VENV, SCORER, MODEL, _quote("radio aus"))
    deadline = time.time() + TIMEOUT
    while time.time() < deadline:
        if host.run(spell).rc == 0 and host.run("systemctl is-active voice-retrain.service").stdout.strip() != "activating":
            return
        time.sleep(1)
    pytest.fail("the edit saved during the run never reached the scorer:\n"
                + host.run("journalctl -u voice-retrain.service -n 30 --no-pager -o cat").stdout)


SEED_PLAYBOOK = """
- name: Choose the tools for described machines.
  hosts: all
  gather_facts: false
  vars:
    ansible_facts: "{{ described_machines[inventory_hostname] }}"
    deepspeech_deps_debian_arch: armhf
    deepspeech_tools_source: seed
    deepspeech_tools_seed_url: https://example.invalid/deepspeech_train_tools.tar.gz
    deepspeech_tools_seed_sha256: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
  tasks:
    - name: Run the deepspeech_tools choice.
      ansible.builtin.include_role:
        name: deepspeech_tools
        tasks_from: choose
"""


@ONLY_AMD64
def test_seed_tools_are_refused_where_python_is_not_3_7(tmp_path: Path) -> None:
    """The seed tarball's wheels are cp37-only: refused on bookworm's 3.11 with that reason, accepted on 3.7."""
    machines = {name: {"python": {"version": {"major": 3, "minor": minor}, "executable": "/usr/bin/python3"}}
                for name, minor in (("buster", 7), ("bookworm", 11))}
    (tmp_path / "play.yml").write_text(SEED_PLAYBOOK)
    (tmp_path / "vars.json").write_text(json.dumps({"described_machines": machines}))
    (tmp_path / "hosts.ini").write_text("buster ansible_connection=local\nbookworm ansible_connection=local\n")
    playbook = shutil.which("ansible-playbook") or str(Path(sys.executable).parent / "ansible-playbook")
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_ROLES_PATH=str(REPO / "roles"),
               ANSIBLE_PYTHON_INTERPRETER=sys.executable)
    run = subprocess.run([playbook, "-i", str(tmp_path / "hosts.ini"), "-e", "@" + str(tmp_path / "vars.json"),
                          str(tmp_path / "play.yml")], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         universal_newlines=True, check=False, timeout=300)
    start = run.stdout.find("{\n")
    assert start >= 0, run.stdout[-2000:] + run.stderr[-2000:]
    report, _ = json.JSONDecoder().raw_decode(run.stdout[start:])
    failures = {host: result.get("msg", "") for play in report["plays"] for task in play["tasks"]
                for host, result in task["hosts"].items() if result.get("failed")}
    assert set(failures) == {"bookworm"}, failures
    assert "wheels built for CPython 3.7 only" in failures["bookworm"] and "runs Python 3.11" in failures["bookworm"], failures
    assert "Use deepspeech_tools_source: project" in failures["bookworm"], failures
