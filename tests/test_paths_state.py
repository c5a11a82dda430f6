"""paths_state, a role's directories and leftovers in one call on the Pi: created with parents, owner, group
and mode (setgid included), drift repaired and reported per path, leftovers removed, check mode and
diff, and refusals that change nothing."""
from __future__ import annotations

import grp
import importlib.util
import os
import pwd
import re
import stat
from pathlib import Path
from typing import Any, Dict, List

import pytest

from ansible_collections.pivoice.voice_appliance.plugins.module_utils import paths as path_rules

REPO = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("paths_state_module", str(REPO / "plugins" / "modules" / "paths_state.py"))
assert _spec is not None and _spec.loader is not None
paths: Any = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(paths)

ME = pwd.getpwuid(os.getuid()).pw_name
MY_GROUP = grp.getgrgid(os.getgid()).gr_name


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _run(directories: List[Dict[str, Any]], absent: List[str] = ()) -> Dict[str, Any]:  # type: ignore[assignment]
    result = paths.plan(directories, list(absent))
    if result["changed"]:
        paths.apply(result)
    return result


def test_missing_directories_are_created_with_their_parents_owner_group_and_mode(tmp_path: Path) -> None:
    deep = tmp_path / "opt" / "va" / "wheels"
    slots = tmp_path / "etc" / "slots"
    result = _run([{"path": str(deep), "owner": ME, "group": MY_GROUP, "mode": "0750"},
                   {"path": str(slots), "owner": ME, "group": MY_GROUP, "mode": "2775"}])
    assert result["changes"] == {str(deep): ["created"], str(slots): ["created"]}
    assert deep.is_dir() and _mode(deep) == 0o750 and _mode(slots) == 0o2775
    assert _mode(deep.parent) == 0o755 and _mode(tmp_path / "etc") == 0o755  # parents as mkdir -p as root makes them
    again = paths.plan([{"path": str(deep), "owner": ME, "group": MY_GROUP, "mode": "0750"},
                        {"path": str(slots), "owner": ME, "group": MY_GROUP, "mode": "2775"}], [])
    assert again["changed"] is False and again["changes"] == {}


def test_a_parent_listed_after_its_child_is_made_once(tmp_path: Path) -> None:
    child, parent = tmp_path / "a" / "b", tmp_path / "a"
    result = _run([{"path": str(child), "owner": ME, "group": MY_GROUP, "mode": "0755"},
                   {"path": str(parent), "owner": ME, "group": MY_GROUP, "mode": "0711"}])
    assert set(result["changes"]) == {str(child), str(parent)}
    assert _mode(parent) == 0o711 and child.is_dir()


@pytest.mark.fault
def test_drifted_mode_and_group_are_repaired_and_named(tmp_path: Path) -> None:
    target = tmp_path / "state"
    target.mkdir(mode=0o777)
    os.chmod(str(target), 0o777)
    other_group = next((g.gr_name for g in grp.getgrall() if g.gr_gid != os.getgid()), None)
    if other_group is None or os.getuid() != 0:
        pytest.skip("needs root and a second group to move the directory's group")
    os.chown(str(target), -1, grp.getgrnam(other_group).gr_gid)
    result = _run([{"path": str(target), "owner": ME, "group": MY_GROUP, "mode": "0750"}])
    assert result["changes"] == {str(target): ["group", "mode"]}
    assert _mode(target) == 0o750 and target.stat().st_gid == os.getgid()
    assert paths.plan([{"path": str(target), "owner": ME, "group": MY_GROUP, "mode": "0750"}], [])["changed"] is False


def test_leftovers_are_removed_files_links_and_trees_and_missing_ones_are_no_change(tmp_path: Path) -> None:
    (tmp_path / "old.env").write_text("X=1\n")
    os.symlink("nowhere", str(tmp_path / "dangling"))
    (tmp_path / "tree" / "sub").mkdir(parents=True)
    (tmp_path / "tree" / "sub" / "f").write_text("x")
    gone = [str(tmp_path / name) for name in ("old.env", "dangling", "tree", "never-was")]
    result = _run([], gone)
    assert result["changes"] == {gone[0]: ["removed"], gone[1]: ["removed"], gone[2]: ["removed"]}
    assert not any(os.path.lexists(p) for p in gone)
    assert paths.plan([], gone)["changed"] is False


def test_a_link_to_a_directory_is_kept_and_its_target_is_set(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    os.symlink("real", str(tmp_path / "link"))
    result = _run([{"path": str(tmp_path / "link"), "owner": ME, "group": MY_GROUP, "mode": "0755"}])
    assert result["changes"] == {str(tmp_path / "link"): ["mode"]}
    assert os.path.islink(str(tmp_path / "link")) and _mode(real) == 0o755


def test_check_mode_plans_without_changing_anything(tmp_path: Path) -> None:
    (tmp_path / "leftover").write_text("x")
    result = paths.plan([{"path": str(tmp_path / "new"), "owner": ME, "group": MY_GROUP, "mode": "0755"}],
                        [str(tmp_path / "leftover")])
    assert result["changes"] == {str(tmp_path / "new"): ["created"], str(tmp_path / "leftover"): ["removed"]}
    assert not (tmp_path / "new").exists() and (tmp_path / "leftover").exists()
    before = {p: paths._state(p) for p in result["changes"]}
    shown = paths.diff(result, before)
    assert "{}: directory {}:{} 0755".format(tmp_path / "new", ME, MY_GROUP) in shown["after"]
    assert "{}: absent".format(tmp_path / "leftover") in shown["after"]
    assert "{}: absent".format(tmp_path / "new") in shown["before"]
    assert "{}: file".format(tmp_path / "leftover") in shown["before"]


def test_an_owner_and_group_not_given_are_left_as_they_are(tmp_path: Path) -> None:
    """As ansible.builtin.file with owner/group omitted: a Rhasspy profile directory keeps its user's ownership."""
    profile = tmp_path / "profiles" / "de"
    profile.mkdir(parents=True, mode=0o700)
    if os.getuid() == 0:
        os.chown(str(profile), 1, 1)  # daemon:daemon on Debian: not the running user
    before = profile.stat()
    result = _run([{"path": str(profile), "mode": "0755"}, {"path": str(tmp_path / "new"), "owner": "", "mode": "0750"}])
    assert result["changes"] == {str(profile): ["mode"], str(tmp_path / "new"): ["created"]}
    after = profile.stat()
    assert (after.st_uid, after.st_gid) == (before.st_uid, before.st_gid) and _mode(profile) == 0o755
    assert (tmp_path / "new").stat().st_uid == os.getuid() and _mode(tmp_path / "new") == 0o750


@pytest.mark.bad_input
@pytest.mark.parametrize("entry,absent,message", [
    ({"path": "relative/dir", "mode": "0755"}, [], "directory 'relative/dir': the path must be absolute"),
    ({"path": "/x", "mode": "755x"}, [], "directory /x: mode '755x' is not an octal mode"),
    ({"path": "/x", "mode": "u=rwx"}, [], "mode 'u=rwx' is not an octal mode"),
    ({"path": "/x", "mode": "17777"}, [], "mode '17777' is not an octal mode"),
    ({"path": "/x", "mode": ""}, [], "mode '' is not an octal mode"),
    ({"path": "/x", "mode": "0755", "owner": "no-such-account-here"}, [], "owner 'no-such-account-here' is no account"),
    ({"path": "/x", "mode": "0755", "group": "no-such-group-here"}, [], "group 'no-such-group-here' is no group"),
    (None, ["relative/file"], "absent path 'relative/file': the path must be absolute"),
])
def test_bad_requests_are_refused_with_the_value_and_the_fix(entry: Any, absent: List[str], message: str) -> None:
    with pytest.raises(paths.PathsError) as error:
        paths.plan([entry] if entry else [], absent)
    assert message in str(error.value)


@pytest.mark.bad_input
def test_a_file_or_dangling_link_where_a_directory_belongs_is_refused_and_nothing_changes(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("keep me")
    os.symlink("nowhere", str(tmp_path / "dangling"))
    (tmp_path / "leftover").write_text("x")
    for name, message in (("file", "exists but is not a directory; move it away"), ("dangling", "a link to nothing")):
        with pytest.raises(paths.PathsError) as error:
            paths.plan([{"path": str(tmp_path / "new"), "owner": ME, "group": MY_GROUP, "mode": "0755"},
                        {"path": str(tmp_path / name), "owner": ME, "group": MY_GROUP, "mode": "0755"}],
                       [str(tmp_path / "leftover")])
        assert str(tmp_path / name) in str(error.value) and message in str(error.value)
    assert not (tmp_path / "new").exists() and (tmp_path / "leftover").exists()
    assert (tmp_path / "file").read_text() == "keep me"


@pytest.mark.bad_input
def test_a_path_both_kept_and_removed_is_refused(tmp_path: Path) -> None:
    with pytest.raises(paths.PathsError) as error:
        paths.plan([{"path": str(tmp_path), "owner": ME, "group": MY_GROUP, "mode": "0755"}], [str(tmp_path)])
    assert "is both a directory to keep and a path to remove" in str(error.value)


@pytest.mark.parametrize("value, mode", [("0755", 0o755), ("2775", 0o2775), ("644", 0o644), (0o640, 0o640), (0, 0), ("0o755", 0o755)])
def test_a_mode_is_an_octal_string_or_the_number_yaml_makes_of_an_unquoted_one(value: Any, mode: int) -> None:
    assert path_rules.octal_mode(value, "file /x") == mode


@pytest.mark.bad_input
@pytest.mark.parametrize("value", [True, None, "", "u=rwx", "9", 0o17777, -1, 7.5])
def test_a_mode_that_is_no_octal_mode_is_refused_naming_it(value: Any) -> None:
    with pytest.raises(path_rules.PathsError, match=r"^file /x: mode {} is not an octal mode such as \"0755\" .*quoted string$".format(
            re.escape(repr(value)))):
        path_rules.octal_mode(value, "file /x")
