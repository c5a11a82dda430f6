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


@pytest.mark.parametrize("text,whole", [("ab" * 32, True), ("0123456789abcdef" * 4, True), ("AB" * 32, False),
                                        ("ab" * 32 + "\n", False), (" " + "ab" * 32, False), ("ab" * 31, False),
                                        ("ab" * 33, False), ("g" * 64, False), ("", False)])
def test_a_sha256_is_64_lowercase_hexadecimal_digits_as_is(text: str, whole: bool) -> None:
    assert durable.is_sha256(text) is whole and (durable.SHA256.fullmatch(text) is not None) is whole


def test_the_sha256_pattern_is_defined_once_for_the_plugins() -> None:
    """Filters and action plugins take durable.SHA256 (is_sha256); a copy of the pattern elsewhere could drift."""
    plugins = Path(durable.__file__).resolve().parents[1]
    copies = [str(path.relative_to(plugins)) for path in sorted(plugins.rglob("*.py")) if "{64}" in path.read_text()]
    assert copies == ["module_utils/durable.py"]


def _receipt(tmp_path: Path) -> Path:
    fact = tmp_path / "facts.d" / "deepspeech.fact"
    assert durable.write_receipt(str(fact), '{"flavour": "tflite"}\n')
    return fact


def _untouched(fact: Path, inode: int) -> None:
    assert fact.read_text() == '{"flavour": "tflite"}\n' and fact.stat().st_ino == inode
    assert sorted(p.name for p in fact.parent.iterdir()) == ["deepspeech.fact"], "no temporary file is left"


@pytest.mark.bad_input
@pytest.mark.parametrize("check", [False, True])
@pytest.mark.parametrize("content", ["", "flavour=tflite\n", '{"flavour": "tflite"', '{"x": NaN}', "[Infinity]"])
def test_a_receipt_that_is_no_json_is_refused_before_anything_is_written(tmp_path: Path, content: str, check: bool) -> None:
    fact = _receipt(tmp_path)
    inode = fact.stat().st_ino
    with pytest.raises(durable.ReceiptError, match=r"^the receipt {} must be a JSON document, and its content is none \(.+\); "
                                                   r"it was left as it was$".format(fact)):
        durable.write_receipt(str(fact), content, check)
    _untouched(fact, inode)
    missing = tmp_path / "other" / "x.fact"
    with pytest.raises(durable.ReceiptError):
        durable.write_receipt(str(missing), content, check)
    assert not missing.parent.exists()


@pytest.mark.bad_input
@pytest.mark.parametrize("written,message", [
    (b'{"flavour": "tfli', """reads back as '{"flavour": "tfli', not the content meant"""),  # cut short
    (b'{"flavour": "\xff"}\n', """reads back as '{"flavour": "\ufffd"}\\n', not the content meant"""),  # no UTF-8
    (b'{"flavour": "cuda"}\n', r"""reads back as '{"flavour": "cuda"}\n', not the content meant ('{"flavour": "amd64"}\n')"""),
    (b'{"flavour":"amd64"}', """reads back as '{"flavour":"amd64"}', not the content meant"""),  # the value meant, other bytes
])
def test_a_receipt_that_does_not_read_back_as_meant_leaves_the_old_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                       written: bytes, message: str) -> None:
    fact = _receipt(tmp_path)
    inode = fact.stat().st_ino
    # The write goes wrong under replace_file (the disk gives back other bytes): its check must catch it.
    real = durable.replace_file
    monkeypatch.setattr(durable, "replace_file", lambda dest, fill, *args, **kwargs: real(
        dest, lambda out: out.write(written), *args, **kwargs))
    with pytest.raises(durable.ReceiptError) as refused:
        durable.write_receipt(str(fact), '{"flavour": "amd64"}\n')
    assert str(refused.value).startswith("the receipt written for {} {}".format(fact, message))
    assert str(refused.value).endswith("; it was left as it was")
    _untouched(fact, inode)


def test_a_receipt_error_is_reported_where_the_modules_report_a_failed_write() -> None:
    """python_env and systemd_units both fail the task with the message of an OSError."""
    assert issubclass(durable.ReceiptError, OSError)


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
