"""current_link, deepspeech_tools' proof, switch and pruning in one call: the proof, the link, what is kept, what is removed.

Each case runs on a real tools directory (versions as directories dated by their install, tarballs, hidden
entries, a relative `current` link) and real proof commands (each version's bin/smoke-test is a shell script);
refusals and failed proofs change nothing; the module also runs through ansible-playbook, converged re-run, a
failed proof and check mode included.
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


SMOKE_OK = 'echo "kenlm ok: 1234 byte LM"\n'


def _smoke(tools: Path, version: str, body: str) -> None:
    """The version's bin/smoke-test: a shell script with ``body``, its directory's time kept (pruning orders by it)."""
    smoke = tools / version / "bin" / "smoke-test"
    stamp = os.stat(str(tools / version)).st_mtime
    smoke.write_text("#!/bin/sh\nset -eu\n" + body)
    smoke.chmod(0o755)
    os.utime(str(tools / version), (stamp, stamp))


def _tools(tmp_path: Path, *versions: str, current: str = "") -> Path:
    """A tools directory with the versions given, newest install first (each 100 s older), and their tarballs;
    each version's bin/smoke-test passes."""
    tools = tmp_path / "tools"
    now = time.time()
    for version, installed in zip(versions, (now - 100 * n for n in range(1, len(versions) + 1))):
        (tools / version / "bin").mkdir(parents=True)
        (tools / "deepspeech-tools-{}.tar.gz".format(version)).write_bytes(b"tar")
        _smoke(tools, version, SMOKE_OK)
        os.utime(str(tools / version), (installed, installed))
    tools.mkdir(exist_ok=True)
    if current:
        (tools / "current").symlink_to(current)
    return tools


def _run(tools: Path, version: str, **kw: Any) -> Dict[str, Any]:
    return current_link.converge(str(tools), version, **kw)


def _left(tools: Path) -> List[str]:
    return sorted(os.listdir(str(tools)))


def _state(tools: Path) -> Dict[str, Any]:
    """Everything a failed call must leave as it was: the entries with their inodes and times, and the link."""
    return {"entries": {entry.name: (entry.inode(), entry.stat(follow_symlinks=False).st_mtime_ns)
                        for entry in os.scandir(str(tools))},
            "current": os.readlink(str(tools / "current")) if (tools / "current").is_symlink() else None}


SMOKE = ["bin/smoke-test"]


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


def test_the_proof_runs_in_the_new_version_before_the_switch(tmp_path: Path) -> None:
    tools = _tools(tmp_path, "a-3", "a-2", "a-1", current="a-2")
    seen = tmp_path / "seen"
    _smoke(tools, "a-3", 'printf "%s %s\\n" "$(pwd)" "$(readlink ../current)" >{}\n'.format(seen) + SMOKE_OK)
    result = _run(tools, "a-3", keep=1, keep_files=["deepspeech-tools-a-3.tar.gz"], proof=[SMOKE])
    assert seen.read_text() == "{} a-2\n".format(tools / "a-3"), "run in the version's directory, current not yet moved"
    assert [(entry["argv"], entry["rc"], entry["output"]) for entry in result["proof"]] == [
        (SMOKE, 0, "kenlm ok: 1234 byte LM")]
    assert result["proof"][0]["seconds"] >= 0 and result["proof_skipped"] == ""
    assert (result["changed"], result["removed"]) == (True, ["a-1", "deepspeech-tools-a-1.tar.gz",
                                                             "deepspeech-tools-a-2.tar.gz"])
    assert os.readlink(str(tools / "current")) == "a-3"


def test_every_proof_command_runs_in_turn_and_an_absolute_program_is_run_as_it_is(tmp_path: Path) -> None:
    tools = _tools(tmp_path, "a-1")
    result = _run(tools, "a-1", keep=0, proof=[SMOKE, [sys.executable, "-c", "import os; print(os.getcwd())"]])
    assert [(entry["argv"][0], entry["rc"], entry["output"]) for entry in result["proof"]] == [
        ("bin/smoke-test", 0, "kenlm ok: 1234 byte LM"), (sys.executable, 0, str(tools / "a-1"))]
    assert os.readlink(str(tools / "current")) == "a-1"


@pytest.mark.fault
def test_a_failing_proof_fails_names_the_command_and_leaves_link_versions_and_tarballs(tmp_path: Path) -> None:
    tools = _tools(tmp_path, "a-3", "a-2", "a-1", "a-0", current="a-2")
    _smoke(tools, "a-3", 'echo "lmplz: Illegal instruction" >&2\nexit 3\n')
    before = _state(tools)
    with pytest.raises(current_link.ProofError) as failed:
        _run(tools, "a-3", keep=0, keep_files=["deepspeech-tools-a-3.tar.gz"],
             proof=[[sys.executable, "-c", "print('first passed')"], SMOKE])
    message = str(failed.value)
    assert message.startswith("the proof {} of a-3 failed (exit code 3); nothing was changed: current still points at "
                              "a-2, no version or archive was removed.".format(tools / "a-3" / "bin" / "smoke-test"))
    assert message.endswith("Its output ends: lmplz: Illegal instruction"), message
    assert [(entry["argv"], entry["rc"]) for entry in failed.value.results] == [
        ([sys.executable, "-c", "print('first passed')"], 0), (SMOKE, 3)]
    assert _state(tools) == before, "no link moved, nothing pruned"


@pytest.mark.fault
def test_a_proof_that_cannot_start_fails_with_127(tmp_path: Path) -> None:
    tools = _tools(tmp_path, "a-2", "a-1", current="a-1")
    (tools / "a-2" / "bin" / "smoke-test").chmod(0o644)
    before = _state(tools)
    for proof, why in ((["bin/no-such-test"], "No such file or directory"), (SMOKE, "Permission denied")):
        with pytest.raises(current_link.ProofError, match=r"the proof .*/a-2/{} of a-2 could not start \(exit code 127\); "
                                                          r"nothing was changed: .* Its output ends: cannot run .*: {}"
                                                          .format(proof[0], why)):
            _run(tools, "a-2", keep=0, proof=[proof])
    assert _state(tools) == before


@pytest.mark.fault
def test_a_proof_that_outlives_its_timeout_is_killed_with_what_it_started_and_fails(tmp_path: Path) -> None:
    tools = _tools(tmp_path, "a-2", "a-1", current="a-1")
    pid_file = tmp_path / "child.pid"
    _smoke(tools, "a-2", 'echo "lmplz started"\nsleep 60 &\necho $! >{}\nwait\n'.format(pid_file))
    before = _state(tools)
    started = time.monotonic()
    with pytest.raises(current_link.ProofError, match=r"of a-2 was killed after its timeout of 1 s \(exit code -9\); "
                                                      r"nothing was changed: current still points at a-1.*lmplz started"):
        _run(tools, "a-2", keep=0, proof=[SMOKE], proof_timeout=1)
    assert time.monotonic() - started < 15
    assert _state(tools) == before
    child = Path("/proc/{}/stat".format(pid_file.read_text().strip()))
    for _ in range(50):  # the orphaned sleep is killed too (gone, or a zombie its new parent has not reaped yet)
        if not child.exists() or child.read_text().split(") ", 1)[1].startswith("Z"):
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the proof's child outlived the kill: " + child.read_text())


def test_the_proof_runs_when_current_already_points_at_the_version(tmp_path: Path) -> None:
    """On a converged Pi the proof is the check that the installed tools still run: it runs, and reports no change."""
    tools = _tools(tmp_path, "a-2", current="a-2")
    runs = tmp_path / "runs"
    _smoke(tools, "a-2", "echo ran >>{}\n".format(runs) + SMOKE_OK)
    for _ in range(2):
        result = _run(tools, "a-2", keep=1, keep_files=["deepspeech-tools-a-2.tar.gz"], proof=[SMOKE])
        assert (result["changed"], result["removed"], result["proof"][0]["rc"]) == (False, [], 0)
    assert runs.read_text() == "ran\nran\n"
    _smoke(tools, "a-2", "echo 'build_binary: Segmentation fault' >&2\nexit 139\n")  # the installed tools broke
    before = _state(tools)
    with pytest.raises(current_link.ProofError, match=r"of a-2 failed \(exit code 139\); nothing was changed: current "
                                                      r"still points at a-2.*Segmentation fault"):
        _run(tools, "a-2", keep=1, keep_files=["deepspeech-tools-a-2.tar.gz"], proof=[SMOKE])
    assert _state(tools) == before


def test_check_mode_proves_a_version_that_is_there_and_skips_the_proof_of_one_not_unpacked_yet(tmp_path: Path) -> None:
    tools = _tools(tmp_path, "a-2", "a-1", current="a-1")
    runs = tmp_path / "runs"
    _smoke(tools, "a-2", "echo ran >>{}\n".format(runs) + SMOKE_OK)
    before = _state(tools)
    there = _run(tools, "a-2", keep=0, keep_files=["deepspeech-tools-a-2.tar.gz"], proof=[SMOKE], check=True)
    assert (there["changed"], there["proof"][0]["rc"], there["proof_skipped"]) == (True, 0, "")
    assert runs.read_text() == "ran\n" and _state(tools) == before
    _smoke(tools, "a-2", "exit 1\n")
    with pytest.raises(current_link.ProofError, match="of a-2 failed \\(exit code 1\\)"):
        _run(tools, "a-2", keep=0, proof=[SMOKE], check=True)
    missing = _run(tools, "a-3", keep=1, keep_files=["deepspeech-tools-a-3.tar.gz"], proof=[SMOKE], check=True)
    assert (missing["changed"], missing["current"], missing["proof"]) == (True, "a-3", [])
    assert missing["proof_skipped"] == "check mode: {} does not exist yet (an earlier task would make it)".format(
        tools / "a-3")
    assert missing["removed"] == ["a-1", "deepspeech-tools-a-1.tar.gz", "deepspeech-tools-a-2.tar.gz"]
    assert _state(tools) == before


@pytest.mark.bad_input
@pytest.mark.parametrize("proof, timeout, message", [
    ([[]], 300, r"proof: every command must be a non-empty list of strings \(an argv, no shell\), such as "
                r"\[bin/smoke-test\]; got \[\]"),
    (["bin/smoke-test"], 300, r"proof: every command must be a non-empty list .*; got 'bin/smoke-test'"),
    ([["bin/smoke-test", {"a": 1}]], 300, r"proof: every command must be a non-empty list .*; got \['bin/smoke-test', \{"),
    ([["../a-1/bin/smoke-test"]], 300, r"proof: the relative program '../a-1/bin/smoke-test' must name a file inside the "
                                       r"version's directory .*/a-2 \(give a program elsewhere by its absolute path\)"),
    ([SMOKE], 0, r"proof_timeout must be more than 0 seconds; got 0"),
])
def test_a_malformed_proof_is_refused_before_anything_runs_or_changes(tmp_path: Path, proof: Any, timeout: float,
                                                                      message: str) -> None:
    tools = _tools(tmp_path, "a-2", "a-1", current="a-1")
    runs = tmp_path / "runs"
    _smoke(tools, "a-2", "echo ran >>{}\n".format(runs))
    _smoke(tools, "a-1", "echo ran >>{}\n".format(runs))
    before = _state(tools)
    for check in (False, True):
        with pytest.raises(current_link.CurrentLinkError, match=message):
            _run(tools, "a-2", keep=0, proof=proof, proof_timeout=timeout, check=check)
    assert not runs.exists() and _state(tools) == before


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
        proof: [[bin/smoke-test]]
      register: switched
    - name: Show it.
      ansible.builtin.debug:
        var: switched
"""


def _playbook(tmp_path: Path, tools: Path, version: str, check: bool = False, fails: bool = False) -> Dict[str, Any]:
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    (tmp_path / "ansible.cfg").write_text("[defaults]\n")
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_CONFIG=str(tmp_path / "ansible.cfg"))
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local",
                           "-e", "ansible_python_interpreter=" + sys.executable, "-e", "tools=" + str(tools),
                           "-e", "version=" + version, str(tmp_path / "play.yml")] + (["--check"] if check else []),
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=120)
    assert (proc.returncode != 0) == fails, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    return report["plays"][0]["tasks"][0]["hosts"]["localhost"]


def test_the_module_switches_through_ansible_and_a_rerun_and_check_mode_change_nothing(tmp_path: Path) -> None:
    tools = _tools(tmp_path, "a-3", "a-2", "a-1", current="a-2")
    predicted = _playbook(tmp_path, tools, "a-3", check=True)
    assert predicted["changed"] and os.readlink(str(tools / "current")) == "a-2" and len(_left(tools)) == 7
    assert [entry["rc"] for entry in predicted["proof"]] == [0], "the unpacked version is proved in check mode too"
    first = _playbook(tmp_path, tools, "a-3")
    assert first["changed"] and first["removed"] == ["a-1", "deepspeech-tools-a-1.tar.gz", "deepspeech-tools-a-2.tar.gz"]
    assert [(entry["argv"], entry["rc"], entry["output"]) for entry in first["proof"]] == [
        (SMOKE, 0, "kenlm ok: 1234 byte LM")]
    assert _left(tools) == ["a-2", "a-3", "current", "deepspeech-tools-a-3.tar.gz"]
    again = _playbook(tmp_path, tools, "a-3")
    assert not again["changed"] and again["proof"][0]["rc"] == 0
    assert not _playbook(tmp_path, tools, "a-3", check=True)["changed"]
    dry = _playbook(tmp_path, tools, "a-4", check=True)
    assert dry["changed"] and dry["proof"] == [] and "a-4 does not exist yet" in dry["proof_skipped"]


@pytest.mark.fault
def test_a_failing_proof_fails_the_task_with_the_command_its_exit_code_and_output(tmp_path: Path) -> None:
    tools = _tools(tmp_path, "a-3", "a-2", current="a-2")
    _smoke(tools, "a-3", "echo 'lmplz: cannot allocate memory' >&2\nexit 2\n")
    before = _state(tools)
    failed = _playbook(tmp_path, tools, "a-3", fails=True)
    assert failed["failed"] and failed["msg"] == (
        "the proof {} of a-3 failed (exit code 2); nothing was changed: current still points at a-2, no version or "
        "archive was removed. Its output ends: lmplz: cannot allocate memory".format(tools / "a-3" / "bin" / "smoke-test"))
    assert [(entry["argv"], entry["rc"]) for entry in failed["proof"]] == [(SMOKE, 2)]
    assert _state(tools) == before


def _archive(tmp_path: Path, name: str = "deepspeech-tools-a-5.tar.gz", extra: Any = None) -> Path:
    """A tools tarball as the build writes it: ./MANIFEST.json (the marker), bin/smoke-test, a wheel; ``extra`` adds an entry."""
    import io
    import tarfile
    path = tmp_path / "controller" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(str(path), "w:gz") as tar:
        def add(member: str, data: bytes, mode: int) -> None:
            info = tarfile.TarInfo(member)
            info.size, info.mode, info.mtime = len(data), mode, 0
            tar.addfile(info, io.BytesIO(data))
        for directory in ("./", "./bin/", "./wheels/"):
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        add("./MANIFEST.json", b'{"kenlm": "test"}\n', 0o644)
        add("./bin/smoke-test", ("#!/bin/sh\n" + SMOKE_OK).encode(), 0o4777)
        add("./wheels/x-1.0-py3-none-any.whl", b"wheel", 0o666)
        if extra is not None:
            tar.addfile(*extra)
    return path


def test_unpack_takes_files_and_directories_with_safe_modes_dated_now_and_the_marker_last(tmp_path: Path) -> None:
    archive = _archive(tmp_path)
    version = tmp_path / "tools" / "a-5"
    assert current_link.unpack(str(archive), str(version), "MANIFEST.json", check=True) and not version.exists()
    started = time.time() - 1
    assert current_link.unpack(str(archive), str(version), "MANIFEST.json")
    assert sorted(str(p.relative_to(version)) for p in version.rglob("*")) == [
        "MANIFEST.json", "bin", "bin/smoke-test", "wheels", "wheels/x-1.0-py3-none-any.whl"]
    assert (version / "bin" / "smoke-test").stat().st_mode & 0o7777 == 0o755, "no set-id bit, no write for group or others"
    assert (version / "wheels" / "x-1.0-py3-none-any.whl").stat().st_mode & 0o7777 == 0o644
    assert (version / "MANIFEST.json").stat().st_mtime >= started, "dated by the install, not by the archive (1970)"
    assert not current_link.unpack(str(archive), str(version), "MANIFEST.json"), "the marker is there: nothing to do"
    (version / "MANIFEST.json").unlink()  # an unpack cut short before its marker: done again
    (version / "bin" / "smoke-test").write_text("torn")
    assert current_link.unpack(str(archive), str(version), "MANIFEST.json")
    assert (version / "bin" / "smoke-test").read_text().startswith("#!/bin/sh")


@pytest.mark.bad_input
@pytest.mark.parametrize("kind", ["symlink", "climbing", "device"])
def test_unpack_refuses_an_entry_that_is_no_file_or_directory_inside_before_writing_anything(tmp_path: Path, kind: str) -> None:
    import tarfile
    info = tarfile.TarInfo({"symlink": "./bin/lmplz", "climbing": "./../../etc/cron.d/x", "device": "./dev-null"}[kind])
    if kind == "symlink":
        info.type, info.linkname = tarfile.SYMTYPE, "/usr/bin/python3"
    elif kind == "device":
        info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
    archive = _archive(tmp_path, extra=(info,) if kind != "climbing" else (info, __import__("io").BytesIO(b"")))
    version = tmp_path / "tools" / "a-5"
    with pytest.raises(current_link.CurrentLinkError, match=r"unpack: .* holds '{}'".format(info.name.replace(".", r"\."))):
        current_link.unpack(str(archive), str(version), "MANIFEST.json")
    assert not version.exists() and not (tmp_path / "etc").exists()


UNPACK_PLAY = """
- name: Install a tools version.
  hosts: all
  gather_facts: false
  tasks:
    - name: Copy the tarball unless the Pi has it, unpack it, prove it and switch current.
      pivoice.voice_appliance.current_link:
        directories:
          - {path: "{{ tools }}", mode: "0755"}
          - {path: "{{ tools }}/{{ version }}", mode: "0755"}
        files:
          - {src: "{{ tarball }}", dest: "{{ tools }}/{{ tarball | basename }}", mode: "0644"}
        unpack: {archive: "{{ tools }}/{{ tarball | basename }}", marker: MANIFEST.json}
        path: "{{ tools }}"
        version: "{{ version }}"
        keep: 1
        keep_files: ["{{ tarball | basename }}"]
        proof: [[bin/smoke-test]]
"""


def _unpack_play(tmp_path: Path, tools: Path, tarball: Path, version: str, check: bool = False, diff: bool = False) -> Dict[str, Any]:
    """ansible-playbook on this machine through an interpreter that notes each module run (the play runs nothing else)."""
    runs, wrapper = tmp_path / "module-runs", tmp_path / "python"
    wrapper.write_text("#!/bin/sh\necho run >> {}\nexec {} \"$@\"\n".format(runs, sys.executable))
    wrapper.chmod(0o755)
    (tmp_path / "unpack.yml").write_text(UNPACK_PLAY)
    (tmp_path / "ansible.cfg").write_text("[defaults]\n")
    before = runs.read_text().count("run") if runs.exists() else 0
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local",
                           "-e", json.dumps({"ansible_python_interpreter": str(wrapper), "tools": str(tools), "tarball": str(tarball),
                                             "version": version}), str(tmp_path / "unpack.yml")] + (["--check"] if check else []) + (["--diff"] if diff else []),
                          env=dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_CONFIG=str(tmp_path / "ansible.cfg"),
                                   ANSIBLE_PIPELINING="1"),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return dict(json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"],
                module_runs=runs.read_text().count("run") - before)


def test_a_version_arrives_unpacks_proves_and_goes_live_in_one_task_and_a_converged_pi_costs_one_module_run(tmp_path: Path) -> None:
    tools, tarball = tmp_path / "pi" / "tools", _archive(tmp_path)
    predicted = _unpack_play(tmp_path, tools, tarball, "a-5", check=True)
    assert predicted["changed"] and predicted["module_runs"] == 1 and not tools.exists()
    assert predicted["changes"][str(tools / "a-5")] == ["created", "unpacked"] and "a-5 would be unpacked first" in predicted["proof_skipped"]
    cold = _unpack_play(tmp_path, tools, tarball, "a-5")
    assert cold["changed"] and cold["module_runs"] == 2, "the first run names the tarball, the second unpacks, proves, switches"
    assert cold["changes"] == {str(tools): ["created"], str(tools / "a-5"): ["created", "unpacked"], str(tools / tarball.name): ["created"]}, \
        cold["changes"]
    assert [e["rc"] for e in cold["proof"]] == [0] and os.readlink(str(tools / "current")) == "a-5" and cold["transfer"] == []
    warm = _unpack_play(tmp_path, tools, tarball, "a-5")
    assert (warm["changed"], warm["changes"], warm["module_runs"]) == (False, {}, 1) and warm["proof"][0]["rc"] == 0
    assert not _unpack_play(tmp_path, tools, tarball, "a-5", check=True)["changed"]


def test_with_diff_the_two_runs_merge_into_one_list_of_diffs(tmp_path: Path) -> None:
    tools, tarball = tmp_path / "pi" / "tools", _archive(tmp_path)
    cold = _unpack_play(tmp_path, tools, tarball, "a-5", diff=True)
    assert cold["module_runs"] == 2 and isinstance(cold["diff"], list) and len(cold["diff"]) == 1, cold.get("diff")
    shown = cold["diff"][0]
    assert shown["before"].count("absent") == 3, "the directories and the tarball, each absent before"
    assert "{}: file root:root 0644 sha256 ".format(tools / tarball.name) in shown["after"], shown["after"]
    assert "diff" not in _unpack_play(tmp_path, tools, tarball, "a-5", diff=True), "converged: nothing to show"
