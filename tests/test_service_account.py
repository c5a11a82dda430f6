"""service_account, the service group and user in one call: created with shadow's own tools when missing, a drifted
primary group, home, shell or comment repaired, missing supplementary groups added (others left alone), a missing
supplementary group refused by name before anything changes; a converged account runs no command; check mode
predicts and changes nothing. The real groupadd/useradd/usermod run on a copy of /etc (their --root)."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, Dict, List

import pytest

from ansible_collections.pivoice.voice_appliance.plugins.modules import service_account as account


HOME = "/var/lib/voice-appliance"
COMMENT = "Voice appliance (DeepSpeech ASR)"
needs_shadow = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("useradd"),
                                  reason="shadow's tools change account files only as root")


def _etc(tmp_path: Path, passwd: str = "", group: str = "") -> Path:
    """A small /etc with root, audio and what the test adds (the shadow files too: the tools keep them in step)."""
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n" + passwd)
    (etc / "group").write_text("root:x:0:\naudio:x:29:\n" + group)
    (etc / "shadow").write_text("root:*:19000:0:99999:7:::\n" + "".join(
        line.split(":")[0] + ":!:19000::::::\n" for line in passwd.splitlines()))
    (etc / "gshadow").write_text("root:*::\naudio:*::\n" + "".join(
        line.split(":")[0] + ":!::\n" for line in group.splitlines()))
    for path in etc.iterdir():
        path.chmod(0o600 if "shadow" in path.name else 0o644)
    (etc / "login.defs").write_text("SYS_UID_MIN 100\nSYS_UID_MAX 999\nSYS_GID_MIN 100\nSYS_GID_MAX 999\n")
    return tmp_path


def _ensure(root: Path, **kw: Any) -> Dict[str, Any]:
    args: Dict[str, Any] = dict(name="voice", group="voice", groups=["audio"], home=HOME, comment=COMMENT, root=str(root))
    args.update(kw)
    return account.ensure(**args)


def _user(root: Path) -> List[str]:
    users, _ = account.accounts(str(root))
    return users["voice"]


@needs_shadow
def test_a_fresh_pi_gets_the_group_and_the_user_and_a_rerun_runs_nothing(tmp_path: Path) -> None:
    root = _etc(tmp_path)
    predicted = _ensure(root, check=True)
    assert (predicted["changed"], predicted["created"]) == (True, ["group", "user"]) and "voice" not in account.accounts(str(root))[0]
    done = _ensure(root)
    assert done["created"] == ["group", "user"]
    users, groups = account.accounts(str(root))
    user = users["voice"]
    assert user[3] == groups["voice"][2] and user[4:] == [COMMENT, HOME, "/usr/sbin/nologin"] and int(user[2]) < 1000
    assert groups["audio"][3] == "voice"
    assert not (tmp_path / HOME.lstrip("/")).exists(), "the home directory is the caller's to make"
    again = _ensure(root)
    assert (again["changed"], again["created"], again["repaired"]) == (False, [], [])
    assert again["diff"]["before"] == again["diff"]["after"]


@needs_shadow
def test_a_drifted_user_is_repaired_and_keeps_its_other_groups(tmp_path: Path) -> None:
    root = _etc(tmp_path, passwd="voice:x:990:100:old:/home/voice:/bin/bash\n",
                group="users:x:100:\nvoice:x:991:\nplugdev:x:46:voice\n")
    predicted = _ensure(root, check=True)
    assert predicted["repaired"] == ["group", "home", "shell", "comment", "groups"] and _user(root)[6] == "/bin/bash"
    assert predicted["diff"]["before"]["groups"] == ["plugdev"] and predicted["diff"]["after"]["groups"] == ["audio", "plugdev"]
    _ensure(root)
    _, groups = account.accounts(str(root))
    assert _user(root) == ["voice", "x", "990", "991", COMMENT, HOME, "/usr/sbin/nologin"]
    assert groups["audio"][3] == "voice" and groups["plugdev"][3] == "voice", "other groups are left alone"
    assert not _ensure(root)["changed"]


@pytest.mark.fault
def test_a_missing_supplementary_group_is_refused_by_name_before_anything_changes(tmp_path: Path) -> None:
    root = _etc(tmp_path)
    ran: List[List[str]] = []
    with pytest.raises(ValueError, match=r"group\(s\) gpio of the account 'voice' do not exist.*deepspeech_deps_user_groups"):
        _ensure(root, groups=["audio", "gpio"], run=ran.append)
    assert ran == [] and "voice" not in account.accounts(str(root))[1]


def test_the_commands_name_the_root_only_when_one_is_given(tmp_path: Path) -> None:
    steps = account.plan("voice", "voice", ["voice", "audio"], HOME, "/usr/sbin/nologin", COMMENT, str(_etc(tmp_path)))
    assert steps["commands"][0] == ["groupadd", "--root", str(tmp_path), "--system", "voice"]
    assert steps["commands"][1][-3:] == ["--groups", "audio", "voice"], "the primary group is no supplementary one"
    on_the_pi = account.plan("root", "root", [], "/root", "/bin/bash", "root")
    assert on_the_pi["commands"] == [] and on_the_pi["before"]["group"] == "root"


@pytest.mark.fault
@needs_shadow
def test_a_failing_tool_is_reported_with_its_message(tmp_path: Path) -> None:
    root = _etc(tmp_path)
    (root / "etc" / "login.defs").write_text("SYS_GID_MIN 100\nSYS_GID_MAX 100\nSYS_UID_MIN 100\nSYS_UID_MAX 100\n")
    subprocess.run(["groupadd", "--root", str(root), "--system", "taken"], check=True)
    with pytest.raises(RuntimeError, match=r"groupadd --root .* --system voice failed \(\d+\): "):
        _ensure(root)


@needs_shadow
def test_the_accounts_directories_are_put_in_place_in_the_same_call_and_drift_in_them_is_a_change(tmp_path: Path) -> None:
    root = _etc(tmp_path)
    base, state = tmp_path / "opt" / "voice-appliance", tmp_path / "var" / "lib" / "voice-appliance"
    directories = [{"path": str(base), "owner": "root", "group": "root", "mode": "0755"},
                   {"path": str(state), "owner": "root", "group": "root", "mode": "0750"}]
    predicted = account.with_directories(_ensure(root, check=True), directories, check=True, want_diff=True)
    assert predicted["changed"] and sorted(predicted["changes"]) == [str(base), str(state)] and not base.exists()
    assert len(predicted["diff"]) == 2 and predicted["diff"][0]["after"]["home"] == HOME, "the account's diff, then the paths'"
    done = account.with_directories(_ensure(root), directories)
    assert done["created"] == ["group", "user"] and done["changes"] == {str(base): ["created"], str(state): ["created"]}
    assert (state.stat().st_mode & 0o7777, base.stat().st_mode & 0o7777) == (0o750, 0o755)
    state.chmod(0o777)  # drift in a directory alone: the account is as it was, the call still reports and repairs it
    repaired = account.with_directories(_ensure(root), directories)
    assert (repaired["changed"], repaired["created"], repaired["repaired"]) == (True, [], [])
    assert list(repaired["changes"]) == [str(state)] and state.stat().st_mode & 0o7777 == 0o750
    again = account.with_directories(_ensure(root), directories, want_diff=True)
    assert (again["changed"], again["changes"], len(again["diff"])) == (False, {}, 1)


@pytest.mark.bad_input
def test_a_directory_whose_owner_does_not_exist_is_refused_by_name(tmp_path: Path) -> None:
    from ansible_collections.pivoice.voice_appliance.plugins.module_utils.paths import PathsError
    unchanged = {"changed": False, "created": [], "repaired": [], "diff": {"before": {}, "after": {}}}
    with pytest.raises(PathsError, match="owner 'no-such-voice-user' is no account on this machine"):
        account.with_directories(unchanged, [{"path": str(tmp_path / "state"), "owner": "no-such-voice-user", "mode": "0750"}])
    assert not (tmp_path / "state").exists()
