"""module_utils/durable.py's version_dir: which names a link (current, previous) may point at; and write_receipt,
the local fact a module writes once what it names is live (python_env, systemd_units).

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

