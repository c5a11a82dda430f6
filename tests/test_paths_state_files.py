"""paths_state's files: a role's files in the same call as its directories. Content and controller files
(by their sum; the action plugin sends only what the Pi lacks), owner/group/mode repaired in place,
content written beside and renamed after its sum and validation, seeds left to their users, check mode,
and refusals that name the value; then the action plugin in a real ansible-playbook run."""
from __future__ import annotations

import grp
import hashlib
import importlib.util
import json
import os
import pwd
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest

REPO = Path(__file__).resolve().parent.parent


def _load(name: str, path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(name, str(path))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


paths: Any = _load("paths_state_module_files", REPO / "plugins" / "modules" / "paths_state.py")
# The module's work lives in module_utils/paths.py (shared with health_check): what counts its calls patches it there.
from ansible_collections.pivoice.voice_appliance.plugins.module_utils import paths as shared  # noqa: E402
ME = pwd.getpwuid(os.getuid()).pw_name
MY_GROUP = grp.getgrgid(os.getgid()).gr_name


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _run(files: List[Dict[str, Any]], directories: List[Dict[str, Any]] = (), staged: Optional[Dict[str, str]] = None  # type: ignore[assignment]
         ) -> Dict[str, Any]:
    result = paths.plan(list(directories), [], files, staged)
    if result["changed"]:
        paths.apply(result)
    return result


def _leftovers(directory: Path) -> List[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


def test_content_files_are_written_with_owner_group_and_mode_into_a_directory_made_by_the_same_call(tmp_path: Path) -> None:
    facts = tmp_path / "etc" / "facts.d"
    fact = facts / "deepspeech.fact"
    entry = {"content": '{"flavour": "tflite"}\n', "dest": str(fact), "owner": ME, "group": MY_GROUP, "mode": "0644",
             "validate": "python3 -m json.tool %s"}
    result = _run([entry], [{"path": str(facts), "owner": ME, "group": MY_GROUP, "mode": "0755"}])
    assert result["changes"] == {str(facts): ["created"], str(fact): ["created"]} and result["transfer"] == []
    assert json.loads(fact.read_text()) == {"flavour": "tflite"} and _mode(fact) == 0o644
    again = paths.plan([{"path": str(facts), "owner": ME, "group": MY_GROUP, "mode": "0755"}], [], [entry])
    assert again["changed"] is False and again["changes"] == {}
    assert _leftovers(facts) == []


def test_a_controller_file_is_asked_for_only_when_the_pi_lacks_its_content(tmp_path: Path) -> None:
    wheel = tmp_path / "deepspeech.whl"
    data = b"wheel bytes" * 1000
    entry = {"sha256": _sha(data), "size": len(data), "dest": str(wheel), "owner": ME, "group": MY_GROUP, "mode": "0644"}
    first = _run([entry])
    assert first["transfer"] == [str(wheel)] and first["changes"] == {str(wheel): ["created"]}
    assert shared.ensure([], [], [{"content": "x\n", "dest": str(tmp_path / "x.txt"), "mode": "0644"}, entry], check=True)["transfer_index"] == [1], \
        "the files to send by their place in files too (a masked path is found by it)"
    assert not wheel.exists(), "nothing is written before the content arrived"
    staged = tmp_path / "staged-0"
    staged.write_bytes(data)
    second = _run([entry], staged={str(wheel): str(staged)})
    assert second["transfer"] == [] and wheel.read_bytes() == data and _mode(wheel) == 0o644
    third = paths.plan([], [], [entry])
    assert third["changed"] is False and third["transfer"] == []


@pytest.mark.fault
def test_content_that_arrived_damaged_replaces_nothing(tmp_path: Path) -> None:
    wheel = tmp_path / "rhasspy.whl"
    wheel.write_bytes(b"the old wheel")
    good = b"the new wheel"
    staged = tmp_path / "staged"
    staged.write_bytes(b"the new whee!")
    entry = {"sha256": _sha(good), "size": len(good), "dest": str(wheel), "mode": "0644"}
    with pytest.raises(paths.PathsError) as error:
        _run([entry], staged={str(wheel): str(staged)})
    assert "the content that reached the Pi has sha256 {}, not {}".format(_sha(b"the new whee!"), _sha(good)) in str(error.value)
    assert wheel.read_bytes() == b"the old wheel" and _leftovers(tmp_path) == []


def test_a_sent_content_on_the_destinations_filesystem_is_renamed_into_place_not_copied(tmp_path: Path) -> None:
    """No second copy of a large artifact on the Pi's disk: the content the action plugin sent becomes the file."""
    scorer = tmp_path / "models" / "kenlm.scorer"
    scorer.parent.mkdir()
    scorer.write_bytes(b"the old scorer")
    data = b"scorer" * 10000
    staged = tmp_path / "ansible-tmp" / "source-0"
    staged.parent.mkdir()
    staged.write_bytes(data)
    os.chmod(str(staged), 0o600)
    inode = staged.stat().st_ino
    entry = {"sha256": _sha(data), "size": len(data), "dest": str(scorer), "owner": ME, "group": MY_GROUP, "mode": "0644"}
    result = _run([entry], staged={str(scorer): str(staged)})
    assert result["changes"] == {str(scorer): ["content"]} and scorer.read_bytes() == data
    assert scorer.stat().st_ino == inode and not staged.exists(), "renamed, not copied"
    assert _mode(scorer) == 0o644 and (scorer.stat().st_uid, scorer.stat().st_gid) == (os.getuid(), os.getgid())
    assert _leftovers(scorer.parent) == []


def test_a_sent_content_on_another_filesystem_is_copied_beside_the_destination(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    wheel = tmp_path / "wheel.whl"
    data = b"wheel" * 1000
    staged = tmp_path / "source-0"
    staged.write_bytes(data)
    real_fstat = os.fstat

    def elsewhere(fd: int) -> os.stat_result:  # the staged file as if on another device
        fields = list(real_fstat(fd))
        fields[2] += 1
        return os.stat_result(fields)
    monkeypatch.setattr(paths.os, "fstat", elsewhere)
    os.chmod(str(staged), 0o600)
    entry = {"sha256": _sha(data), "size": len(data), "dest": str(wheel), "mode": "0640"}
    assert _run([entry], staged={str(wheel): str(staged)})["changes"] == {str(wheel): ["created"]}
    assert wheel.read_bytes() == data and staged.read_bytes() == data and wheel.stat().st_ino != staged.stat().st_ino
    assert _mode(wheel) == 0o640 and _mode(staged) == 0o600, "the sent file itself is left as it came"


@pytest.mark.fault
def test_a_sent_content_that_is_damaged_or_fails_its_validation_is_not_renamed_into_place(tmp_path: Path) -> None:
    fact = tmp_path / "voice.fact"
    fact.write_text('{"old": true}\n')
    for sent, validate, message in ((b"{}\n", "", "the content that reached the Pi has sha256"),
                                    (b"{not json\n", "python3 -m json.tool %s", "fails its validation")):
        staged = tmp_path / "source-0"
        staged.write_bytes(sent)
        entry = {"sha256": _sha(b"{not json\n"), "size": 10, "dest": str(fact), "mode": "0644", "validate": validate}
        with pytest.raises(paths.PathsError, match=message):
            _run([entry], staged={str(fact): str(staged)})
        assert fact.read_text() == '{"old": true}\n' and staged.exists() and _leftovers(tmp_path) == []


@pytest.mark.fault
def test_content_that_fails_its_validation_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    fact = tmp_path / "rhasspy_asr.fact"
    fact.write_text('{"site_id": "default"}\n')
    entry = {"content": "{not json", "dest": str(fact), "mode": "0644", "validate": "python3 -m json.tool %s"}
    with pytest.raises(paths.PathsError) as error:
        _run([entry])
    assert "fails its validation (python3 -m json.tool %s, exit 1)" in str(error.value)
    assert fact.read_text() == '{"site_id": "default"}\n' and _leftovers(tmp_path) == []


@pytest.mark.fault
def test_drift_is_repaired_a_mode_in_place_a_changed_content_by_a_new_file(tmp_path: Path) -> None:
    script = tmp_path / "reload.sh"
    entry = {"content": "#!/bin/sh\nexit 0\n", "dest": str(script), "owner": ME, "group": MY_GROUP, "mode": "0755",
             "validate": "sh -n %s"}
    _run([entry])
    inode = script.stat().st_ino
    os.chmod(str(script), 0o777)
    assert _run([entry])["changes"] == {str(script): ["mode"]}
    assert _mode(script) == 0o755 and script.stat().st_ino == inode, "a mode is repaired in place"
    script.write_text("#!/bin/sh\nrm -rf /\n")
    assert _run([entry])["changes"] == {str(script): ["content"]}
    assert script.read_text() == "#!/bin/sh\nexit 0\n" and script.stat().st_ino != inode, "new content is renamed over it"


def test_a_seed_is_written_once_and_then_belongs_to_its_users(tmp_path: Path) -> None:
    sentences = tmp_path / "sentences.ini"
    entry = {"content": "[Licht]\nmach das licht an\n", "dest": str(sentences), "mode": "0664", "force": False}
    assert _run([entry])["changes"] == {str(sentences): ["created"]}
    sentences.write_text("[Eigenes]\nmein satz\n")
    os.chmod(str(sentences), 0o600)
    assert paths.plan([], [], [entry])["changed"] is False
    assert sentences.read_text() == "[Eigenes]\nmein satz\n" and _mode(sentences) == 0o600


def test_check_mode_plans_files_without_writing_and_the_diff_names_the_sums(tmp_path: Path) -> None:
    old = tmp_path / "retrain.json"
    old.write_text("{}\n")
    new = tmp_path / "new.fact"
    files = [{"content": '{"a": 1}\n', "dest": str(old), "mode": "0640"}, {"content": "{}\n", "dest": str(new), "mode": "0644"}]
    result = paths.plan([], [], files)
    assert result["changes"] == {str(old): ["content", "mode"], str(new): ["created"]}
    assert old.read_text() == "{}\n" and not new.exists()
    shown = paths.diff(result, {p: paths._state(p) for p in result["changes"]})
    assert "{}: file".format(old) in shown["before"] and "sha256 {}".format(_sha(b"{}\n")[:12]) in shown["before"]
    assert "{}: absent".format(new) in shown["before"]
    assert "0640 sha256 {}".format(_sha(b'{"a": 1}\n')[:12]) in shown["after"]


class _Exit(Exception):
    """exit_json or fail_json of the stand-in module: the result the module returns."""


def _main(monkeypatch: pytest.MonkeyPatch, params: Dict[str, Any], diff: bool, check: bool = False) -> Dict[str, Any]:
    """The module's main() as Ansible runs it on the Pi, with AnsibleModule standing in."""
    basic = pytest.importorskip("ansible.module_utils.basic")

    class Module:
        def __init__(self, argument_spec: Dict[str, Any], supports_check_mode: bool) -> None:
            assert supports_check_mode
            self.params = dict({name: spec["default"] for name, spec in argument_spec.items()}, **params)
            self.check_mode, self._diff = check, diff

        def exit_json(self, **out: Any) -> None:
            raise _Exit(out)

        def fail_json(self, **out: Any) -> None:
            raise _Exit(dict(out, failed=True))

    monkeypatch.setattr(basic, "AnsibleModule", Module)
    with pytest.raises(_Exit) as done:
        paths.main()
    return done.value.args[0]  # type: ignore[no-any-return]


def _counting(monkeypatch: pytest.MonkeyPatch) -> Dict[str, int]:
    """Counts the module's sums of files and its diff lines."""
    calls = {"sha256_file": 0, "_state": 0}
    for name in calls:
        original = getattr(shared, name)

        def counted(*args: Any, _name: str = name, _original: Any = original, **kwargs: Any) -> Any:
            calls[_name] += 1
            return _original(*args, **kwargs)
        monkeypatch.setattr(shared, name, counted)
    return calls


def _changing(tmp_path: Path) -> Dict[str, Any]:
    """A file whose content changes (same size: the plan sums it), one whose mode changes and a new directory."""
    config, script = tmp_path / "retrain.json", tmp_path / "reload.sh"
    config.write_text('{"a": 1}\n')
    script.write_text("#!/bin/sh\n")
    os.chmod(str(config), 0o644)
    os.chmod(str(script), 0o700)
    return {"directories": [{"path": str(tmp_path / "new"), "mode": "0755"}],
            "files": [{"content": '{"a": 2}\n', "dest": str(config), "mode": "0644"},
                      {"content": "#!/bin/sh\n", "dest": str(script), "mode": "0755"}]}


def test_without_diff_the_module_describes_no_path_and_sums_each_file_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    params = _changing(tmp_path)
    calls = _counting(monkeypatch)
    out = _main(monkeypatch, params, diff=False)
    assert out == {"changed": True, "transfer": [], "transfer_index": [], "files": [str(tmp_path / "retrain.json"), str(tmp_path / "reload.sh")],
                   "changes": {str(tmp_path / "new"): ["created"], str(tmp_path / "retrain.json"): ["content"],
                               str(tmp_path / "reload.sh"): ["mode"]}}
    assert calls == {"sha256_file": 3, "_state": 0}, "the plan sums both files, the written one is checked; no diff"
    assert (tmp_path / "retrain.json").read_text() == '{"a": 2}\n' and _mode(tmp_path / "reload.sh") == 0o755


def test_the_diff_reuses_the_sums_the_plan_computed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    params = _changing(tmp_path)
    calls = _counting(monkeypatch)
    out = _main(monkeypatch, params, diff=True)
    assert calls["sha256_file"] == 3, "as without the diff: its lines take the sums the plan and the write computed"
    config, script, new, owned = tmp_path / "retrain.json", tmp_path / "reload.sh", tmp_path / "new", "{}:{}".format(ME, MY_GROUP)
    assert out["diff"] == {
        "before": "{}: absent\n{}: file {} 0700 sha256 {}\n{}: file {} 0644 sha256 {}\n".format(
            new, script, owned, _sha(b"#!/bin/sh\n")[:12], config, owned, _sha(b'{"a": 1}\n')[:12]),
        "after": "{}: directory {} 0755\n{}: file {} 0755 sha256 {}\n{}: file {} 0644 sha256 {}\n".format(
            new, owned, script, owned, _sha(b"#!/bin/sh\n")[:12], config, owned, _sha(b'{"a": 2}\n')[:12])}
    assert out["diff"]["after"] == "".join(paths._state(p) + "\n" for p in sorted(out["changes"])), "what is on disk now"
    checked = _main(monkeypatch, _changing(tmp_path / "new"), diff=True, check=True)
    assert "sha256 {}".format(_sha(b'{"a": 2}\n')[:12]) in checked["diff"]["after"] and not (tmp_path / "new" / "new").exists()


@pytest.mark.bad_input
@pytest.mark.parametrize("entry,message", [
    ({"content": "x", "dest": "relative/file", "mode": "0644"}, "file 'relative/file': the destination must be absolute"),
    ({"dest": "/x/f", "mode": "0644"}, "file /x/f: give exactly one of content and src"),
    ({"content": "x", "sha256": "ab", "dest": "/x/f", "mode": "0644"}, "file /x/f: give exactly one of content and src"),
    ({"content": "x", "dest": "/x/f", "mode": "rw"}, "file /x/f: mode 'rw' is not an octal mode"),
    ({"content": "x", "dest": "/x/f", "mode": "0644", "owner": "no-such-account-here"}, "file /x/f: owner 'no-such-account-here' is no account"),
    ({"content": "x", "dest": "/x/f", "mode": "0644", "validate": "sh -n"}, "validate 'sh -n' must contain %s"),
    ({"content": "x", "dest": "/x/f", "mode": "0644", "src": "f"}, "unknown key(s) src"),
    ({"content": "x", "dest": "/no/such/dir/f", "mode": "0644"}, "file /no/such/dir/f: its directory does not exist; list it in directories"),
    ({"content": "x", "dest": "/x/f", "mode": "0644", "force": "no"}, "file /x/f: force 'no' is not true or false"),
])
def test_bad_file_requests_are_refused_with_the_value_and_the_fix(entry: Dict[str, Any], message: str) -> None:
    with pytest.raises(paths.PathsError) as error:
        paths.plan([], [], [entry])
    assert message in str(error.value)


def test_check_mode_predicts_a_file_whose_directory_an_earlier_task_would_have_made(tmp_path: Path) -> None:
    entry = {"content": "{}", "dest": str(tmp_path / "not-yet" / "retrain.json"), "mode": "0640"}
    with pytest.raises(paths.PathsError, match="its directory does not exist"):
        paths.plan([], [], [entry])
    assert paths.plan([], [], [entry], check=True)["changes"] == {entry["dest"]: ["created"]}


@pytest.mark.bad_input
def test_a_directory_where_a_file_belongs_and_a_file_listed_twice_are_refused(tmp_path: Path) -> None:
    (tmp_path / "wheel.whl").mkdir()
    with pytest.raises(paths.PathsError, match="it exists but is not a regular file; move it away"):
        paths.plan([], [], [{"content": "x", "dest": str(tmp_path / "wheel.whl"), "mode": "0644"}])
    twice = {"content": "x", "dest": str(tmp_path / "f"), "mode": "0644"}
    with pytest.raises(paths.PathsError, match="is listed twice"):
        paths.plan([], [], [twice, twice])
    assert not (tmp_path / "f").exists()


# The action plugin in a real run: ansible-playbook against this machine (local connection), the collection
# found as the checkout's ansible.cfg finds it.
PLAY = """---
- name: Put a role's directories and files in place.
  hosts: all
  gather_facts: false
  tasks:
    - name: Create the directory, copy the controller's files and write a fact.
      pivoice.voice_appliance.paths_state:
        directories:
          - {path: "{{ root }}/wheels", mode: "0755"}
        files:
          - {src: "{{ src_dir }}/a.whl", dest: "{{ root }}/wheels/a.whl", mode: "0644"}
          - {src: "{{ src_dir }}/b.whl", dest: "{{ root }}/wheels/b.whl", mode: "0640"}
          - {content: "{{ {'n': 1} | to_nice_json }}\\n", dest: "{{ root }}/wheels/x.fact", mode: "0644",
             validate: python3 -m json.tool %s}
      register: placed

    - name: Show what changed.
      ansible.builtin.debug:
        var: placed
"""


def _cache_and_pi(tmp_path: Path) -> Tuple[Path, Path]:
    """The controller's cache directory and the Pi's root, both empty."""
    src_dir, root = tmp_path / "cache", tmp_path / "pi"
    src_dir.mkdir()
    root.mkdir()
    return src_dir, root


def _play(tmp: Path, root: Path, src_dir: Path, check: bool = False, play: str = PLAY) -> Dict[str, Any]:
    (tmp / "play.yml").write_text(play)
    (tmp / "hosts.ini").write_text("pi ansible_connection=local ansible_python_interpreter={}\n".format(sys.executable))
    (tmp / "ansible.cfg").write_text("[defaults]\n")
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_CONFIG=str(tmp / "ansible.cfg"))
    cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(tmp / "hosts.ini"), str(tmp / "play.yml"),
           "-e", json.dumps({"root": str(root), "src_dir": str(src_dir)})] + (["--check", "--diff"] if check else [])
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=300)
    report = json.loads(proc.stdout)
    task = report["plays"][0]["tasks"][0]["hosts"]["pi"]
    return {"rc": proc.returncode, "task": task, "changed": report["stats"]["pi"]["changed"]}


def test_the_action_plugin_sends_only_the_files_the_pi_lacks(tmp_path: Path) -> None:
    src_dir, root = _cache_and_pi(tmp_path)
    (src_dir / "a.whl").write_bytes(b"A" * 70000)
    (src_dir / "b.whl").write_bytes(b"B" * 10)
    checked = _play(tmp_path, root, src_dir, check=True)
    assert checked["rc"] == 0 and checked["task"]["changed"] and not (root / "wheels").exists()
    assert "sha256 {}".format(_sha(b"A" * 70000)[:12]) in checked["task"]["diff"]["after"]

    cold = _play(tmp_path, root, src_dir)
    assert cold["rc"] == 0, cold["task"].get("msg")
    assert cold["task"]["files"] == [str(root / "wheels" / n) for n in ("a.whl", "b.whl", "x.fact")]
    assert set(cold["task"]["changes"]) == {str(root / "wheels"), str(root / "wheels" / "a.whl"),
                                            str(root / "wheels" / "b.whl"), str(root / "wheels" / "x.fact")}
    assert (root / "wheels" / "a.whl").read_bytes() == b"A" * 70000 and _mode(root / "wheels" / "b.whl") == 0o640

    warm = _play(tmp_path, root, src_dir)
    assert warm["rc"] == 0 and warm["changed"] == 0 and warm["task"]["changes"] == {}
    shown = json.dumps(warm["task"].get("invocation", {}))
    assert '"n": 1' not in shown and "bytes, sha256" in shown, "a file's content is not echoed in the invocation"

    (root / "wheels" / "b.whl").write_bytes(b"tampered")  # drift: only this one is sent again
    os.chmod(str(root / "wheels" / "a.whl"), 0o600)
    repaired = _play(tmp_path, root, src_dir)
    assert repaired["rc"] == 0 and repaired["task"]["changes"] == {str(root / "wheels" / "b.whl"): ["content"],
                                                                   str(root / "wheels" / "a.whl"): ["mode"]}
    assert (root / "wheels" / "b.whl").read_bytes() == b"B" * 10 and _mode(root / "wheels" / "a.whl") == 0o644


@pytest.mark.bad_input
def test_a_src_missing_on_the_controller_is_named(tmp_path: Path) -> None:
    src_dir, root = _cache_and_pi(tmp_path)
    (src_dir / "a.whl").write_bytes(b"A")
    run = _play(tmp_path, root, src_dir)
    assert run["rc"] != 0
    assert "file {}: its src {} is not on the controller".format(root / "wheels" / "b.whl", src_dir / "b.whl") in run["task"]["msg"]
    assert not (root / "wheels").exists(), "nothing on the Pi changed"


SUMS = """---
- name: Copy a controller file whose sum is recorded.
  hosts: all
  gather_facts: false
  tasks:
    - name: Create the directory and copy the file.
      pivoice.voice_appliance.paths_state:
        directories:
          - {path: "{{ root }}/wheels", mode: "0755"}
        files:
          - {src: "{{ src_dir }}/a.whl", dest: "{{ root }}/wheels/a.whl", mode: "0644", sha256: "SUM", fix: "Stage it again."}
"""


@pytest.mark.bad_input
def test_a_src_whose_sum_is_not_the_expected_one_is_refused_before_the_pi_changes(tmp_path: Path) -> None:
    src_dir, root = _cache_and_pi(tmp_path)
    (src_dir / "a.whl").write_bytes(b"A damaged")
    damaged = _play(tmp_path, root, src_dir, play=SUMS.replace("SUM", _sha(b"A")))
    assert damaged["rc"] != 0 and damaged["task"]["msg"] == (
        "paths_state: file {}: its src {} has sha256 {}, not the expected {}: it is damaged or not the file that was meant, "
        "and nothing was changed on the Pi. Stage it again.".format(root / "wheels" / "a.whl", src_dir / "a.whl", _sha(b"A damaged"),
                                                                     _sha(b"A")))
    assert list(root.iterdir()) == [], "nothing on the Pi changed (not even the directory of the same call)"

    (src_dir / "a.whl").write_bytes(b"A")
    right = _play(tmp_path, root, src_dir, play=SUMS.replace("SUM", _sha(b"A").upper()))
    assert right["rc"] == 0 and (root / "wheels" / "a.whl").read_bytes() == b"A"

    (src_dir / "a.whl").unlink()
    missing = _play(tmp_path, root, src_dir, play=SUMS.replace("SUM", _sha(b"A")))
    assert missing["rc"] != 0 and missing["task"]["msg"].startswith("paths_state: file {}: its src {} is not on the controller (".format(
        root / "wheels" / "a.whl", src_dir / "a.whl"))
    assert missing["task"]["msg"].endswith("). Stage it again.") and (root / "wheels" / "a.whl").read_bytes() == b"A"


@pytest.mark.bad_input
@pytest.mark.parametrize("entry,message", [
    ('{src: "{{ src_dir }}/a.whl", dest: "{{ root }}/a.whl", mode: "0644", sha256: "a1b2", fix: "Stage it again."}',
     "file {root}/a.whl: the sha256 expected of its src {src_dir}/a.whl is 'a1b2', not a sha256 sum (64 hexadecimal digits); "
     "nothing was changed on the Pi. Stage it again."),
    ('{content: "x", dest: "{{ root }}/a.whl", mode: "0644", sha256: "' + "0" * 64 + '"}',
     "file {root}/a.whl: sha256, sha256_file and fix belong to a src"),
])
def test_a_sum_that_cannot_be_checked_is_refused(tmp_path: Path, entry: str, message: str) -> None:
    src_dir, root = _cache_and_pi(tmp_path)
    (src_dir / "a.whl").write_bytes(b"A")
    play = SUMS.replace(SUMS[SUMS.index("{src:"):SUMS.index("\n", SUMS.index("{src:"))], entry)
    run = _play(tmp_path, root, src_dir, play=play)
    assert run["rc"] != 0 and message.format(root=root, src_dir=src_dir) in run["task"]["msg"]
    assert list(root.iterdir()) == []


SUM_FILE = SUMS.replace('sha256: "SUM"', 'sha256_file: "{{ src_dir }}/a.whl.sha256"')


@pytest.mark.parametrize("record", ["{sum}  a.whl\n", "{sum}\n", "{SUM} *a.whl", "\n{sum}  /elsewhere/a.whl\n\n"],
                         ids=["sha256sum", "sum-alone", "binary-mode-upper-case", "path-and-blank-lines"])
def test_a_src_is_checked_against_the_sum_its_sum_file_holds(tmp_path: Path, record: str) -> None:
    src_dir, root = _cache_and_pi(tmp_path)
    (src_dir / "a.whl").write_bytes(b"A")
    (src_dir / "a.whl.sha256").write_text(record.format(sum=_sha(b"A"), SUM=_sha(b"A").upper()))
    run = _play(tmp_path, root, src_dir, play=SUM_FILE)
    assert run["rc"] == 0, run["task"].get("msg")
    assert (root / "wheels" / "a.whl").read_bytes() == b"A"


@pytest.mark.bad_input
def test_a_src_that_differs_from_its_sum_file_is_refused_naming_the_sum_file(tmp_path: Path) -> None:
    src_dir, root = _cache_and_pi(tmp_path)
    (src_dir / "a.whl").write_bytes(b"A damaged")
    (src_dir / "a.whl.sha256").write_text("{}  a.whl\n".format(_sha(b"A")))
    run = _play(tmp_path, root, src_dir, play=SUM_FILE)
    assert run["rc"] != 0 and run["task"]["msg"] == (
        "paths_state: file {}: its src {} has sha256 {}, not the expected {} (recorded in {}): it is damaged or not the file that "
        "was meant, and nothing was changed on the Pi. Stage it again.".format(
            root / "wheels" / "a.whl", src_dir / "a.whl", _sha(b"A damaged"), _sha(b"A"), src_dir / "a.whl.sha256"))
    assert list(root.iterdir()) == [], "nothing on the Pi changed"


@pytest.mark.bad_input
@pytest.mark.parametrize("record,message", [
    (None, "file {root}/wheels/a.whl: the sum file {src_dir}/a.whl.sha256 of its src {src_dir}/a.whl is not on the controller ("),
    ("", "file {root}/wheels/a.whl: the sum file {src_dir}/a.whl.sha256 of {src_dir}/a.whl is empty (a build or a copy that did "
         "not finish?); nothing was changed on the Pi. Stage it again."),
    ("  \n\n", "the sum file {src_dir}/a.whl.sha256 of {src_dir}/a.whl is empty"),
    ("no sum recorded\n", "the sum file {src_dir}/a.whl.sha256 of {src_dir}/a.whl holds 'no sum recorded', not a sha256 sum (64 "
                            "hexadecimal digits first on its line, as sha256sum writes it); nothing was changed on the Pi. Stage it "
                            "again."),
    ("{sum}  a.whl\n{sum}  b.whl\n", "the sum file {src_dir}/a.whl.sha256 of {src_dir}/a.whl holds 2 lines; it must hold one, "
                                       "the sum of a.whl"),
    ("{sum}  b.whl\n", "the sum file {src_dir}/a.whl.sha256 of {src_dir}/a.whl records the sum of b.whl, not of a.whl"),
    ("0" * 5000, "the sum file {src_dir}/a.whl.sha256 of {src_dir}/a.whl is larger than 4 KiB"),
], ids=["missing", "empty", "blank", "not-a-sum", "two-lines", "another-file", "too-large"])
def test_a_sum_file_that_holds_no_usable_sum_is_refused_naming_it(tmp_path: Path, record: Optional[str], message: str) -> None:
    src_dir, root = _cache_and_pi(tmp_path)
    (src_dir / "a.whl").write_bytes(b"A")
    if record is not None:
        (src_dir / "a.whl.sha256").write_text(record.format(sum=_sha(b"A")))
    run = _play(tmp_path, root, src_dir, play=SUM_FILE)
    assert run["rc"] != 0 and message.format(root=root, src_dir=src_dir) in run["task"]["msg"], run["task"]["msg"]
    assert run["task"]["msg"].endswith("Stage it again."), "the task's fix ends the message"
    assert list(root.iterdir()) == [], "nothing on the Pi changed"


@pytest.mark.bad_input
def test_a_sum_file_without_a_fix_names_how_to_record_the_sum(tmp_path: Path) -> None:
    src_dir, root = _cache_and_pi(tmp_path)
    (src_dir / "a.whl").write_bytes(b"A")
    (src_dir / "a.whl.sha256").write_text("")
    run = _play(tmp_path, root, src_dir, play=SUM_FILE.replace(', fix: "Stage it again."', ""))
    assert run["rc"] != 0 and run["task"]["msg"].endswith(
        "is empty (a build or a copy that did not finish?); nothing was changed on the Pi. Record the sum of a copy you trust there "
        "(cd {0} && sha256sum a.whl > {0}/a.whl.sha256), or make both files again.".format(src_dir)), run["task"]["msg"]


@pytest.mark.bad_input
@pytest.mark.parametrize("entry,message", [
    ('{src: "{{ src_dir }}/a.whl", dest: "{{ root }}/a.whl", mode: "0644", sha256: "' + "0" * 64 + '", '
     'sha256_file: "{{ src_dir }}/a.whl.sha256"}',
     "file {root}/a.whl: give the sum its src {src_dir}/a.whl must have as sha256 or as sha256_file ({src_dir}/a.whl.sha256), not both"),
    ('{content: "x", dest: "{{ root }}/a.whl", mode: "0644", sha256_file: "{{ src_dir }}/a.whl.sha256"}',
     "file {root}/a.whl: sha256, sha256_file and fix belong to a src"),
], ids=["both", "without-src"])
def test_sha256_file_is_refused_with_sha256_or_without_a_src(tmp_path: Path, entry: str, message: str) -> None:
    src_dir, root = _cache_and_pi(tmp_path)
    (src_dir / "a.whl").write_bytes(b"A")
    (src_dir / "a.whl.sha256").write_text("{}  a.whl\n".format(_sha(b"A")))
    play = SUMS.replace(SUMS[SUMS.index("{src:"):SUMS.index("\n", SUMS.index("{src:"))], entry)
    run = _play(tmp_path, root, src_dir, play=play)
    assert run["rc"] != 0 and message.format(root=root, src_dir=src_dir) in run["task"]["msg"], run["task"]["msg"]
    assert list(root.iterdir()) == []


SEEDS = """---
- name: Seed files whose force is given as Ansible's strings.
  hosts: all
  gather_facts: false
  tasks:
    - name: Seed the files.
      pivoice.voice_appliance.paths_state:
        files:
          - {content: "seed\\n", dest: "{{ root }}/no.ini", mode: "0644", force: "no"}
          - {content: "seed\\n", dest: "{{ root }}/off.ini", mode: "0644", force: "off"}
          - {content: "seed\\n", dest: "{{ root }}/yes.ini", mode: "0644", force: "yes"}
"""


def test_force_is_read_as_ansible_reads_a_boolean(tmp_path: Path) -> None:
    src_dir, root = _cache_and_pi(tmp_path)
    first = _play(tmp_path, root, src_dir, play=SEEDS)
    assert first["rc"] == 0 and set(first["task"]["changes"]) == {str(root / n) for n in ("no.ini", "off.ini", "yes.ini")}
    for name in ("no.ini", "off.ini", "yes.ini"):
        (root / name).write_text("the user's own\n")
    again = _play(tmp_path, root, src_dir, play=SEEDS)
    assert again["rc"] == 0 and again["task"]["changes"] == {str(root / "yes.ini"): ["content"]}
    assert [(root / n).read_text() for n in ("no.ini", "off.ini", "yes.ini")] == ["the user's own\n"] * 2 + ["seed\n"]
    wrong = _play(tmp_path, root, src_dir, play=SEEDS.replace('force: "yes"', 'force: "maybe"'))
    assert wrong["rc"] != 0 and "file {}: force 'maybe' is not a boolean (true or false)".format(root / "yes.ini") in wrong["task"]["msg"]


def _action() -> Any:
    sys.path.insert(0, str(REPO / "plugins" / "action"))
    try:
        return _load("paths_state_action", REPO / "plugins" / "action" / "paths_state.py")
    except ImportError:  # pragma: no cover - the controller venv has ansible-core
        pytest.skip("ansible-core is not importable")
    finally:
        sys.path.pop(0)


def test_the_controller_measures_each_artifact_once_per_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    action = _action()
    assert action.sha256_file is paths.sha256_file, "the modules' own sum (module_utils/durable), not a copy"
    sums: List[str] = []
    monkeypatch.setattr(action, "sha256_file", lambda path: sums.append(path) or paths.sha256_file(path))
    artifact = tmp_path / "tools.tar.gz"
    artifact.write_bytes(b"one")
    assert action.measure(str(artifact)) == (_sha(b"one"), 3)
    assert len([k for k in action._SUMS if k[0] == str(artifact)]) == 1
    action.measure(str(artifact))
    assert len([k for k in action._SUMS if k[0] == str(artifact)]) == 1 and sums == [str(artifact)]
    artifact.write_bytes(b"three")
    assert action.measure(str(artifact)) == (_sha(b"three"), 5) and sums == [str(artifact)] * 2


def _filter() -> Any:
    try:
        return _load("file_copies_filter", REPO / "plugins" / "filter" / "file_copies.py")
    except ImportError:  # pragma: no cover - the controller venv has ansible-core
        pytest.skip("ansible-core is not importable")


def test_file_copies_names_each_wheel_from_the_cache_to_the_pi() -> None:
    assert _filter().file_copies(["a.whl", "b.whl"], "/cache/wheels/", "/opt/va/wheels") == [
        {"src": "/cache/wheels/a.whl", "dest": "/opt/va/wheels/a.whl", "owner": "root", "group": "root", "mode": "0644"},
        {"src": "/cache/wheels/b.whl", "dest": "/opt/va/wheels/b.whl", "owner": "root", "group": "root", "mode": "0644"}]
    assert _filter().file_copies([], "/c", "/d") == []


@pytest.mark.bad_input
@pytest.mark.parametrize("names,message", [
    ("a.whl", "expects a list of file names, got 'a.whl'"),
    (["../etc/passwd"], "'../etc/passwd' is not a file name"),
    ([""], "'' is not a file name"),
])
def test_file_copies_refuses_what_is_not_a_list_of_file_names(names: Any, message: str) -> None:
    module = _filter()
    with pytest.raises(module.AnsibleFilterError) as error:
        module.file_copies(names, "/c", "/d")
    assert message in str(error.value)


def test_checked_copies_sends_each_file_under_its_name_with_the_sum_it_must_have() -> None:
    files = {"tflite": {"path": "/cache/m/1/output_graph.tflite", "checksum": "AB" * 32, "size": 9},
             "alphabet": {"path": "/cache/m/1/alphabet.txt", "checksum": "cd" * 32, "size": 3}}
    fix = "Run playbooks/stage.yml again."
    assert _filter().checked_copies(files, "/opt/va/models/m-1-abc/", fix) == [
        {"src": "/cache/m/1/output_graph.tflite", "dest": "/opt/va/models/m-1-abc/output_graph.tflite", "sha256": "ab" * 32,
         "fix": fix, "owner": "root", "group": "root", "mode": "0644"},
        {"src": "/cache/m/1/alphabet.txt", "dest": "/opt/va/models/m-1-abc/alphabet.txt", "sha256": "cd" * 32,
         "fix": fix, "owner": "root", "group": "root", "mode": "0644"}]
    assert _filter().checked_copies(list(files.values()), "/d") == _filter().checked_copies(files, "/d")
    assert _filter().checked_copies({}, "/d") == []


@pytest.mark.bad_input
@pytest.mark.parametrize("files,message", [
    ("/cache/m.tflite", "checked_copies: expects a list (or a mapping) of {path, checksum}, got '/cache/m.tflite'"),
    ([{"path": "/cache/m.tflite"}], "checked_copies: {'path': '/cache/m.tflite'} is not a controller file with its sha256"),
    ([{"path": "/cache/m.tflite", "checksum": "no sum"}], "each needs path and checksum (64 hexadecimal digits)"),
    ([{"path": "/a/m.tflite", "checksum": "ab" * 32}, {"path": "/b/m.tflite", "checksum": "cd" * 32}],
     "checked_copies: two files are named m.tflite (/a/m.tflite and /b/m.tflite); each needs a name of its own in /d"),
])
def test_checked_copies_refuses_what_is_not_a_list_of_files_with_their_sums(files: Any, message: str) -> None:
    module = _filter()
    with pytest.raises(module.AnsibleFilterError) as error:
        module.checked_copies(files, "/d")
    assert message in str(error.value)
