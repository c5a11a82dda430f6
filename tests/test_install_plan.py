"""What a Pi gets, decided in Python (plugins/filter/install_plan.py): its DeepSpeech wheel, the fleet's compat
builds, its model files and the pins of a requirements file for its Python. Checked against the real artifact
table and requirements files, for every supported architecture and Python."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict

import pytest
import yaml
from ansible.errors import AnsibleFilterError

REPO = Path(__file__).resolve().parent.parent
_SPEC = importlib.util.spec_from_file_location("install_plan", str(REPO / "plugins" / "filter" / "install_plan.py"))
assert _SPEC is not None and _SPEC.loader is not None
plan: Any = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(plan)

CATALOG: Dict[str, Any] = yaml.safe_load((REPO / "artifacts.yml").read_text(encoding="utf-8"))["artifacts"]
PLATFORMS = yaml.safe_load((REPO / "roles" / "deepspeech_runtime" / "vars" / "main.yml").read_text(encoding="utf-8"))[
    "deepspeech_runtime_wheel_platforms"]
ASR_REQUIREMENTS = (REPO / "python" / "rhasspy-asr" / "requirements.txt").read_text(encoding="utf-8")
RETRAIN_REQUIREMENTS = (REPO / "python" / "voice-appliance" / "requirements-retrain.txt").read_text(encoding="utf-8")
SUPPORTED = ["3.9", "3.11", "3.13"]  # bullseye, bookworm, trixie


def choice(arch: str, python: Any = "3.11", **kw: Any) -> Dict[str, Any]:
    return plan.deepspeech_runtime_choice(arch, python, "0.7.4", wheel_platforms=PLATFORMS, compat_subdir="compat-wheels/abc", **kw)


@pytest.mark.parametrize("arch,python", [(a, p) for a in ("amd64", "armhf", "arm64") for p in SUPPORTED])
def test_every_supported_pi_gets_a_compat_wheel_whose_library_is_in_the_table(arch: str, python: str) -> None:
    got = choice(arch, python)
    assert got["kind"] == "compat" and got["arch"] == arch and got["python"] == "cp" + python.replace(".", "")
    assert got["flavour"] == "tflite" and got["label"] == "compat.tflite." + arch
    assert got["filename"] == "deepspeech-0.7.4+compat.tflite.{}-py3-none-{}.whl".format(arch, PLATFORMS[arch])
    assert got["requirement"] == "deepspeech==0.7.4+compat.tflite." + arch and got["cache_subdir"] == "compat-wheels/abc/"
    artifact = got["artifact"]
    entry = CATALOG[artifact["name"]][artifact["version"]][artifact["variant"]]
    assert len(entry["sha256"]) == 64
    if arch == "arm64":  # Mozilla's linux-arm64 library from the npm package
        assert artifact["member"] == "linux-arm64" and artifact["member"] in entry["members"]


def test_the_python_comes_from_the_facts_as_ansible_gives_them() -> None:
    assert choice("amd64", {"major": 3, "minor": 13, "micro": 5})["python"] == "cp313"
    assert choice("amd64", "3.9.2")["python"] == "cp39"


def test_x86_may_take_the_full_tensorflow_build_and_arm_never_does() -> None:
    amd64 = choice("amd64", x86_flavour="tensorflow")
    assert amd64["flavour"] == "tensorflow" and amd64["artifact"]["name"] == "deepspeech_wheel"
    assert amd64["artifact"]["variant"] == "amd64-cp38" and amd64["label"] == "compat.tensorflow.amd64"
    assert choice("armhf", x86_flavour="tensorflow")["flavour"] == "tflite"
    assert choice("armhf")["artifact"] == {"name": "deepspeech_wheel", "version": "0.7.4", "variant": "armhf-cp37"}
    assert choice("amd64")["artifact"]["name"] == "deepspeech_tflite_wheel"


def test_a_user_supplied_arm64_archive_overrides_the_npm_library() -> None:
    got = choice("arm64", arm64_native_client_url="https://example.invalid/native_client.tar.xz")
    assert got["artifact"] == {"name": "deepspeech_native_client", "version": "0.7.4", "variant": "arm64"}


@pytest.mark.bad_input
@pytest.mark.parametrize("arch,python,message", [
    ("i386", "3.11", "'i386' has no DeepSpeech 0.7.4 library; supported: amd64, armhf, arm64"),
    ("amd64", "three", "a Python version like '3.11' is needed; got 'three'"),
])
def test_an_unknown_architecture_or_python_is_named(arch: str, python: str, message: str) -> None:
    with pytest.raises(AnsibleFilterError, match=message.replace("(", r"\(").replace(")", r"\)")):
        choice(arch, python)


def test_the_fleets_compat_builds_are_one_per_wheel_with_their_library() -> None:
    choices = [choice("amd64"), choice("amd64", "3.13"), choice("armhf"), choice("arm64"), choice("arm64", "3.9")]
    builds = plan.deepspeech_compat_builds(choices, CATALOG)
    assert [b["arch"] for b in builds] == ["amd64", "armhf", "arm64"]  # one per file name, in first-seen order
    by_arch = {b["arch"]: b for b in builds}
    npm = CATALOG["deepspeech_npm"]["0.7.4"]["any"]
    assert by_arch["arm64"]["artifact_file"] == "deepspeech_npm/0.7.4/" + npm["filename"]
    assert by_arch["arm64"]["member"] == npm["members"]["linux-arm64"]["path"]
    assert by_arch["arm64"]["member_sha256"] == npm["members"]["linux-arm64"]["sha256"]
    assert by_arch["arm64"]["library_dir"] == "lib-deepspeech_npm-linux-arm64"
    wheel = CATALOG["deepspeech_wheel"]["0.7.4"]["armhf-cp37"]
    assert by_arch["armhf"] == {"filename": choices[2]["filename"], "arch": "armhf", "label": "compat.tflite.armhf",
                                "artifact_file": "deepspeech_wheel/0.7.4/" + wheel["filename"], "sha256": wheel["sha256"],
                                "member": "", "member_sha256": "", "library_dir": "lib-deepspeech_wheel-armhf"}
    assert plan.deepspeech_compat_builds([], CATALOG) == []
    # Given the cache directory, each build names its wheel's path there (what staging looks for and the build makes).
    cached = plan.deepspeech_compat_builds(choices, CATALOG, "/cache/compat-wheels/abc/")
    assert [b["wheel"] for b in cached] == ["/cache/compat-wheels/abc/" + b["filename"] for b in builds]
    assert [{k: v for k, v in b.items() if k != "wheel"} for b in cached] == builds


@pytest.mark.bad_input
def test_a_library_missing_from_the_table_is_named() -> None:
    with pytest.raises(AnsibleFilterError, match="no deepspeech_native_client 0.7.4 arm64"):
        plan.deepspeech_compat_builds([choice("arm64", arm64_native_client_url="https://example.invalid/x.tar.xz")], CATALOG)


def test_the_model_files_follow_the_runtime_flavour() -> None:
    table = {"m": {"1": {"tflite": {}, "pb": {}, "alphabet": {}}, "2": {"tflite": {}, "pb": {}, "alphabet": {}, "scorer": {}}}}
    assert [i["variant"] for i in plan.deepspeech_model_items(table, "m", "1", "tflite")] == ["tflite", "alphabet"]
    assert plan.deepspeech_model_items(table, "m", 2, "tensorflow") == [
        {"name": "m", "version": "2", "variant": v} for v in ("pb", "alphabet", "scorer")]
    german = plan.deepspeech_model_items(CATALOG, "german_model", "0.7.4", "tflite")
    assert [i["variant"] for i in german] == ["tflite", "alphabet", "scorer"]


@pytest.mark.bad_input
def test_a_model_missing_from_the_table_is_named() -> None:
    with pytest.raises(AnsibleFilterError, match="the model m 3 is not in the artifact table"):
        plan.deepspeech_model_items({"m": {"1": {}}}, "m", "3", "tflite")


@pytest.mark.parametrize("python", SUPPORTED + ["3.7"])
def test_the_pins_follow_the_pis_python(python: str) -> None:
    pins = plan.pip_requirements(ASR_REQUIREMENTS, python)
    assert "rhasspy-asr-deepspeech-hermes==0.5.0+voice1" in pins and "paho-mqtt==1.5.0" in pins
    assert [p for p in pins if p.startswith("networkx==")] == ["networkx==2.6.3" if python == "3.7" else "networkx==2.8.8"]
    assert ("audioop-lts==0.2.2" in pins) == (python == "3.13")
    assert all(";" not in p and " " not in p and "#" not in p for p in pins)
    retrain = plan.pip_requirements(RETRAIN_REQUIREMENTS, {"major": 3, "minor": int(python.split(".")[1])})
    assert [p for p in retrain if p.startswith("networkx==")] == [p for p in pins if p.startswith("networkx==")]


def test_every_marker_operator() -> None:
    text = "\n".join('p{}==1; python_version {} "3.11"'.format(i, op) for i, op in enumerate([">=", "<=", "==", "!=", "<", ">"]))
    assert plan.pip_requirements(text, "3.11") == ["p0==1", "p1==1", "p2==1"]
    assert plan.pip_requirements(text, "3.9") == ["p1==1", "p3==1", "p4==1"]
    assert plan.pip_requirements("a == 1 # pinned\n\n# only a comment\nb==2;python_version>='3.10'", "3.10") == ["a==1", "b==2"]


@pytest.mark.bad_input
@pytest.mark.parametrize("marker", ['platform_machine == "armv7l"', 'python_version >= "3.8" and sys_platform == "linux"'])
def test_a_marker_the_controller_cannot_decide_for_the_pi_is_refused_with_its_line(marker: str) -> None:
    with pytest.raises(AnsibleFilterError, match="req.txt:2: the marker .* cannot be decided for the Pi"):
        plan.pip_requirements("a==1\nb==2; " + marker, "3.11", "req.txt")


def test_the_role_adds_a_configured_arm64_archive_to_the_table_its_dependency_loaded(tmp_path: Path) -> None:
    """deepspeech_runtime's choice through Ansible: artifact_stage (a dependency) loads the table once, the role adds the
    configured arm64 archive to it, and the arm64 Pi's choice names that archive; without one the table is as loaded."""
    url = "https://example.invalid/native_client.arm64.cpu.linux.tar.xz"
    (tmp_path / "play.yml").write_text(yaml.safe_dump([{
        "hosts": "localhost", "gather_facts": False,
        "vars": {"deepspeech_deps_debian_arch": "arm64", "ansible_facts": {"python": {"version": {"major": 3, "minor": 13, "micro": 5}}}},
        "tasks": [{"ansible.builtin.include_role": {"name": "deepspeech_runtime", "tasks_from": "choose"}},
                  {"ansible.builtin.debug": {"msg": "{{ {'entry': artifact_stage_catalog.deepspeech_native_client['0.7.4'].arm64 | default(None),"
                                                    " 'artifact': deepspeech_runtime_choice.artifact} | to_json }}"}}]}]))
    (tmp_path / "ansible.cfg").write_text("[defaults]\n")

    def shown(**variables: str) -> Dict[str, Any]:
        env = dict(os.environ, ANSIBLE_ROLES_PATH=str(REPO / "roles"), ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
                   ANSIBLE_CONFIG=str(tmp_path / "ansible.cfg"))
        proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local",
                               "-e", "ansible_python_interpreter=" + sys.executable, "-e", json.dumps(variables),
                               str(tmp_path / "play.yml")], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True, timeout=300, check=False)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        return json.loads(json.loads(proc.stdout)["plays"][0]["tasks"][-1]["hosts"]["localhost"]["msg"])

    configured = shown(deepspeech_runtime_arm64_native_client_url=url, deepspeech_runtime_arm64_native_client_sha256="a" * 64)
    assert configured["entry"] == {"filename": "native_client.arm64.cpu.linux.tar.xz", "url": url, "sha256": "a" * 64}
    assert configured["artifact"] == {"name": "deepspeech_native_client", "version": "0.7.4", "variant": "arm64"}
    default = shown()
    assert default["entry"] is None and default["artifact"]["name"] != "deepspeech_native_client", default
