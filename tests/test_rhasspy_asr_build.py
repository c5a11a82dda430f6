"""rhasspy_asr's controller-side build (tasks/build.yml, through the entry point stage): once per set of inputs.

The wheels' directory is named by a hash of every input, and its last wheel being there means the build is
done (rhasspy_asr_last_wheel): nothing of the build is included then. The role runs on this controller with a
stand-in source directory (a build.py that writes the wheels' names and logs each call), sdists of its own
pinned by the table's overrides and a build virtualenv already in place, so nothing is downloaded.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

REPO = Path(__file__).resolve().parent.parent
LABEL = "testlabel"
SDISTS = {"rhasspy_nlu_sdist": ("0.4.0", "rhasspy-nlu-0.4.0.tar.gz"),
          "rhasspy_asr_deepspeech_sdist": ("0.4.1", "rhasspy-asr-deepspeech-0.4.1.tar.gz"),
          "rhasspy_asr_deepspeech_hermes_sdist": ("0.5.0", "rhasspy-asr-deepspeech-hermes-0.5.0.tar.gz")}
# In the role's order (vars/main.yml rhasspy_asr_sdists): the hermes wheel is the last one.
WHEELS = ["rhasspy_nlu-0.4.0+{}-py3-none-any.whl".format(LABEL),
          "rhasspy_asr_deepspeech-0.4.1+{}-py3-none-any.whl".format(LABEL),
          "rhasspy_asr_deepspeech_hermes-0.5.0+{}-py3-none-any.whl".format(LABEL)]

# Writes one empty wheel per sdist it is given, named as the real build.py names them, and logs the call.
BUILD_PY = '''LOCAL_LABEL = "{label}"
import os, sys
args = dict(a.split("=", 1) for a in sys.argv[1:])
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "calls.log"), "a") as log:
    log.write(args["--out"] + "\\n")
for sdist in sorted(os.listdir(args["--sdist-dir"])):
    name, version = sdist[:-len(".tar.gz")].rsplit("-", 1)
    open(os.path.join(args["--out"], "{{}}-{{}}+{{}}-py3-none-any.whl".format(name.replace("-", "_"), version, LOCAL_LABEL)), "w").close()
'''.format(label=LABEL)

# The build's tasks (tasks/build.yml) and what the cases call them.
BUILD_TASKS = {"rhasspy_asr : Create the wheel cache and the directory build.py reads the sdists from.": "Create",
               "rhasspy_asr : Link the cached sdists where build.py reads them (it checks their sha256 again).": "Link",
               "rhasspy_asr : Build the patched wheels once (python/rhasspy-asr/build.py, offline from the cached sdists).": "Build"}

PLAYBOOK = """
- name: Stage the Rhasspy ASR wheels on this controller.
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Fetch the sdists and build the wheels, once.
      ansible.builtin.include_role:
        name: rhasspy_asr
        tasks_from: stage
"""


@pytest.fixture()
def work(tmp_path: Path) -> Path:
    """A cache holding the sdists (their sums pinned by overrides), a stand-in source dir and a build virtualenv."""
    source = tmp_path / "source"
    source.mkdir()
    (source / "build.py").write_text(BUILD_PY)
    (source / "requirements.txt").write_text("rhasspy-asr-deepspeech-hermes\n")
    for requirement in ("rhasspy-nlu", "rhasspy-asr-deepspeech", "rhasspy-asr-deepspeech-hermes"):
        (source / "patches" / requirement).mkdir(parents=True)
        (source / "patches" / requirement / "0001-fix.patch").write_text("--- a\n+++ b\n")
    cache = tmp_path / "cache"
    overrides: Dict[str, Any] = {}
    for name, (version, filename) in SDISTS.items():
        sdist = cache / name / version / filename
        sdist.parent.mkdir(parents=True)
        sdist.write_bytes(filename.encode())
        overrides[name] = {version: {"any": {"sha256": hashlib.sha256(filename.encode()).hexdigest()}}}
    venv_python = cache / "rhasspy-asr-wheels" / "build-venv" / "bin" / "python"
    venv_python.parent.mkdir(parents=True)
    venv_python.symlink_to(sys.executable)
    (tmp_path / "vars.json").write_text(json.dumps({
        "artifact_stage_cache_dir": str(cache), "artifact_stage_catalog_overrides": overrides,
        "artifact_stage_local_dir": str(tmp_path / "no-local-dir"), "rhasspy_asr_source_dir": str(source)}))
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    (tmp_path / "ansible.cfg").write_text("[defaults]\n")  # no timing callbacks: only JSON on stdout
    return tmp_path


def _stage(work: Path, *options: str) -> Tuple[List[str], Dict[str, str]]:
    """Runs the stage entry point; the builds started so far (their --out) and each build task's status."""
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_CONFIG=str(work / "ansible.cfg"),
               ANSIBLE_ROLES_PATH=str(REPO / "roles"))
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local",
                           "-e", "ansible_python_interpreter=" + sys.executable, "-e", "@" + str(work / "vars.json"),
                           str(work / "play.yml")] + list(options),
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    statuses: Dict[str, str] = {}
    for task in json.loads(proc.stdout)["plays"][0]["tasks"]:
        name, result = task["task"]["name"], task["hosts"]["localhost"]
        if name in BUILD_TASKS:
            statuses[BUILD_TASKS[name]] = "skipped" if result.get("skipped") else "changed" if result.get("changed") else "ok"
    log = work / "source" / "calls.log"
    return (log.read_text().splitlines() if log.exists() else []), statuses


def _wheels(work: Path) -> Path:
    (built,) = [d for d in (work / "cache" / "rhasspy-asr-wheels").iterdir() if d.name != "build-venv"]
    return built


def test_the_wheels_are_built_once_per_set_of_inputs(work: Path) -> None:
    calls, statuses = _stage(work)
    assert len(calls) == 1 and statuses == {"Create": "changed", "Link": "changed", "Build": "changed"}
    built = _wheels(work)
    assert calls == [str(built)] and sorted(p.name for p in built.glob("*.whl")) == sorted(WHEELS)
    calls, statuses = _stage(work)
    assert len(calls) == 1, "a done build is not run again"
    assert statuses == {}  # the last wheel is there: nothing of the build is included


@pytest.mark.fault
def test_a_build_without_its_last_wheel_is_done_again(work: Path) -> None:
    _stage(work)
    (_wheels(work) / WHEELS[-1]).unlink()  # interrupted before the last wheel was written
    calls, statuses = _stage(work)
    assert len(calls) == 2 and statuses == {"Create": "ok", "Link": "ok", "Build": "changed"}
    assert (_wheels(work) / WHEELS[-1]).is_file()


def test_check_mode_reports_the_build_and_builds_nothing(work: Path) -> None:
    calls, statuses = _stage(work, "--check")
    assert calls == [] and statuses == {"Create": "changed", "Link": "changed", "Build": "changed"}
    assert sorted(p.name for p in (work / "cache" / "rhasspy-asr-wheels").iterdir()) == ["build-venv"]
