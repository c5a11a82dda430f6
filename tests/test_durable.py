"""module_utils/durable.py's version_dir: which names a link (current, previous) may point at; write_receipt,
the local fact a module writes once what it names is live (python_env, systemd_units); and replace_file's exclusive
write, a seed that never replaces a file (rhasspy_profile).

current_link and model_links both ask it before they change anything; their own tests hold one case each
proving that they do. Here, on a real directory of versions beside the links: every kind of name refused,
with the value and the versions there in the message.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from ansible_collections.pivoice.voice_appliance.plugins.module_utils import durable
from ansible_collections.pivoice.voice_appliance.plugins.module_utils.durable import VersionError, version_dir

LINKS = ("current", "previous")


@pytest.fixture()
def versions(tmp_path: Path) -> Path:
    """Two versions, the links, a hidden work directory, a tarball and a link that looks like a version."""
    root = tmp_path / "versions"
    for name in ("v-2", "v-1", ".v-3.tmp"):
        (root / name).mkdir(parents=True)
    (root / "v-1.tar.gz").write_bytes(b"tar")
    for link in LINKS + ("v-alias",):
        (root / link).symlink_to("v-1")
    return root


def test_a_version_directory_is_its_path(versions: Path) -> None:
    assert version_dir(str(versions), "v-2", links=LINKS) == str(versions / "v-2")


@pytest.mark.bad_input
@pytest.mark.parametrize("name", ["", ".", "..", "../etc", "v-2/bin", "/etc", ".v-3.tmp", "current", "previous"])
def test_a_name_that_cannot_be_a_version_is_refused(versions: Path, name: str) -> None:
    with pytest.raises(VersionError) as refused:
        version_dir(str(versions), name, "current", LINKS)
    assert str(refused.value) == ("current must be the name of a version directory in {} (not empty, not hidden, no '/', "
                                  "not the links current or previous); got {!r}".format(versions, name))


@pytest.mark.bad_input
@pytest.mark.parametrize("name", ["v-9", "v-1.tar.gz", "v-alias"])
def test_a_name_that_is_no_version_directory_is_refused_naming_the_versions_there(versions: Path, name: str) -> None:
    with pytest.raises(VersionError) as refused:
        version_dir(str(versions), name, links=LINKS)
    assert str(refused.value) == ("version {!r} is not a version in {} (no such directory; the versions there: v-1, v-2); "
                                  "nothing was changed".format(name, versions))


@pytest.mark.bad_input
def test_only_the_links_given_are_reserved_and_an_empty_directory_says_so(tmp_path: Path) -> None:
    with pytest.raises(VersionError, match=r"'previous' is not a version in .* \(no such directory; there are no versions\)"):
        version_dir(str(tmp_path), "previous")  # (links: current only)
    with pytest.raises(VersionError, match="there are no versions"):
        version_dir(str(tmp_path / "missing"), "v-1")


def test_check_mode_accepts_a_version_an_earlier_task_would_make_but_not_something_else_in_its_place(versions: Path) -> None:
    assert version_dir(str(versions), "v-9", predict=True) == os.path.join(str(versions), "v-9")
    assert version_dir(str(versions / "missing"), "v-9", predict=True) == str(versions / "missing" / "v-9")
    with pytest.raises(VersionError, match="'v-1.tar.gz' is not a version"):
        version_dir(str(versions), "v-1.tar.gz", predict=True)
    with pytest.raises(VersionError, match="must be the name of a version directory"):
        version_dir(str(versions), "../v-9", predict=True)


def test_a_receipt_is_written_when_it_differs_and_check_mode_only_predicts(tmp_path: Path) -> None:
    fact = tmp_path / "facts.d" / "wyoming_asr.fact"
    assert durable.write_receipt(str(fact), '{"enabled": true}\n', check=True) and not fact.parent.exists()
    assert durable.write_receipt(str(fact), '{"enabled": true}\n') and fact.read_text() == '{"enabled": true}\n'
    assert fact.stat().st_mode & 0o7777 == 0o644 and sorted(p.name for p in fact.parent.iterdir()) == ["wyoming_asr.fact"]
    assert not durable.write_receipt(str(fact), '{"enabled": true}\n') and not durable.write_receipt(str(fact), '{"enabled": true}\n', True)
    fact.chmod(0o600)
    assert durable.write_receipt(str(fact), '{"enabled": true}\n', check=True) and fact.stat().st_mode & 0o7777 == 0o600
    assert durable.write_receipt(str(fact), '{"enabled": true}\n') and fact.stat().st_mode & 0o7777 == 0o644
    inode = fact.stat().st_ino
    assert durable.write_receipt(str(fact), '{"enabled": false}\n') and fact.read_text() == '{"enabled": false}\n'
    assert fact.stat().st_ino != inode, "replaced by a rename, never rewritten in place"


def test_an_exclusive_write_makes_a_missing_file_and_never_replaces_one(tmp_path: Path) -> None:
    dest = tmp_path / "sentences.ini"
    durable.replace_file(str(dest), lambda out: out.write(b"[Test]\n"), 0o640, exclusive=True)
    assert dest.read_bytes() == b"[Test]\n" and dest.stat().st_mode & 0o7777 == 0o640 and dest.stat().st_nlink == 1
    for there in ("a file", "a dangling link"):
        if there == "a dangling link":
            dest.unlink()
            dest.symlink_to(tmp_path / "gone")
        with pytest.raises(FileExistsError):
            durable.replace_file(str(dest), lambda out: out.write(b"new\n"), 0o644, exclusive=True)
        assert sorted(os.listdir(str(tmp_path))) == ["sentences.ini"], "the temporary file was left behind"
    assert os.readlink(str(dest)) == str(tmp_path / "gone")


def test_an_exclusive_write_without_hard_links_renames_after_a_last_look(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_links(src: str, dst: str) -> None:
        raise PermissionError(1, "Operation not permitted")  # what link() says on a filesystem without hard links

    monkeypatch.setattr(durable.os, "link", no_links)
    dest = tmp_path / "sentences.ini"
    durable.replace_file(str(dest), lambda out: out.write(b"[Test]\n"), 0o644, exclusive=True)
    assert dest.read_bytes() == b"[Test]\n" and sorted(os.listdir(str(tmp_path))) == ["sentences.ini"]
    with pytest.raises(FileExistsError):
        durable.replace_file(str(dest), lambda out: out.write(b"new\n"), 0o644, exclusive=True)
    assert dest.read_bytes() == b"[Test]\n" and sorted(os.listdir(str(tmp_path))) == ["sentences.ini"]
