"""deepspeech_model's `.verified` marker: trusted only for the files it vouches for, written only after they are durable."""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from pathlib import Path
from typing import Any, Dict, List

import pytest

from ansible_collections.pivoice.voice_appliance.plugins.module_utils import durable

MODULE_PATH = Path(__file__).resolve().parents[1] / "plugins" / "modules" / "model_marker.py"
_spec = importlib.util.spec_from_file_location("model_marker_module", str(MODULE_PATH))
marker = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(marker)  # type: ignore[union-attr]

GRAPH = b"TFL3" * 1000
ALPHABET = "a\nb\n".encode()


def _version(tmp_path: Path) -> Dict[str, Dict[str, Any]]:
    """A version directory with two files, described like the role describes staged files (stat results)."""
    version = tmp_path / "fixture_model-1-abc"
    version.mkdir()
    files: Dict[str, Dict[str, Any]] = {}
    for kind, name, data in (("tflite", "output_graph.tflite", GRAPH), ("alphabet", "alphabet.txt", ALPHABET)):
        (version / name).write_bytes(data)
        files[kind] = {"path": "/controller/cache/fixture_model/1/" + name, "checksum": hashlib.sha256(data).hexdigest(),
                       "size": len(data), "mode": "0644"}
    return files


def test_a_sealed_version_is_verified(tmp_path: Path) -> None:
    files = _version(tmp_path)
    path = str(tmp_path / "fixture_model-1-abc")
    assert durable.marker_holds(path, files) == (False, "no marker")
    marker.seal(path, files)
    assert durable.marker_holds(path, files) == (True, "")
    recorded = json.loads((tmp_path / "fixture_model-1-abc" / ".verified").read_text())
    assert recorded == {kind: spec["checksum"] for kind, spec in files.items()}, "the marker keeps its format"
    assert oct((tmp_path / "fixture_model-1-abc" / ".verified").stat().st_mode & 0o777) == "0o644"
    assert sorted(p.name for p in (tmp_path / "fixture_model-1-abc").iterdir()) == [".verified", "alphabet.txt", "output_graph.tflite"], \
        "no temporary file is left behind"


@pytest.mark.fault
def test_the_files_and_directory_are_fsynced_before_the_marker_appears(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = _version(tmp_path)
    path = tmp_path / "fixture_model-1-abc"
    events: List[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append("fsync " + os.path.basename(os.readlink("/proc/self/fd/%d" % fd)))
        real_fsync(fd)

    def replace(src: str, dst: str) -> None:
        events.append("rename " + os.path.basename(dst))
        real_replace(src, dst)

    monkeypatch.setattr(marker.os, "fsync", fsync)
    monkeypatch.setattr(marker.os, "replace", replace)
    marker.seal(str(path), files)
    rename = events.index("rename .verified")
    before = events[:rename]
    assert "fsync output_graph.tflite" in before and "fsync alphabet.txt" in before, events
    assert "fsync fixture_model-1-abc" in before, "the directory entries are durable before the marker: %s" % events
    assert any(e.startswith("fsync .verified.") for e in before), "the marker's own bytes are durable before the rename: %s" % events
    assert events[rename + 1:] == ["fsync fixture_model-1-abc"], "the rename itself is made durable: %s" % events


@pytest.mark.fault
@pytest.mark.parametrize("damage,reason", [
    (lambda v: (v / "output_graph.tflite").write_bytes(b""), "tflite file {v}/output_graph.tflite has 0 bytes, 4000 were verified"),
    (lambda v: (v / "output_graph.tflite").write_bytes(GRAPH[:100]), "has 100 bytes, 4000 were verified"),
    (lambda v: (v / "alphabet.txt").unlink(), "alphabet file {v}/alphabet.txt is missing"),
    (lambda v: ((v / "alphabet.txt").unlink(), (v / "alphabet.txt").symlink_to("/etc/hostname")), "is not a regular file"),
    (lambda v: (v / ".verified").write_text(""), "unreadable marker"),
    (lambda v: (v / ".verified").write_text('{"tflite": "'), "unreadable marker"),
    (lambda v: (v / ".verified").write_text('{"tflite": "0000"}'), "names other files than the staged ones"),
    (lambda v: (v / ".verified").write_text("[]"), "names other files than the staged ones"),
])
def test_a_marker_that_does_not_hold_is_not_trusted(tmp_path: Path, damage: Any, reason: str) -> None:
    """A power loss (an emptied or short file, a torn marker) or tampering: the version is proved again."""
    files = _version(tmp_path)
    version = tmp_path / "fixture_model-1-abc"
    marker.seal(str(version), files)
    damage(version)
    verified, why = durable.marker_holds(str(version), files)
    assert not verified
    assert reason.format(v=version) in why, why


def test_a_marker_for_other_bytes_is_not_trusted(tmp_path: Path) -> None:
    files = _version(tmp_path)
    version = str(tmp_path / "fixture_model-1-abc")
    marker.seal(version, files)
    other = dict(files, tflite=dict(files["tflite"], checksum="f" * 64))
    assert durable.marker_holds(version, other) == (False, "marker %s/.verified names other files than the staged ones" % version)


@pytest.mark.fault
def test_sealing_a_version_with_a_missing_file_writes_no_marker(tmp_path: Path) -> None:
    files = _version(tmp_path)
    version = tmp_path / "fixture_model-1-abc"
    (version / "alphabet.txt").unlink()
    with pytest.raises(FileNotFoundError):
        marker.seal(str(version), files)
    assert not (version / ".verified").exists()
    assert sorted(p.name for p in version.iterdir()) == ["output_graph.tflite"]


def test_the_look_up_is_the_one_model_links_switches_by(tmp_path: Path) -> None:
    """model_links (require_marker) trusts a marker by the same code: module_utils/durable.py's marker_holds."""
    assert marker.marker_holds is durable.marker_holds and marker.MARKER == durable.MARKER == ".verified"
    files = _version(tmp_path)
    version = str(tmp_path / "fixture_model-1-abc")
    marker.seal(version, files)
    assert durable.marker_holds(version, files) == (True, "")
    assert durable.marker_holds(str(tmp_path / "not-copied"), files) == (False, "no marker")


@pytest.mark.bad_input
@pytest.mark.parametrize("files,message", [
    ({"tflite": {"checksum": "ab", "size": 3}}, "files.tflite must have name (or path), checksum and size, got {'checksum': 'ab', 'size': 3}"),
    ({"tflite": {"name": "g.tflite", "checksum": "ab", "size": None}}, "files.tflite.size must be a number of bytes, got None"),
    ({}, "files must be a dict naming at least one file (file kind: name or path, checksum, size), as the staged files are "
         "described; got {}"),
])
def test_files_that_cannot_be_checked_are_refused_naming_them(files: Any, message: str) -> None:
    from ansible_collections.pivoice.voice_appliance.plugins.module_utils.durable import marker_files_error

    assert marker_files_error(files) == message


def test_files_as_the_role_stages_them_are_accepted(tmp_path: Path) -> None:
    from ansible_collections.pivoice.voice_appliance.plugins.module_utils.durable import marker_files_error

    assert marker_files_error(_version(tmp_path)) == ""
    assert marker_files_error({"scorer": {"name": "kenlm.scorer", "checksum": "ab", "size": "12"}}) == ""
