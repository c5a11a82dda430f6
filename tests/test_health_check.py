"""health_check, the health check's one call on the Pi: each path's command run in turn (exit code, output, wall
time; a command that cannot start or outlives its timeout is reported, not raised; a check's env reaches its own
command only and never Ansible's output), then what the Pi decodes with (the version `current` points to, the sums of
its `.verified` marker, the live scorer's sha256 and mtime; a missing or torn marker and a missing scorer are
reported, not raised). Also the filter voice_verify_checks that builds the checks."""
from __future__ import annotations

import grp
import hashlib
import inspect
import json
import os
import pwd
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest
import yaml

from ansible_collections.pivoice.voice_appliance.plugins.filter import speech_metrics as metrics
from ansible_collections.pivoice.voice_appliance.plugins.modules import health_check as health


PY = sys.executable

SUMS = {"tflite": "a" * 64, "alphabet": "b" * 64}


def _sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _models(tmp_path: Path, marker: str = json.dumps(SUMS)) -> Path:
    version = tmp_path / "models" / "german-0.7.4-0123abcd"
    version.mkdir(parents=True)
    (version / ".verified").write_text(marker)
    os.symlink("german-0.7.4-0123abcd", tmp_path / "models" / "current")
    return tmp_path / "models" / "current"


def test_the_current_version_its_sums_and_the_scorer_are_read(tmp_path: Path) -> None:
    current = _models(tmp_path)
    scorer = tmp_path / "generated.scorer"
    scorer.write_bytes(b"scorer bytes" * 1000)
    found = health.read(str(current), str(scorer), _sha256)
    assert found["model_id"] == "german-0.7.4-0123abcd" and found["model_sums"] == SUMS
    assert found["scorer"] == {"exists": True, "sha256": hashlib.sha256(scorer.read_bytes()).hexdigest(),
                               "mtime": scorer.stat().st_mtime}


def test_a_model_directory_that_is_no_link_is_named_by_itself(tmp_path: Path) -> None:
    _models(tmp_path)
    found = health.read(str(tmp_path / "models" / "german-0.7.4-0123abcd") + "/", "", _sha256)
    assert found["model_id"] == "german-0.7.4-0123abcd" and found["scorer"]["exists"] is False


@pytest.mark.fault
@pytest.mark.parametrize("marker", ["", "{torn", "[1, 2]"])
def test_a_missing_or_torn_marker_gives_no_sums_and_says_why(tmp_path: Path, marker: str) -> None:
    current = _models(tmp_path, marker)
    found = health.read(str(current), "", _sha256)
    assert found["model_sums"] == {} and found["model_sums_error"].startswith(str(current / ".verified"))


@pytest.mark.fault
def test_a_removed_current_link_and_a_missing_scorer_are_reported_not_raised(tmp_path: Path) -> None:
    found = health.read(str(tmp_path / "models" / "current"), str(tmp_path / "gone.scorer"), _sha256)
    assert found["model_id"] == "current" and found["model_sums"] == {} and "model_sums_error" in found
    assert found["scorer"]["exists"] is False and found["scorer"]["error"].startswith(str(tmp_path / "gone.scorer"))


def _py(code: str) -> List[str]:
    return [PY, "-c", code]


def test_a_check_returns_its_exit_code_output_and_wall_time() -> None:
    done = health.run_check(_py("import sys; print('das ist ein test'); sys.stderr.write('Inference took 0.5s'); sys.exit(3)"))
    assert (done["rc"], done["stdout"], done["stderr"]) == (3, "das ist ein test\n", "Inference took 0.5s")
    assert done["cmd"][0] == PY and 0 < done["seconds"] < 60


def test_the_checks_run_in_turn_and_each_env_reaches_only_its_own_command(tmp_path: Path) -> None:
    log = tmp_path / "log"
    step = ("import os, time; f = open({!r}, 'a'); f.write('start %s %s\\n' % (os.environ.get('SECRET', '-'), time.time())); "
            "time.sleep(0.3); f.write('end %s\\n' % time.time())").format(str(log))
    results = health.run_checks([{"path": "cli", "argv": _py(step)},
                                 {"path": "mqtt", "argv": _py(step), "env": {"SECRET": "s3cret"}, "timeout": 30},
                                 {"path": "wyoming", "argv": _py(step)}])
    assert list(results) == ["cli", "mqtt", "wyoming"] and all(r["rc"] == 0 for r in results.values())
    lines = [line.split() for line in log.read_text().splitlines()]
    assert [line[0] for line in lines] == ["start", "end"] * 3, "one command at a time"
    assert [line[1] for line in lines if line[0] == "start"] == ["-", "s3cret", "-"]
    assert "s3cret" not in json.dumps(results)


@pytest.mark.fault
def test_a_command_that_cannot_start_is_reported_not_raised(tmp_path: Path) -> None:
    done = health.run_check([str(tmp_path / "no-such-client"), "--wav", "x.wav"])
    assert done["rc"] == 127 and done["stderr"].startswith("cannot run {}".format(tmp_path / "no-such-client"))


@pytest.mark.fault
def test_a_command_that_outlives_its_timeout_is_killed_and_reported() -> None:
    done = health.run_check(_py("import sys, time; print('partial', flush=True); time.sleep(30)"), timeout=1)
    assert done["rc"] == -9 and done["stdout"] == "partial\n" and "killed after its timeout of 1 s" in done["stderr"]
    assert done["seconds"] < 20


def test_a_check_without_a_timeout_gets_the_one_default_the_option_documents() -> None:
    documented = yaml.safe_load(health.DOCUMENTATION)["options"]["checks"]["suboptions"]["timeout"]["default"]
    assert documented == health.TIMEOUT == health.ARGUMENT_SPEC["checks"]["options"]["timeout"]["default"]
    assert inspect.signature(health.run_check).parameters["timeout"].default == health.TIMEOUT
    asked: List[Any] = []
    health.run_checks([{"path": "cli", "argv": ["true"]}, {"path": "mqtt", "argv": ["true"], "timeout": 30},
                       {"path": "wyoming", "argv": ["true"], "timeout": None}],
                      run=lambda argv, env, timeout: asked.append(timeout) or {})
    assert asked == [float(health.TIMEOUT), 30.0, float(health.TIMEOUT)]


@pytest.mark.parametrize("checks, message", [
    ([{"path": "cli", "argv": ["true"]}, {"path": "cli", "argv": ["true"]}], "'cli' is repeated"),
    ([{"path": "", "argv": ["true"]}], "'' is empty"),
    ([{"path": "mqtt", "argv": []}], "'mqtt' has no command"),
])
def test_checks_without_a_name_of_their_own_or_a_command_are_refused(checks: List[Dict[str, Any]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        health.run_checks(checks)


VERIFY = {"enabled": {"cli": True, "mqtt": True, "wyoming": True}, "wav": "/var/lib/va/verify/t.wav",
          "deepspeech_command": "/opt/va/venv/bin/deepspeech", "model": "/m/current/output_graph.tflite", "scorer": "",
          "hermes_command": "/opt/va/venv/bin/voice-hermes-check", "mqtt_timeout": 120, "mqtt_username": "", "mqtt_password": "",
          "mqtt": {"site_id": "default", "mqtt_host": "127.0.0.1", "mqtt_port": 1883, "username": "verify",
                   "password_file": "/etc/va/mqtt/verify.password"},
          "wyoming_command": "/opt/va/venv/bin/voice-wyoming-check", "wyoming_timeout": 90,
          "wyoming": {"host": "127.0.0.1", "port": 10300, "enabled": True}}


def test_the_filter_gives_one_command_per_enabled_path_the_password_in_env_only() -> None:
    cli, mqtt, wyoming = metrics.verify_checks(VERIFY)
    assert cli == {"path": "cli", "argv": ["/opt/va/venv/bin/deepspeech", "--model", "/m/current/output_graph.tflite",
                                           "--audio", "/var/lib/va/verify/t.wav"]}
    assert mqtt["argv"][-4:] == ["--username", "verify", "--password-file", "/etc/va/mqtt/verify.password"]
    assert (mqtt["env"], mqtt["timeout"], wyoming["timeout"]) == ({}, 180.0, 150.0)
    assert wyoming["argv"] == ["/opt/va/venv/bin/voice-wyoming-check", "--wav", "/var/lib/va/verify/t.wav", "--host", "127.0.0.1",
                               "--port", "10300", "--timeout", "90"]
    own = metrics.verify_checks(dict(VERIFY, scorer="/s/x.scorer", mqtt_username="admin", mqtt_password="pw!",
                                     enabled={"cli": True, "mqtt": True, "wyoming": False}))
    assert [check["path"] for check in own] == ["cli", "mqtt"] and own[0]["argv"][-2:] == ["--scorer", "/s/x.scorer"]
    assert own[1]["argv"][-2:] == ["--username", "admin"] and own[1]["env"] == {"VOICE_HERMES_PASSWORD": "pw!"}
    assert "pw!" not in json.dumps([check["argv"] for check in own])
    assert metrics.verify_checks(dict(VERIFY, enabled={})) == []


PLAYBOOK = """
- name: Run the health check.
  hosts: all
  gather_facts: false
  tasks:
    - name: Check two paths and read the model.
      pivoice.voice_appliance.health_check:
        checks:
          - {path: cli, argv: ["{{ py }}", "-c", "print('das ist ein test')"]}
          - path: mqtt
            argv: ["{{ py }}", "-c", "import os; print(len(os.environ['VOICE_HERMES_PASSWORD']))"]
            env: {VOICE_HERMES_PASSWORD: "{{ secret }}"}
        model_dir: "{{ models }}/current"
        scorer: "{{ models }}/none.scorer"
      register: health
    - name: Show it.
      ansible.builtin.debug:
        var: health
"""


def test_the_module_runs_through_ansible_in_check_mode_too_and_never_shows_the_password(tmp_path: Path) -> None:
    current = _models(tmp_path)
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    (tmp_path / "ansible.cfg").write_text("[defaults]\n")
    secret = "Pa55-wörd-" + os.urandom(6).hex()
    for check in (False, True):
        proc = subprocess.run([str(Path(PY).parent / "ansible-playbook"), "-v", "-i", "localhost,", "-c", "local",
                               "-e", "ansible_python_interpreter=" + PY, "-e", "py=" + PY, "-e", "secret=" + secret,
                               "-e", "models=" + str(current.parent), str(tmp_path / "play.yml")] + (["--check"] if check else []),
                              env=dict(os.environ, ANSIBLE_CONFIG=str(tmp_path / "ansible.cfg")),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=120)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert secret not in proc.stdout + proc.stderr
        assert "das ist ein test" in proc.stdout and '"stdout": "{}\\n"'.format(len(secret)) in proc.stdout
        assert "german-0.7.4-0123abcd" in proc.stdout and "changed=0" in proc.stdout


# The test WAV rides on the health check: the module puts its directory and the WAV in place (module_utils/paths.py,
# paths_state's code) and checks only once the WAV is there; the action plugin (paths_state's, subclassed) sends the
# WAV only when the Pi lacks it, then runs the module again, which checks.

def _wav_params(root: Path, wav: bytes, log: Path, staged: Any = None) -> Dict[str, Any]:
    dest = root / "verify" / "t.wav"
    code = ("import hashlib, sys; open({!r}, 'a').write('ran\\n'); "
            "print(hashlib.sha256(open({!r}, 'rb').read()).hexdigest())").format(str(log), str(dest))
    return {"directories": [{"path": str(root / "verify"), "mode": "0755"}],
            "files": [{"sha256": hashlib.sha256(wav).hexdigest(), "size": len(wav), "dest": str(dest), "mode": "0644"}],
            "staged": staged or {}, "checks": [{"path": "cli", "argv": _py(code)}], "model_dir": str(root / "models" / "current"),
            "scorer": ""}


def test_the_module_puts_the_wav_in_place_first_and_checks_only_once_it_is_there(tmp_path: Path) -> None:
    _models(tmp_path)
    wav, log = b"RIFF" + os.urandom(2000), tmp_path / "log"
    first = health.run(_wav_params(tmp_path, wav, log), check=False, want_diff=False, sha256=_sha256)
    dest = tmp_path / "verify" / "t.wav"
    assert first["transfer"] == [str(dest)] and first["changed"] is True
    assert first["changes"] == {str(tmp_path / "verify"): ["created"], str(dest): ["created"]}
    assert first["checks"] == {} and "not on the Pi yet" in first["checks_skipped"] and str(dest) in first["checks_skipped"]
    assert not log.exists() and "model_id" not in first, "no check and no reading before the WAV is there"
    assert (tmp_path / "verify").is_dir() and not dest.exists()
    staged = tmp_path / "source-0"
    staged.write_bytes(wav)
    second = health.run(_wav_params(tmp_path, wav, log, {str(dest): str(staged)}), check=False, want_diff=False, sha256=_sha256)
    assert second["transfer"] == [] and second["changes"] == {str(dest): ["created"]} and "checks_skipped" not in second
    assert dest.read_bytes() == wav and stat.S_IMODE(dest.stat().st_mode) == 0o644
    assert second["checks"]["cli"]["stdout"].strip() == hashlib.sha256(wav).hexdigest() and log.read_text() == "ran\n"
    assert second["model_id"] == "german-0.7.4-0123abcd"
    again = health.run(_wav_params(tmp_path, wav, log), check=False, want_diff=False, sha256=_sha256)
    assert again["changed"] is False and again["changes"] == {} and again["transfer"] == [] and log.read_text() == "ran\n" * 2


def test_check_mode_runs_the_checks_only_when_the_wav_is_in_place(tmp_path: Path) -> None:
    _models(tmp_path)
    wav, log = b"RIFF" + os.urandom(2000), tmp_path / "log"
    fresh = health.run(_wav_params(tmp_path, wav, log), check=True, want_diff=True, sha256=_sha256)
    assert fresh["changed"] is True and fresh["checks"] == {} and fresh["checks_skipped"].startswith("check mode: ")
    assert not log.exists() and not (tmp_path / "verify").exists(), "check mode changes nothing and runs nothing"
    assert fresh["model_id"] == "german-0.7.4-0123abcd", "what the Pi decodes with is still read"
    assert "sha256 {}".format(hashlib.sha256(wav).hexdigest()[:12]) in fresh["diff"]["after"]
    (tmp_path / "verify").mkdir()
    (tmp_path / "verify" / "t.wav").write_bytes(wav)
    os.chmod(str(tmp_path / "verify" / "t.wav"), 0o600)
    there = health.run(_wav_params(tmp_path, wav, log), check=True, want_diff=False, sha256=_sha256)
    assert there["changes"] == {str(tmp_path / "verify" / "t.wav"): ["mode"]} and "checks_skipped" not in there
    assert there["checks"]["cli"]["rc"] == 0 and log.read_text() == "ran\n", "a wrong mode alone: the WAV is there, checked"
    assert stat.S_IMODE((tmp_path / "verify" / "t.wav").stat().st_mode) == 0o600


@pytest.mark.bad_input
def test_a_path_that_cannot_be_put_in_place_is_refused_before_any_check(tmp_path: Path) -> None:
    _models(tmp_path)
    (tmp_path / "verify").write_text("a file where the directory belongs")
    log = tmp_path / "log"
    with pytest.raises(health.PathsError, match="directory {}: it exists but is not a directory; move it away".format(tmp_path / "verify")):
        health.run(_wav_params(tmp_path, b"RIFF", log), check=False, want_diff=False, sha256=_sha256)
    assert not log.exists()


WAV_PLAY = """
- name: Run the health check with its WAV.
  hosts: all
  gather_facts: false
  tasks:
    - name: Copy the test WAV to the Pi unless it has it and transcribe it.
      pivoice.voice_appliance.health_check:
        directories:
          - {path: "{{ root }}/verify", owner: "{{ me }}", group: "{{ my_group }}", mode: "0755"}
        files:
          - {src: "{{ wav }}", dest: "{{ root }}/verify/t.wav", owner: "{{ me }}", group: "{{ my_group }}", mode: "0644"}
        checks:
          - path: cli
            argv: ["{{ py }}", "-c", "import hashlib; open('{{ log }}', 'a').write('ran\\\\n'); print(hashlib.sha256(open('{{ root }}/verify/t.wav', 'rb').read()).hexdigest())"]
        model_dir: "{{ root }}/models/current"
      register: health
"""


def _module_runs(runs: Path) -> int:
    return runs.read_text().count("module run") if runs.exists() else 0


def _wav_play(tmp: Path, root: Path, wav: Path, check: bool = False, pipelining: bool = True) -> Dict[str, Any]:
    """ansible-playbook against this machine; the interpreter is a wrapper that notes each start (each module run: the
    play runs nothing else on the host). With pipelining (the project's setting) the module comes on stdin, without it
    as a file: the count must not depend on which."""
    runs = tmp / "module-runs"
    wrapper = tmp / "python"
    wrapper.write_text("#!/bin/sh\necho \"module run $*\" >> {}\nexec {} \"$@\"\n".format(runs, PY))
    os.chmod(str(wrapper), 0o755)
    (tmp / "play.yml").write_text(WAV_PLAY)
    (tmp / "hosts.ini").write_text("pi ansible_connection=local ansible_python_interpreter={}\n".format(wrapper))
    (tmp / "ansible.cfg").write_text("[defaults]\n")
    extra = {"root": str(root), "wav": str(wav), "py": PY, "log": str(tmp / "log"), "me": pwd.getpwuid(os.getuid()).pw_name,
             "my_group": grp.getgrgid(os.getgid()).gr_name}
    before = _module_runs(runs)
    proc = subprocess.run([str(Path(PY).parent / "ansible-playbook"), "-i", str(tmp / "hosts.ini"), str(tmp / "play.yml"),
                           "-e", json.dumps(extra)] + (["--check"] if check else []),
                          env=dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_CONFIG=str(tmp / "ansible.cfg"),
                                   ANSIBLE_PIPELINING=str(int(pipelining))),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=300)
    task = json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]["pi"]
    return {"rc": proc.returncode, "task": task, "module_runs": _module_runs(runs) - before,
            "checks_run": (tmp / "log").read_text().count("ran") if (tmp / "log").exists() else 0}


@pytest.mark.parametrize("pipelining", [True, False])
def test_the_action_plugin_sends_the_wav_only_when_the_pi_lacks_it_and_the_checks_see_it(tmp_path: Path, pipelining: bool) -> None:
    root, wav = tmp_path / "pi", tmp_path / "das_ist_ein_test.wav"
    _models(root)
    wav.write_bytes(b"RIFF" + os.urandom(50000))
    dest = root / "verify" / "t.wav"

    checked = _wav_play(tmp_path, root, wav, check=True, pipelining=pipelining)
    assert checked["rc"] == 0 and checked["task"]["changed"] and checked["module_runs"] == 1, checked["task"].get("msg")
    assert not (root / "verify").exists() and checked["checks_run"] == 0 and checked["task"]["checks"] == {}
    assert checked["task"]["checks_skipped"].startswith("check mode: ")

    cold = _wav_play(tmp_path, root, wav, pipelining=pipelining)
    assert cold["rc"] == 0, cold["task"].get("msg")
    assert cold["module_runs"] == 2 and cold["checks_run"] == 1, "the first run puts the directory in place, the second checks"
    assert cold["task"]["changed"] and cold["task"]["transfer"] == [] and "checks_skipped" not in cold["task"]
    assert cold["task"]["changes"] == {str(root / "verify"): ["created"], str(dest): ["created"]}
    assert dest.read_bytes() == wav.read_bytes() and stat.S_IMODE(dest.stat().st_mode) == 0o644
    assert stat.S_IMODE((root / "verify").stat().st_mode) == 0o755
    assert (dest.stat().st_uid, dest.stat().st_gid) == (os.getuid(), os.getgid())
    assert cold["task"]["checks"]["cli"]["stdout"].strip() == _sha256(str(wav)) and cold["task"]["model_id"] == "german-0.7.4-0123abcd"

    inode = dest.stat().st_ino
    warm = _wav_play(tmp_path, root, wav, pipelining=pipelining)
    assert warm["rc"] == 0 and not warm["task"]["changed"] and warm["task"]["changes"] == {}
    assert warm["module_runs"] == 1 and warm["checks_run"] == 2 and dest.stat().st_ino == inode, "one module run, nothing sent"
    assert warm["task"]["checks"]["cli"]["stdout"].strip() == _sha256(str(wav))

    again = _wav_play(tmp_path, root, wav, check=True, pipelining=pipelining)
    assert again["rc"] == 0 and not again["task"]["changed"] and again["module_runs"] == 1 and again["checks_run"] == 3
    assert again["task"]["checks"]["cli"]["rc"] == 0, "check mode checks a Pi that has the WAV"

    wav.write_bytes(b"RIFF" + os.urandom(50000))
    replaced = _wav_play(tmp_path, root, wav, pipelining=pipelining)
    assert replaced["rc"] == 0 and replaced["task"]["changes"] == {str(dest): ["content"]} and replaced["module_runs"] == 2
    assert dest.read_bytes() == wav.read_bytes() and replaced["task"]["checks"]["cli"]["stdout"].strip() == _sha256(str(wav))
    assert replaced["checks_run"] == 4 and stat.S_IMODE(dest.stat().st_mode) == 0o644


@pytest.mark.bad_input
def test_a_wav_missing_on_the_controller_is_named_before_the_pi_changes(tmp_path: Path) -> None:
    root = tmp_path / "pi"
    _models(root)
    missing = _wav_play(tmp_path, root, tmp_path / "no-such.wav")
    assert missing["rc"] != 0 and missing["module_runs"] == 0 and missing["checks_run"] == 0
    assert missing["task"]["msg"].startswith("health_check: file {}: its src {} is not on the controller".format(
        root / "verify" / "t.wav", tmp_path / "no-such.wav"))
    assert not (root / "verify").exists()
