"""What a converged voice assistant must look like, checked inside the emulated Pi."""
from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any, Dict

import pytest
from test_retrain import ONE_FAULT_RUN

SCENARIO_MACHINE = {"default": "x86_64", "armhf": "armv7l", "arm64": "aarch64"}
SCENARIO = os.environ.get("MOLECULE_SCENARIO_NAME", "default")


def test_the_pi_runs_the_scenarios_cpu_architecture(host: Any) -> None:
    machine = host.check_output("uname -m")
    assert machine == SCENARIO_MACHINE[SCENARIO], "scenario {} must run {} code, uname -m says {}".format(
        SCENARIO, SCENARIO_MACHINE[SCENARIO], machine)
    # A program from the image itself, not only the kernel's answer: the ELF header of python3.
    elf = host.check_output("od -An -tx1 -j18 -N2 $(readlink -f /usr/bin/python3)")
    assert elf.split() == {"x86_64": ["3e", "00"], "armv7l": ["28", "00"], "aarch64": ["b7", "00"]}[machine], elf


def test_systemd_runs_as_pid_1(host: Any) -> None:
    state = host.run("systemctl is-system-running").stdout.strip()
    failed = host.run("systemctl --failed --no-legend --plain").stdout
    assert state in ("running", "degraded"), state
    assert state == "running", "failed units:\n" + failed


@pytest.mark.parametrize("package", ["sox", "libsox-fmt-mp3", "alsa-utils", "python3-venv", "python3-numpy"])
def test_debian_packages_are_installed(host: Any, package: str) -> None:
    assert host.package(package).is_installed


def test_sox_writes_a_16khz_mono_wav(host: Any) -> None:
    host.check_output("sox -n -r 16000 -c 1 -b 16 /tmp/preflight-probe.wav synth 0.25 sine 440")
    info = host.check_output("soxi /tmp/preflight-probe.wav")
    assert "Sample Rate    : 16000" in info and "Channels       : 1" in info and "16-bit" in info, info


def test_service_account_is_unprivileged(host: Any) -> None:
    user = host.user("voice")
    assert user.exists
    assert user.uid < 1000, "a system account"
    assert user.shell == "/usr/sbin/nologin"
    assert user.home == "/var/lib/voice-appliance"
    assert "audio" in user.groups


@pytest.mark.parametrize("path,owner,mode", [
    ("/opt/voice-appliance", "root", 0o755),
    ("/etc/voice-appliance", "root", 0o755),
    ("/var/lib/voice-appliance", "voice", 0o750),
])
def test_directories(host: Any, path: str, owner: str, mode: int) -> None:
    d = host.file(path)
    assert d.is_directory and d.user == owner and d.mode == mode, (path, d.user, oct(d.mode))


def _json_report(stdout: str) -> Dict[str, Any]:
    """The JSON callback's report, skipping anything other callbacks printed around it."""
    start = stdout.find("{\n")
    assert start >= 0, "no JSON report in:\n" + stdout[-3000:]
    report, _ = json.JSONDecoder().raw_decode(stdout[start:])
    return report


def test_check_mode_on_the_converged_pi_reports_no_changes(host: Any) -> None:
    """`ansible-playbook --check --diff -v` against the converged Pi must neither fail nor predict a change,
    nor print an MQTT password."""
    scenario_dir = Path(os.environ["MOLECULE_SCENARIO_DIRECTORY"])
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json")
    secrets = [line for line in host.run("cat /etc/voice-appliance/mqtt/*.password 2>/dev/null").stdout.splitlines() if line]
    run = subprocess.run(
        ["ansible-playbook", "--check", "--diff", "-v", "-i", os.environ["MOLECULE_INVENTORY_FILE"],
         str(scenario_dir.parent / "resources" / "converge.yml")],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, check=False, timeout=1800,
    )
    report = _json_report(run.stdout)
    changed = [
        "{}: {}".format(host, task["task"]["name"])
        for play in report["plays"] for task in play["tasks"]
        for host, result in task["hosts"].items() if result.get("changed")
    ]
    assert run.returncode == 0, run.stderr[-2000:] + json.dumps(report["stats"])
    assert report["stats"], "check mode ran on no host"
    assert all(s["changed"] == 0 and s["failures"] == 0 for s in report["stats"].values()), changed
    leaked = [i for i, secret in enumerate(secrets) if secret in run.stdout or secret in run.stderr]
    assert not leaked, "the --check --diff -v run printed MQTT password(s) number {}".format(leaked)


VENV = "/opt/voice-appliance/venv"


def test_deepspeech_command_reports_0_7_4(host: Any) -> None:
    out = host.check_output(VENV + "/bin/deepspeech --version 2>&1")
    assert "DeepSpeech" in out and "0.7.4" in out, out


def test_runtime_fact_records_the_compat_wheel(host: Any) -> None:
    """Debian bookworm (3.11) and trixie (3.13): no official 0.7.4 wheel fits, so the compat wheel is installed."""
    fact = json.loads(host.file("/etc/ansible/facts.d/deepspeech.fact").content_string)
    arch = {"default": "amd64", "armhf": "armhf", "arm64": "arm64"}[SCENARIO]
    assert fact["kind"] == "compat" and fact["arch"] == arch and fact["flavour"] == "tflite", fact
    assert fact["requirement"] == "deepspeech==0.7.4+compat.tflite." + arch, fact
    freeze = host.check_output(VENV + "/bin/python -m pip freeze --all")
    assert "deepspeech==0.7.4+compat.tflite." + arch in freeze.splitlines(), freeze


def test_official_library_loads_in_the_venv_python(host: Any) -> None:
    """The embedded official libdeepspeech.so loads through ctypes from the Pi's Python 3.11."""
    out = host.check_output(VENV + "/bin/python -c 'import deepspeech, platform; print(deepspeech.version(), platform.machine())'")
    assert out == "0.7.4 " + SCENARIO_MACHINE[SCENARIO], out


MODELS = "/opt/voice-appliance/models"
FIXTURE = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", ".")) / "files" / "fixture"


def test_current_model_is_a_verified_version(host: Any) -> None:
    current = host.file(MODELS + "/current")
    assert current.is_symlink and current.linked_to.startswith(MODELS + "/fixture_model-1-"), current.linked_to
    verified = json.loads(host.file(MODELS + "/current/.verified").content_string)
    manifest = json.loads((FIXTURE / "manifest.json").read_text())["files"]
    assert verified["tflite"] == manifest["output_graph.tflite"]["sha256"], verified
    assert verified["alphabet"] == manifest["alphabet.txt"]["sha256"], verified
    assert not host.file(MODELS + "/current/output_graph.pb").exists, "the TFLite runtime needs no protobuf graph"


def test_the_recorded_test_wav_transcribes_on_the_pi(host: Any) -> None:
    """The Pi's own DeepSpeech (official library, compat binding, its Python) transcribes the recorded WAV."""
    host.ansible("ansible.builtin.copy", "src={} dest=/root/das_ist_ein_test.wav mode=0644".format(FIXTURE / "das_ist_ein_test.wav"),
                 become=True, check=False)
    out = host.check_output(VENV + "/bin/deepspeech --model " + MODELS + "/current/output_graph.tflite"
                            " --audio /root/das_ist_ein_test.wav 2>/dev/null")
    assert out.strip() == (FIXTURE / "das_ist_ein_test.txt").read_text().strip()


@ONE_FAULT_RUN
def test_a_damaged_model_update_is_refused_and_the_working_model_stays(host: Any, tmp_path: Path) -> None:
    """A truncated graph whose (pinned) sum matches passes staging; the Pi's load proof must refuse it."""
    import hashlib
    origin = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "origin" / "fixture_model" / "2"
    origin.mkdir(parents=True, exist_ok=True)
    graph = (FIXTURE / "output_graph.tflite").read_bytes()
    (origin / "output_graph.tflite").write_bytes(graph[: len(graph) // 2])
    (origin / "alphabet.txt").write_bytes((FIXTURE / "alphabet.txt").read_bytes())
    entries = {variant: {"filename": name, "url": "http://127.0.0.1:8731/fixture_model/2/" + name,
                         "sha256": hashlib.sha256((origin / name).read_bytes()).hexdigest()}
               for variant, name in (("tflite", "output_graph.tflite"), ("alphabet", "alphabet.txt"))}
    extra = tmp_path / "update.json"
    extra.write_text(json.dumps({"deepspeech_model_version": "2",
                                 "artifact_stage_catalog_overrides": {"fixture_model": {"2": entries}}}))
    before = host.file(MODELS + "/current").linked_to
    run = subprocess.run(
        ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], "-e", "@" + str(extra),
         str(Path(os.environ["MOLECULE_SCENARIO_DIRECTORY"]).parent / "resources" / "converge.yml")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, check=False, timeout=1800)
    assert run.returncode != 0, "a damaged model must fail the host"
    assert "was refused and removed; this Pi keeps its working model" in run.stdout, run.stdout[-3000:]
    assert host.file(MODELS + "/current").linked_to == before
    assert "fixture_model-2-" not in host.check_output("ls " + MODELS), "the refused copy must be removed"


@ONE_FAULT_RUN
def test_a_model_file_emptied_by_a_power_loss_is_proved_again_and_restored(host: Any) -> None:
    """A zero-length graph under an intact `.verified` (what a power loss leaves without fsync) is not trusted."""
    before = host.file(MODELS + "/current").linked_to
    graph = before + "/output_graph.tflite"
    # As after a power cut: the service is down, the Pi comes back with the file emptied.
    host.run_expect([0], "systemctl stop rhasspy-asr-deepspeech-hermes.service && truncate -s 0 " + graph)
    run = subprocess.run(
        ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"],
         str(Path(os.environ["MOLECULE_SCENARIO_DIRECTORY"]).parent / "resources" / "converge.yml")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, check=False, timeout=1800)
    assert run.returncode == 0, run.stdout[-3000:]
    said = " ".join(run.stdout.split())
    assert "is not trusted: tflite file {} has 0 bytes".format(graph) in said, run.stdout[-3000:]
    assert "(it is the current version)" in said
    assert host.file(MODELS + "/current").linked_to == before, "the same version, proved again"
    manifest = json.loads((FIXTURE / "manifest.json").read_text())["files"]
    assert host.file(graph).sha256sum == manifest["output_graph.tflite"]["sha256"]
    assert json.loads(host.file(MODELS + "/current/.verified").content_string)["tflite"] == manifest["output_graph.tflite"]["sha256"]
    assert host.service("rhasspy-asr-deepspeech-hermes.service").is_running


def _rollback() -> subprocess.CompletedProcess:
    return subprocess.run(["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"],
                           str(Path(os.environ["MOLECULE_PROJECT_DIRECTORY"]) / "playbooks" / "rollback.yml")],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, check=False, timeout=600)


@pytest.mark.skipif(SCENARIO != "default", reason="one rollback run is enough; it runs on the fast amd64 Pi")
def test_rollback_goes_to_a_verified_previous_version_only_and_a_second_one_undoes_it(host: Any) -> None:
    """playbooks/rollback.yml (the module model_links): refused without a verified previous version, changing
    nothing; with one, current and previous swap, and a second rollback swaps them back."""
    current = host.file(MODELS + "/current").linked_to
    working = current.rsplit("/", 1)[-1]
    previous_before = host.check_output("readlink {}/previous || true".format(MODELS))
    older = "fixture_model-0-rollbacktest"
    try:
        host.run_expect([0], "rm -f {0}/previous && cp -a {1} {0}/{2} && rm -f {0}/{2}/.verified".format(MODELS, current, older))
        host.run_expect([0], "ln -sfn {} {}/previous".format(older, MODELS))
        refused = _rollback()  # previous exists but is not verified
        assert refused.returncode != 0, refused.stdout[-3000:]
        assert "no verified previous model version in {} to roll back to (previous: {}); it keeps {}".format(
            MODELS, older, working) in " ".join(refused.stdout.split()), refused.stdout[-3000:]
        assert host.file(MODELS + "/current").linked_to == current

        host.run_expect([0], "cp -a {0}/.verified {1}/{2}/.verified".format(current, MODELS, older))
        first = _rollback()
        assert first.returncode == 0, first.stdout[-3000:]
        assert (host.check_output("readlink " + MODELS + "/current"), host.check_output("readlink " + MODELS + "/previous")) == (older, working)
        second = _rollback()
        assert second.returncode == 0, second.stdout[-3000:]
        assert (host.check_output("readlink " + MODELS + "/current"), host.check_output("readlink " + MODELS + "/previous")) == (working, older)
    finally:
        host.run("ln -sfn {0} {1}/current".format(working, MODELS))
        host.run("rm -rf {0}/{1} && rm -f {0}/previous".format(MODELS, older))
        if previous_before:
            host.run("ln -sfn {} {}/previous".format(previous_before, MODELS))
    assert host.service("rhasspy-asr-deepspeech-hermes.service").is_running


@pytest.mark.skipif(SCENARIO != "default", reason="the gates' messages need one run; it runs on the fast amd64 Pi")
@pytest.mark.parametrize("extra,message", [
    ({"voice_verify_expected": "ist das ein test"}, "expected 'ist das ein test': word error rate 0.5 is above voice_verify_max_wer 0.0"),
    ({"voice_verify_max_rtf": 0.0001}, "is above voice_verify_max_rtf 0.0001"),
])
def test_verify_gates_fail_with_clear_messages(tmp_path: Path, extra: Dict[str, Any], message: str) -> None:
    (tmp_path / "extra.json").write_text(json.dumps(extra))
    playbook = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"]) / "playbooks" / "verify.yml"
    run = subprocess.run(["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], "-e", "@" + str(tmp_path / "extra.json"),
                          str(playbook)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                         check=False, timeout=600)
    assert run.returncode != 0
    assert message in " ".join(run.stdout.split()), run.stdout[-3000:]


@pytest.mark.parametrize("unit", ["rhasspy-asr-deepspeech-hermes.service", "rhasspy-asr-reload.service", "voice-retrain.service",
                                  "voice-retrain-recheck.service", "wyoming-asr.service", "mosquitto.service"])
def test_every_service_of_the_appliance_is_hardened(host: Any, unit: str) -> None:
    """systemd-analyze security: exposure at most 3.0 for every service the appliance runs (the broker included)."""
    out = host.run("systemd-analyze security {} --no-pager".format(unit))
    found = re.search(r"Overall exposure level for {}: ([0-9.]+)".format(re.escape(unit)), out.stdout)
    assert found, out.stdout[-2000:] + out.stderr
    assert float(found.group(1)) <= 3.0, out.stdout
    if unit == "mosquitto.service":
        assert host.check_output("ps -o user= -C mosquitto") == "mosquitto", "the broker runs as its own account, never root"


def test_the_asr_venv_is_a_link_to_a_proved_virtualenv_of_the_store(host: Any) -> None:
    """The services use the link; it points into venvs/, at a virtualenv whose marker records every layer. A
    virtualenv of the earlier layout (planted by prepare) was moved into the store, not deleted."""
    link = host.file(VENV)
    assert link.is_symlink and link.linked_to.startswith("/opt/voice-appliance/venvs/"), link.linked_to
    marker = json.loads(host.file(link.linked_to + "/voice-venv.json").content_string)
    expected = ["deepspeech", "tools", "rhasspy"] + (["wyoming"] if host.file("/etc/ansible/facts.d/wyoming_asr.fact").exists else [])
    assert [layer["name"] for layer in marker["layers"]] == expected
    assert marker["id"].startswith(link.linked_to.rsplit("/", 1)[1].split("-")[0])
    store = host.check_output("ls /opt/voice-appliance/venvs").split()
    live = link.linked_to.rsplit("/", 1)[1]
    if SCENARIO in ("default", "armhf"):
        # prepare.yml left an earlier release's virtualenv where the link belongs: moved into the store, kept.
        legacy = [name for name in store if name.startswith("legacy-")]
        assert sorted(store) == sorted([live] + legacy) and len(legacy) == 1, store
        assert host.file("/opt/voice-appliance/venvs/{}/earlier-release".format(legacy[0])).exists
    else:
        assert store == [live]


@pytest.mark.fault
@ONE_FAULT_RUN
def test_a_venv_build_that_fails_leaves_the_live_venv_and_the_service_alone(host: Any) -> None:
    """New inputs (here: a package index that refuses every connection) make a new virtualenv beside the live one;
    when pip fails, the run fails naming the layer, the half-built virtualenv is gone, the link and the running
    service are untouched."""
    live_venv = host.file(VENV).linked_to
    store = host.check_output("ls /opt/voice-appliance/venvs")
    service = "rhasspy-asr-deepspeech-hermes.service"
    pid = host.check_output("systemctl show -p MainPID --value " + service)
    run = subprocess.run(
        ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], "-e", "rhasspy_asr_pip_index_url=http://127.0.0.1:9/simple",
         str(Path(os.environ["MOLECULE_SCENARIO_DIRECTORY"]).parent / "resources" / "converge.yml")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, check=False, timeout=1800)
    assert run.returncode != 0, "a layer pip cannot install must fail the host"
    assert "installing the layer 'rhasspy' failed" in run.stdout, run.stdout[-3000:]
    assert "is unchanged" in run.stdout, run.stdout[-3000:]
    assert host.file(VENV).linked_to == live_venv
    assert host.check_output("ls /opt/voice-appliance/venvs") == store, "the half-built virtualenv is removed"
    assert host.check_output("systemctl show -p MainPID --value " + service) == pid, "the service was not restarted"
    host.run_expect([0], VENV + "/bin/python -c 'import rhasspyasr_deepspeech_hermes, wyoming'")


@pytest.mark.fault
@pytest.mark.skipif(SCENARIO != "default", reason="one drift run is enough; it runs on the fast amd64 Pi")
def test_one_plain_re_run_repairs_every_drift_and_reports_it(host: Any) -> None:
    """A converged Pi drifts five ways at once: a unit file deleted, the model's `current` link removed, the ASR
    service stopped, Mosquitto's listener edited, a package removed from the ASR venv. One plain run of the
    users' playbook repairs each, reports each repair as a change (and its verification gate passes)."""
    listener = "/etc/mosquitto/conf.d/voice-appliance.conf"
    working = host.file(MODELS + "/current").linked_to
    good_listener = host.file(listener).content_string
    assert "18831" in good_listener, good_listener
    host.run_expect([0], "rm /etc/systemd/system/voice-retrain.path && systemctl daemon-reload")
    host.run_expect([0], "rm {}/current".format(MODELS))
    host.run_expect([0], "systemctl stop rhasspy-asr-deepspeech-hermes.service")
    host.run_expect([0], "sed -i 's/18831/18839/' {} && systemctl restart mosquitto.service".format(listener))
    live_venv = host.file(VENV).linked_to
    host.run_expect([0], VENV + "/bin/pip uninstall --yes --quiet wyoming")
    assert host.run(VENV + "/bin/python -c 'import wyoming'").rc != 0

    scenario_dir = Path(os.environ["MOLECULE_SCENARIO_DIRECTORY"])
    run = subprocess.run(
        ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], str(scenario_dir.parent / "resources" / "converge.yml")],
        env=dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        universal_newlines=True, check=False, timeout=1800)
    report = _json_report(run.stdout)
    assert run.returncode == 0, run.stderr[-2000:] + json.dumps(report["stats"])
    changed = {task["task"]["name"].split(" : ", 1)[-1] for play in report["plays"] for task in play["tasks"]  # ROLE : NAME
               for result in task["hosts"].values() if result.get("changed")}
    repairs = {
        "the deleted unit file": "Put the retrain's inputs in place (slots, verification recording, configuration, sentences) and "
                                 "install its units.",
        "the removed current link": "Switch `current` to this version atomically if a verified copy of it is installed, "
                                    "and prune old versions.",
        "the stopped ASR service": "Install and start the Hermes ASR service and the watcher that reloads it when its model or scorer "
                                   "changed, and record its MQTT endpoint.",
        "the edited listener": "Write the local broker's ACL, listener and hardening and apply them, and remove earlier releases' "
                               "files and those of the broker mode not in use.",
        "the removed venv package": "Copy every layer's wheels to the Pi, build the ASR virtualenv from them, prove it and switch to it.",
    }
    assert {drift: task for drift, task in repairs.items() if task not in changed} == {}, sorted(changed)

    assert host.file("/etc/systemd/system/voice-retrain.path").exists
    assert host.service("voice-retrain.path").is_running
    assert host.file(MODELS + "/current").linked_to == working
    assert host.service("rhasspy-asr-deepspeech-hermes.service").is_running
    assert host.file(listener).content_string == good_listener
    host.run_expect([0], "python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", 18831), 10).close()'")  # no ss here
    host.run_expect([0], VENV + "/bin/python -c 'import wyoming'")
    # Repaired beside, not in place: a new virtualenv, the damaged one kept as the previous.
    assert host.file(VENV).linked_to != live_venv and host.file(live_venv).is_directory
