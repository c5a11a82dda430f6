"""current_link, deepspeech_tools' switch and pruning in one call: the link, what is kept, what is removed.

Each case runs on a real tools directory (versions as directories dated by their install, tarballs, hidden
entries, a relative `current` link); refusals change nothing; the module also runs through ansible-playbook,
converged re-run and check mode included.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

import pytest

REPO = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("current_link_module", str(REPO / "plugins" / "modules" / "current_link.py"))
assert _spec is not None and _spec.loader is not None
current_link: Any = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(current_link)


def _tools(tmp_path: Path, *versions: str, current: str = "") -> Path:
    """A tools directory with the versions given, newest install first (each 100 s older), and their tarballs."""
    tools = tmp_path / "tools"
    now = time.time()
    for version, installed in zip(versions, (now - 100 * n for n in range(1, len(versions) + 1))):
        smoke = tools / version / "bin" / "smoke-test"
        smoke.parent.mkdir(parents=True)
        smoke.write_text("#!/bin/sh\n")
        (tools / "deepspeech-tools-{}.tar.gz".format(version)).write_bytes(b"tar")
        os.utime(str(tools / version), (installed, installed))
    tools.mkdir(exist_ok=True)
    if current:
        (tools / "current").symlink_to(current)
    return tools


def _run(tools: Path, version: str, **kw: Any) -> Dict[str, Any]:
    return current_link.converge(str(tools), version, **kw)


def _left(tools: Path) -> List[str]:
    return sorted(os.listdir(str(tools)))


def test_switch_keeps_the_newest_older_version_and_only_the_current_tarball(tmp_path: Path) -> None:
    tools = _tools(tmp_path, "a-3", "a-2", "a-1", "a-0", current="a-2")
    (tools / ".hidden-work").mkdir()
    result = _run(tools, "a-3", keep=1, keep_files=["deepspeech-tools-a-3.tar.gz"])
    assert (result["before"], result["current"], result["changed"]) == ("a-2", "a-3", True)
    assert result["removed"] == ["a-0", "a-1", "deepspeech-tools-a-0.tar.gz", "deepspeech-tools-a-1.tar.gz",
                                 "deepspeech-tools-a-2.tar.gz"]
    assert _left(tools) == [".hidden-work", "a-2", "a-3", "current", "deepspeech-tools-a-3.tar.gz"]
    assert os.readlink(str(tools / "current")) == "a-3" and (tools / "current" / "bin" / "smoke-test").is_file()


def test_a_converged_directory_is_left_alone(tmp_path: Path) -> None:
    tools = _tools(tmp_path, "a-2", "a-1", current="a-2")
    (tools / "deepspeech-tools-a-1.tar.gz").unlink()
    inode = os.lstat(str(tools / "current")).st_ino
    result = _run(tools, "a-2", keep=1, keep_files=["deepspeech-tools-a-2.tar.gz"])
    assert (result["changed"], result["removed"]) == (False, [])
    assert os.lstat(str(tools / "current")).st_ino == inode


def test_keep_zero_keeps_only_the_current_version_and_a_missing_link_is_made(tmp_path: Path) -> None:
    tools = _tools(tmp_path, "a-2", "a-1")
    result = _run(tools, "a-1", keep=0, keep_files=["deepspeech-tools-a-1.tar.gz"])
    assert (result["before"], result["removed"]) == ("", ["a-2", "deepspeech-tools-a-2.tar.gz"])
    assert _left(tools) == ["a-1", "current", "deepspeech-tools-a-1.tar.gz"]


@pytest.mark.bad_input
def test_the_link_itself_is_refused_as_a_version_and_nothing_changes(tmp_path: Path) -> None:
    # Which names are versions is module_utils/durable.py's version_dir (tests/test_durable.py): here, that the
    # module asks it, with its own link.
    tools = _tools(tmp_path, "a-2", "a-1", current="a-1")
    before = _left(tools)
    with pytest.raises(current_link.VersionError, match="version must be the name of a version directory in .*, not the link "
                                                        "current\\); got 'current'"):
        _run(tools, "current", keep=0)
    assert _left(tools) == before and os.readlink(str(tools / "current")) == "a-1"


def test_check_mode_predicts_a_version_an_earlier_task_would_unpack(tmp_path: Path) -> None:
    tools = _tools(tmp_path, "a-1", current="a-1")
    result = current_link.converge(str(tools), "a-2", keep=1, keep_files=["deepspeech-tools-a-2.tar.gz"], check=True)
    assert (result["changed"], result["removed"]) == (True, ["deepspeech-tools-a-1.tar.gz"])
    assert os.readlink(str(tools / "current")) == "a-1" and len(_left(tools)) == 3, "check mode changes nothing"
    fresh = current_link.converge(str(tmp_path / "none"), "a-2", check=True)
    assert (fresh["before"], fresh["changed"], fresh["removed"]) == ("", True, [])


PLAYBOOK = """
- name: Switch the tools.
  hosts: all
  gather_facts: false
  tasks:
    - name: Switch current and prune.
      pivoice.voice_appliance.current_link:
        path: "{{ tools }}"
        version: "{{ version }}"
        keep: 1
        keep_files: ["deepspeech-tools-{{ version }}.tar.gz"]
      register: switched
    - name: Show it.
      ansible.builtin.debug:
        var: switched
"""


def _playbook(tmp_path: Path, tools: Path, version: str, check: bool = False) -> Dict[str, Any]:
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    (tmp_path / "ansible.cfg").write_text("[defaults]\n")
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_CONFIG=str(tmp_path / "ansible.cfg"))
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local",
                           "-e", "ansible_python_interpreter=" + sys.executable, "-e", "tools=" + str(tools),
                           "-e", "version=" + version, str(tmp_path / "play.yml")] + (["--check"] if check else []),
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    return report["plays"][0]["tasks"][0]["hosts"]["localhost"]


def test_the_module_switches_through_ansible_and_a_rerun_and_check_mode_change_nothing(tmp_path: Path) -> None:
    tools = _tools(tmp_path, "a-3", "a-2", "a-1", current="a-2")
    predicted = _playbook(tmp_path, tools, "a-3", check=True)
    assert predicted["changed"] and os.readlink(str(tools / "current")) == "a-2" and len(_left(tools)) == 7
    first = _playbook(tmp_path, tools, "a-3")
    assert first["changed"] and first["removed"] == ["a-1", "deepspeech-tools-a-1.tar.gz", "deepspeech-tools-a-2.tar.gz"]
    assert _left(tools) == ["a-2", "a-3", "current", "deepspeech-tools-a-3.tar.gz"]
    assert not _playbook(tmp_path, tools, "a-3")["changed"]
    assert not _playbook(tmp_path, tools, "a-3", check=True)["changed"]
