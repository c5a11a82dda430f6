"""python_env, the ASR virtualenv built beside the live one: real virtualenvs made by this Python and real pip
installs of small wheels built here (no index), a link switched only after the proof, drift repaired by a new
build, failures that leave the live virtualenv and its link alone, pruning, check mode and the move of a
virtualenv of the earlier layout."""
from __future__ import annotations

import base64
import hashlib
import importlib.util
import os
import sys
import zipfile
from pathlib import Path
from typing import Any, Dict, List

import pytest

REPO = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("python_env_module", str(REPO / "plugins" / "modules" / "python_env.py"))
assert _spec is not None and _spec.loader is not None
penv: Any = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(penv)

PYTHON = sys.executable


def _wheel(directory: Path, name: str, version: str, code: str) -> Path:
    """A real wheel: a module, its METADATA, WHEEL and a RECORD with sha256s."""
    directory.mkdir(parents=True, exist_ok=True)
    dist = "{}-{}.dist-info".format(name, version)
    files = {
        name + ".py": code,
        dist + "/METADATA": "Metadata-Version: 2.1\nName: {}\nVersion: {}\n".format(name, version),
        dist + "/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append("{},sha256={},{}".format(path, digest, len(text.encode())))
    record.append(dist + "/RECORD,,")
    files[dist + "/RECORD"] = "\n".join(record) + "\n"
    path = directory / "{}-{}-py3-none-any.whl".format(name, version)
    with zipfile.ZipFile(str(path), "w") as archive:
        for member, text in files.items():
            archive.writestr(member, text)
    return path


def _layers(wheels: Path, *names: str) -> List[Dict[str, Any]]:
    return [{"name": "local", "requirements": ["{}==1.0".format(n) for n in names], "find_links": [str(wheels)],
             "index": False, "deps": False, "env": {}}]


def _ensure(base: Path, layers: List[Dict[str, Any]], proof: Any = (), **kw: Any) -> Dict[str, Any]:
    return penv.ensure(str(base / "venv"), str(base / "venvs"), PYTHON, False, layers, [list(p) for p in proof], **kw)


def _store(base: Path) -> List[str]:
    return sorted(p.name for p in (base / "venvs").iterdir()) if (base / "venvs").exists() else []


@pytest.fixture()
def wheels(tmp_path: Path) -> Path:
    directory = tmp_path / "wheels"
    _wheel(directory, "alpha", "1.0", "VALUE = 'a'\n")
    _wheel(directory, "beta", "1.0", "VALUE = 'b'\n")
    return directory


def test_a_new_virtualenv_is_built_proved_and_linked_and_a_second_run_changes_nothing(tmp_path: Path, wheels: Path) -> None:
    first = _ensure(tmp_path, _layers(wheels, "alpha", "beta"), proof=[["python", "-c", "import alpha, beta"]])
    assert first["changed"] and first["built"] and first["reason"].startswith("no virtualenv")
    link = tmp_path / "venv"
    assert link.is_symlink() and os.path.realpath(str(link)) == first["venv"]
    assert os.path.dirname(first["venv"]) == str(tmp_path / "venvs")
    assert penv.read_marker(first["venv"])["id"] == first["id"]
    assert (link / "bin" / "python").exists()

    again = _ensure(tmp_path, _layers(wheels, "alpha", "beta"), proof=[["python", "-c", "import alpha, beta"]])
    assert not again["changed"] and again["venv"] == first["venv"] and again["id"] == first["id"]
    assert _store(tmp_path) == [os.path.basename(first["venv"])]


def test_a_rebuilt_wheel_with_the_same_version_builds_beside_and_keeps_the_previous(tmp_path: Path, wheels: Path) -> None:
    first = _ensure(tmp_path, _layers(wheels, "alpha"))
    _wheel(wheels, "alpha", "1.0", "VALUE = 'rebuilt'\n")
    second = _ensure(tmp_path, _layers(wheels, "alpha"))
    assert second["changed"] and second["reason"] == "its inputs changed"
    assert second["previous"] == first["venv"] and second["venv"] != first["venv"]
    assert os.path.isdir(first["venv"]), "the previous virtualenv is kept"
    out = penv._run([str(tmp_path / "venv" / "bin" / "python"), "-c", "import alpha; print(alpha.VALUE)"])
    assert out.strip() == "rebuilt"

    _wheel(wheels, "alpha", "1.0", "VALUE = 'third'\n")
    third = _ensure(tmp_path, _layers(wheels, "alpha"))
    assert third["removed"] == [first["venv"]], "beyond keep_previous the oldest goes"
    assert sorted(_store(tmp_path)) == sorted([os.path.basename(second["venv"]), os.path.basename(third["venv"])])


@pytest.mark.fault
def test_a_removed_distribution_is_repaired_by_a_new_build_that_names_it(tmp_path: Path, wheels: Path) -> None:
    first = _ensure(tmp_path, _layers(wheels, "alpha", "beta"))
    penv._run([str(tmp_path / "venv" / "bin" / "python"), "-m", "pip", "uninstall", "--yes", "--quiet", "beta"])
    repaired = _ensure(tmp_path, _layers(wheels, "alpha", "beta"))
    assert repaired["changed"] and repaired["reason"] == "missing or replaced: beta==1.0"
    assert repaired["venv"] != first["venv"] and repaired["previous"] == first["venv"]
    penv._run([str(tmp_path / "venv" / "bin" / "python"), "-c", "import beta"])


@pytest.mark.fault
def test_a_layer_pip_cannot_install_fails_and_leaves_the_live_virtualenv_linked(tmp_path: Path, wheels: Path) -> None:
    first = _ensure(tmp_path, _layers(wheels, "alpha"))
    with pytest.raises(penv.EnvError) as error:
        _ensure(tmp_path, _layers(wheels, "alpha", "gamma"))
    assert "installing the layer 'local' failed" in str(error.value) and "gamma" in str(error.value)
    assert os.path.realpath(str(tmp_path / "venv")) == first["venv"]
    assert _store(tmp_path) == [os.path.basename(first["venv"])], "the half-built virtualenv is removed"


@pytest.mark.fault
def test_a_layer_whose_module_does_not_import_fails_before_the_switch(tmp_path: Path, wheels: Path) -> None:
    first = _ensure(tmp_path, _layers(wheels, "alpha"))
    _wheel(wheels, "beta", "1.0", "raise ImportError('beta is broken')\n")
    layers = _layers(wheels, "alpha", "beta")
    layers[0]["imports"] = ["alpha", "beta"]
    with pytest.raises(penv.EnvError) as error:
        _ensure(tmp_path, layers)
    assert "importing alpha, beta failed" in str(error.value) and "beta is broken" in str(error.value)
    assert os.path.realpath(str(tmp_path / "venv")) == first["venv"]


@pytest.mark.fault
def test_a_failing_proof_fails_names_the_command_and_leaves_the_live_virtualenv_linked(tmp_path: Path, wheels: Path) -> None:
    first = _ensure(tmp_path, _layers(wheels, "alpha"))
    with pytest.raises(penv.EnvError) as error:
        _ensure(tmp_path, _layers(wheels, "alpha", "beta"), proof=[["python", "-c", "import delta"]])
    assert "the proof python -c import delta failed" in str(error.value) and "No module named 'delta'" in str(error.value)
    assert os.path.realpath(str(tmp_path / "venv")) == first["venv"]
    assert _store(tmp_path) == [os.path.basename(first["venv"])]


def test_check_mode_reports_the_build_and_touches_nothing(tmp_path: Path, wheels: Path) -> None:
    planned = _ensure(tmp_path, _layers(wheels, "alpha"), check=True)
    assert planned["changed"] and planned["built"]
    assert not (tmp_path / "venv").exists() and not (tmp_path / "venvs").exists()
    _ensure(tmp_path, _layers(wheels, "alpha"))
    assert not _ensure(tmp_path, _layers(wheels, "alpha"), check=True)["changed"]


def test_a_virtualenv_of_the_earlier_layout_is_moved_into_the_store_once_the_new_one_is_proved(tmp_path: Path, wheels: Path) -> None:
    penv._run([PYTHON, "-m", "venv", "--without-pip", str(tmp_path / "venv")])
    (tmp_path / "venv" / "old-file").write_text("kept\n")
    result = _ensure(tmp_path, _layers(wheels, "alpha"))
    assert result["changed"] and "was not built by this module" in result["reason"]
    assert (tmp_path / "venv").is_symlink()
    legacy = Path(result["previous"])
    assert legacy.parent == tmp_path / "venvs" and legacy.name.startswith("legacy-")
    assert (legacy / "old-file").read_text() == "kept\n"


@pytest.mark.fault
def test_a_build_that_never_finished_is_removed_and_a_damaged_marker_rebuilds(tmp_path: Path, wheels: Path) -> None:
    first = _ensure(tmp_path, _layers(wheels, "alpha"))
    crashed = tmp_path / "venvs" / "0123456789ab-1"
    (crashed / "bin").mkdir(parents=True)
    Path(first["venv"], penv.MARKER).write_text("{not json")
    rebuilt = _ensure(tmp_path, _layers(wheels, "alpha"))
    assert rebuilt["changed"] and "no voice-venv.json" in rebuilt["reason"]
    assert str(crashed) in rebuilt["removed"]
    assert not crashed.exists()


@pytest.mark.bad_input
def test_a_missing_python_is_a_clear_error(tmp_path: Path, wheels: Path) -> None:
    with pytest.raises(penv.EnvError) as error:
        penv.ensure(str(tmp_path / "venv"), str(tmp_path / "venvs"), str(tmp_path / "no-python"), False, _layers(wheels, "alpha"), [])
    assert "no-python could not run" in str(error.value)
    assert not (tmp_path / "venv").exists()


def test_the_inputs_id_follows_every_input(tmp_path: Path, wheels: Path) -> None:
    base = penv.inputs_id(["3.11", "x86_64"], True, _layers(wheels, "alpha"))
    assert base == penv.inputs_id(["3.11", "x86_64"], True, _layers(wheels, "alpha"))
    assert base != penv.inputs_id(["3.13", "x86_64"], True, _layers(wheels, "alpha"))
    assert base != penv.inputs_id(["3.11", "x86_64"], False, _layers(wheels, "alpha"))
    assert base != penv.inputs_id(["3.11", "x86_64"], True, _layers(wheels, "alpha", "beta"))
    changed_env = _layers(wheels, "alpha")
    changed_env[0]["env"] = {"PIP_INDEX_URL": "http://127.0.0.1:1/simple"}
    assert base != penv.inputs_id(["3.11", "x86_64"], True, changed_env)
    _wheel(wheels, "alpha", "1.0", "VALUE = 'other'\n")
    assert base != penv.inputs_id(["3.11", "x86_64"], True, _layers(wheels, "alpha"))


@pytest.mark.parametrize("requirement, expected", [
    ("deepspeech==0.7.4+compat1", [("deepspeech", "0.7.4+compat1")]),
    ("rhasspy_asr_deepspeech==0.4.1+voice1", [("rhasspy-asr-deepspeech", "0.4.1+voice1")]),
    ("setuptools>=40.8,<81", [("setuptools", None)]),
    ("voice-appliance", [("voice-appliance", None)]),
    ("paho.mqtt[extra]==1.5.0", [("paho-mqtt", "1.5.0")]),
    ("git+https://example.invalid/x.git", []),
    ("/opt/voice-appliance/wheels/x-1.0-py3-none-any.whl", []),
])
def test_pins_reads_names_and_exact_versions_and_leaves_urls_to_pip(requirement: str, expected: Any) -> None:
    assert penv.pins([requirement]) == expected


def test_missing_names_absent_and_replaced_distributions() -> None:
    layers = [{"requirements": ["a==1", "b==2", "c"]}]
    assert penv.missing({"a": "1", "b": "2", "c": "9"}, layers) == []
    assert penv.missing({"a": "1", "b": "3"}, layers) == ["b==2 (found 3)", "c"]
    assert penv.missing({"a": "1+compat1", "b": "2", "c": "1"}, layers) == [], "a local build meets a pin without a label"
    assert penv.missing({"a": "1", "b": "2+x", "c": "1"}, [{"requirements": ["b==2+voice1"]}]) == ["b==2+voice1 (found 2+x)"]


def test_the_receipt_is_written_once_the_inputs_virtualenv_is_live_and_never_after_a_failed_build(tmp_path: Path, wheels: Path) -> None:
    fact = tmp_path / "facts.d" / "deepspeech.fact"
    receipt = {"path": str(fact), "content": '{"flavour": "tflite"}\n'}
    predicted = _ensure(tmp_path, _layers(wheels, "alpha"), check=True, receipt=receipt)
    assert predicted["receipt_changed"] and predicted["changed"] and not fact.parent.exists(), "check mode writes nothing"
    assert "receipt" not in predicted, "the Pi does not hold it: nobody may take it as read"
    first = _ensure(tmp_path, _layers(wheels, "alpha"), receipt=receipt)
    assert first["built"] and first["receipt_changed"] and fact.read_text() == '{"flavour": "tflite"}\n'
    assert first["receipt"] == receipt, "the receipt the Pi holds now, for voice_verify"
    assert fact.stat().st_mode & 0o7777 == 0o644 and [p.name for p in fact.parent.iterdir()] == ["deepspeech.fact"]
    again = _ensure(tmp_path, _layers(wheels, "alpha"), receipt=receipt)
    assert not again["changed"] and not again["receipt_changed"] and again["receipt"] == receipt
    held = _ensure(tmp_path, _layers(wheels, "alpha"), check=True, receipt=receipt)
    assert not held["changed"] and held["receipt"] == receipt, "check mode: the Pi holds it already"
    assert "receipt" not in _ensure(tmp_path, _layers(wheels, "alpha"))
    with pytest.raises(penv.EnvError):
        _ensure(tmp_path, _layers(wheels, "alpha", "gamma"), receipt={"path": str(fact), "content": '{"flavour": "gamma"}\n'})
    assert fact.read_text() == '{"flavour": "tflite"}\n', "a failed build leaves the receipt naming the live virtualenv"


def test_a_drifted_receipt_is_repaired_without_a_build(tmp_path: Path, wheels: Path) -> None:
    fact = tmp_path / "deepspeech.fact"
    receipt = {"path": str(fact), "content": "{}\n"}
    _ensure(tmp_path, _layers(wheels, "alpha"), receipt=receipt)
    fact.chmod(0o600)
    repaired = _ensure(tmp_path, _layers(wheels, "alpha"), receipt=receipt)
    assert (repaired["built"], repaired["receipt_changed"], repaired["changed"]) == (False, True, True)
    assert fact.stat().st_mode & 0o7777 == 0o644
    fact.unlink()
    assert _ensure(tmp_path, _layers(wheels, "alpha"), receipt=receipt)["receipt_changed"] and fact.read_text() == "{}\n"


@pytest.mark.fault
def test_a_receipt_that_cannot_be_written_after_the_switch_says_which_virtualenv_is_live(tmp_path: Path, wheels: Path) -> None:
    """The switch is done when the receipt is written: the failure must not claim the virtualenv is unchanged."""
    (tmp_path / "facts.d").write_text("a file where the receipt's directory belongs")
    receipt = {"path": str(tmp_path / "facts.d" / "deepspeech.fact"), "content": "{}\n"}
    with pytest.raises(penv.ReceiptFailure) as failed:
        _ensure(tmp_path, _layers(wheels, "alpha"), receipt=receipt)
    live = os.path.realpath(str(tmp_path / "venv"))
    assert str(failed.value).startswith("{} is live at {} (switched to in this run), but its receipt could not be written: ".format(
        live, tmp_path / "venv")), str(failed.value)
    assert str(failed.value).endswith(". A re-run writes it.")
    with pytest.raises(penv.ReceiptFailure) as again:
        _ensure(tmp_path, _layers(wheels, "alpha"), receipt=receipt)
    assert "(switched to in this run)" not in str(again.value) and os.path.realpath(str(tmp_path / "venv")) == live


def test_the_wheels_are_put_in_place_first_and_the_virtualenv_waits_for_every_one(tmp_path: Path, wheels: Path) -> None:
    """One call puts the wheel directory and the wheels (given by their sums, as the action plugin sends them) in place
    and builds; a wheel the Pi lacks is named for sending and no virtualenv is built from the others."""
    import grp
    import pwd
    me, group = pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name
    pi_wheels = tmp_path / "pi" / "wheels"
    sources = {name: wheels / "{}-1.0-py3-none-any.whl".format(name) for name in ("alpha", "beta")}
    files = [{"sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "size": path.stat().st_size, "dest": str(pi_wheels / path.name),
              "owner": me, "group": group, "mode": "0644"} for path in sources.values()]
    params = {"directories": [{"path": str(tmp_path / "pi"), "mode": "0755"}, {"path": str(pi_wheels), "mode": "0755"}],
              "files": files, "staged": {}, "link": str(tmp_path / "venv"), "store": str(tmp_path / "venvs"), "python": PYTHON,
              "system_site_packages": False, "layers": _layers(pi_wheels, "alpha", "beta"), "proof": [["python", "-c", "import alpha, beta"]],
              "keep_previous": 1, "receipt": None}
    first = penv.run(params)
    assert first["work_pending"] and not first["built"] and sorted(first["transfer"]) == sorted(f["dest"] for f in files)
    assert pi_wheels.is_dir() and list(pi_wheels.iterdir()) == [] and not (tmp_path / "venv").exists()
    staged = {}
    for number, path in enumerate(sources.values()):
        copy = tmp_path / "source-{}".format(number)
        copy.write_bytes(path.read_bytes())
        staged[str(pi_wheels / path.name)] = str(copy)
    second = penv.run(dict(params, directories=[], staged=staged))
    assert second["built"] and second["changed"] and sorted(second["changes"]) == sorted(staged)
    assert os.path.islink(str(tmp_path / "venv")) and "work_pending" not in second
    again = penv.run(params, want_diff=True)
    assert (again["changed"], again["built"], again["changes"], again["transfer"], "diff" in again) == (False, False, {}, [], False)
    # Check mode decides from the wheels the Pi has, even while one is still to be sent.
    (pi_wheels / sources["beta"].name).unlink()
    predicted = penv.run(params, check=True)
    assert predicted["transfer"] == [str(pi_wheels / sources["beta"].name)] and predicted["changed"] and predicted["built"]


ENV_PLAY = """
- name: Build a virtualenv from wheels sent by the controller.
  hosts: all
  gather_facts: false
  tasks:
    - name: Copy the wheel and a CA file unless the Pi has them, build the virtualenv and switch to it.
      pivoice.voice_appliance.python_env:
        directories: [{path: "{{ pi }}", mode: "0755"}, {path: "{{ pi }}/wheels", mode: "0755"}]
        files:
          - {src: "{{ wheel }}", dest: "{{ pi }}/wheels/{{ wheel | basename }}", mode: "0644"}
          - {src: "{{ ca }}", dest: "{{ pi }}/wheels/pip-ca.crt", mode: "0644"}
        link: "{{ pi }}/venv"
        store: "{{ pi }}/venvs"
        python: "{{ py }}"
        layers:
          - {name: local, requirements: [alpha==1.0], find_links: ["{{ pi }}/wheels"], index: false, deps: false,
             env: {VOICE_TEST_CA: "{{ pi }}/wheels/pip-ca.crt"}}
        proof: [[python, -c, "import alpha"]]
"""


def test_a_sent_file_whose_path_is_a_secret_option_value_still_reaches_the_pi_before_the_build(tmp_path: Path, wheels: Path) -> None:
    """A layer's env is no_log, so Ansible masks its values in the module's result, a path too (pip's CA file, as
    rhasspy_asr gives it): the action plugin finds the files to send by their place, and the build sees every one."""
    import json
    import subprocess
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    (tmp_path / "play.yml").write_text(ENV_PLAY)
    (tmp_path / "ansible.cfg").write_text("[defaults]\n")
    pi = tmp_path / "pi"
    extra = {"ansible_python_interpreter": sys.executable, "pi": str(pi), "py": PYTHON, "ca": str(tmp_path / "ca.pem"),
             "wheel": str(wheels / "alpha-1.0-py3-none-any.whl")}
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local", "-e", json.dumps(extra),
                           str(tmp_path / "play.yml")],
                          env=dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_CONFIG=str(tmp_path / "ansible.cfg"),
                                   ANSIBLE_PIPELINING="1"),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    task = json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]
    assert task["built"] and task["transfer"] == [] and (pi / "wheels" / "pip-ca.crt").read_text() == "-----BEGIN CERTIFICATE-----\n"
    assert str(pi / "wheels" / "pip-ca.crt") in task["changes"] and os.path.islink(str(pi / "venv"))
