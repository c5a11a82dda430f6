"""model_links, the one owner of the model links current and previous: switch, rollback, restore.

Each action on a real models directory (versions as directories, .verified markers, relative links):
the links afterwards, what is pruned or unmarked, atomic replacement, and refusals that change nothing; and the
switch that first checks the version's marker as model_marker does (require_marker), switching only to a version
whose marker holds.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Dict

import pytest

from ansible_collections.pivoice.voice_appliance.plugins.module_utils import durable

REPO = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("model_links_module", str(REPO / "plugins" / "modules" / "model_links.py"))
assert _spec is not None and _spec.loader is not None
links: Any = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(links)


def _models(tmp_path: Path, *versions: str, verified: tuple = (), current: str = "", previous: str = "") -> Path:
    models = tmp_path / "models"
    models.mkdir(parents=True)
    for age, version in enumerate(versions):  # the first given is the newest
        (models / version).mkdir()
        (models / version / "output_graph.tflite").write_bytes(b"x")
        if version in verified:
            (models / version / ".verified").write_text("{}")
        stamp = time.time() - 100 * (age + 1)
        os.utime(str(models / version), (stamp, stamp))
    if current:
        os.symlink(current, str(models / "current"))
    if previous:
        os.symlink(previous, str(models / "previous"))
    return models


def _run(models: Path, action: str, **kw: Any) -> Dict[str, Any]:
    result = links.plan(str(models), action, **kw)
    if result["changed"]:
        links.apply(str(models), result)
    return result


def _state(models: Path) -> Dict[str, str]:
    return {"current": links.read_link(str(models), "current"), "previous": links.read_link(str(models), "previous"),
            "versions": " ".join(sorted(p.name for p in models.iterdir() if p.is_dir() and not p.is_symlink()))}


def test_switch_keeps_the_working_version_as_previous_and_prunes_beyond_keep(tmp_path: Path) -> None:
    models = _models(tmp_path, "m-3", "m-2", "m-1", "m-0", verified=("m-2", "m-1", "m-0"), current="m-2", previous="m-1")
    result = _run(models, "switch", version="m-3", keep=1)
    assert result["before"] == {"current": "m-2", "previous": "m-1"}
    assert (result["current"], result["previous"], result["removed"]) == ("m-3", "m-2", ["m-0", "m-1"])
    assert _state(models) == {"current": "m-3", "previous": "m-2", "versions": "m-2 m-3"}
    assert (models / "current" / "output_graph.tflite").is_file() and not any(p.name.startswith(".") for p in models.iterdir())


def test_switch_with_a_larger_keep_keeps_the_newest_others(tmp_path: Path) -> None:
    models = _models(tmp_path, "m-3", "m-2", "m-1", "m-0", current="m-2", previous="m-1")
    assert _run(models, "switch", version="m-3", keep=2)["removed"] == ["m-0"]
    assert _run(_models(tmp_path / "all", "a", "b", "c", current="b"), "switch", version="a", keep=0)["removed"] == []


def test_switch_to_the_current_version_changes_nothing(tmp_path: Path) -> None:
    models = _models(tmp_path, "m-2", "m-1", current="m-2", previous="m-1")
    before = os.lstat(str(models / "current")).st_ino
    result = _run(models, "switch", version="m-2", keep=1)
    assert not result["changed"] and os.lstat(str(models / "current")).st_ino == before


def test_the_first_switch_makes_no_previous(tmp_path: Path) -> None:
    models = _models(tmp_path, "m-1")
    assert _run(models, "switch", version="m-1", keep=1)["changed"]
    assert _state(models) == {"current": "m-1", "previous": "", "versions": "m-1"}


@pytest.mark.bad_input
def test_switch_to_a_link_is_refused(tmp_path: Path) -> None:
    # Which names are versions is module_utils/durable.py's version_dir (tests/test_durable.py): here, that the
    # module asks it, with both its links.
    models = _models(tmp_path, "m-1", current="m-1", previous="m-1")
    with pytest.raises(links.VersionError, match="version must be the name of a version directory in .*, not the links "
                                                 "current or previous\\); got 'previous'"):
        links.plan(str(models), "switch", version="previous", keep=1)
    assert _state(models)["current"] == "m-1"


def test_rollback_swaps_and_a_second_one_undoes_it(tmp_path: Path) -> None:
    models = _models(tmp_path, "m-2", "m-1", verified=("m-2", "m-1"), current="m-2", previous="m-1")
    _run(models, "rollback")
    assert _state(models)["current"] == "m-1" and _state(models)["previous"] == "m-2"
    _run(models, "rollback")
    assert _state(models)["current"] == "m-2" and _state(models)["previous"] == "m-1"


@pytest.mark.bad_input
@pytest.mark.parametrize("previous,verified", [("", ()), ("m-1", ())])
def test_rollback_without_a_verified_previous_is_refused_and_changes_nothing(tmp_path: Path, previous: str, verified: tuple) -> None:
    models = _models(tmp_path, "m-2", "m-1", verified=verified + ("m-2",), current="m-2", previous=previous)
    before = _state(models)
    with pytest.raises(links.LinksError, match="no verified previous model version in .* to roll back to .* it keeps m-2"):
        links.plan(str(models), "rollback")
    assert _state(models) == before


@pytest.mark.fault
def test_restore_after_a_failed_rollout_puts_both_links_back_and_unmarks_the_failed_version(tmp_path: Path) -> None:
    # The rollout switched to m-3 (previous m-2), and m-3 failed its verification.
    models = _models(tmp_path, "m-3", "m-2", "m-1", verified=("m-3", "m-2", "m-1"), current="m-3", previous="m-2")
    result = _run(models, "restore", current="m-2", previous="m-1")
    assert (result["unverified"], result["previous_gone"]) == ("m-3", "")
    assert _state(models) == {"current": "m-2", "previous": "m-1", "versions": "m-1 m-2 m-3"}  # the failed one stays for a look
    assert not (models / "m-3" / ".verified").exists() and (models / "m-2" / ".verified").exists()
    assert not _run(models, "restore", current="m-2", previous="m-1")["changed"]  # again: nothing to do


@pytest.mark.fault
def test_restore_of_a_pruned_previous_removes_the_link_instead_of_leaving_it_dangling(tmp_path: Path) -> None:
    models = _models(tmp_path, "m-3", "m-2", verified=("m-3", "m-2"), current="m-3", previous="m-2")
    result = _run(models, "restore", current="m-2", previous="m-1")  # m-1 was pruned by the switch to m-3
    assert result["previous_gone"] == "m-1" and _state(models)["previous"] == "" and _state(models)["current"] == "m-2"
    assert not os.path.lexists(str(models / "previous"))


@pytest.mark.bad_input
def test_restore_to_a_version_that_is_gone_is_refused(tmp_path: Path) -> None:
    models = _models(tmp_path, "m-3", current="m-3")
    with pytest.raises(links.VersionError, match="current 'm-2' is not a version in .* the versions there: m-3\\)"):
        links.plan(str(models), "restore", current="m-2", previous="")


@pytest.mark.fault
def test_a_leftover_temporary_link_from_a_crash_is_replaced(tmp_path: Path) -> None:
    models = _models(tmp_path, "m-2", "m-1", current="m-1")
    os.symlink("m-1", str(models / ".current.new-{}".format(os.getpid())))
    _run(models, "switch", version="m-2", keep=0)
    assert _state(models)["current"] == "m-2" and sorted(p.name for p in models.iterdir() if p.name.startswith(".")) == []


def test_check_mode_plans_without_touching_anything(tmp_path: Path) -> None:
    models = _models(tmp_path, "m-3", "m-2", "m-1", current="m-2", previous="m-1")
    before = _state(models)
    result = links.plan(str(models), "switch", version="m-3", keep=1)
    assert result["changed"] and result["removed"] == ["m-1"] and _state(models) == before


# switch with require_marker: the role's one module run on a converged Pi (look up the marker, then switch).

_marker_spec = importlib.util.spec_from_file_location("model_marker_for_links", str(REPO / "plugins" / "modules" / "model_marker.py"))
assert _marker_spec is not None and _marker_spec.loader is not None
marker: Any = importlib.util.module_from_spec(_marker_spec)
_marker_spec.loader.exec_module(marker)

GRAPH = b"TFL3" * 1000
ALPHABET = b"a\nb\n"


def _proved(models: Path, version: str, graph: bytes = GRAPH) -> Dict[str, Dict[str, Any]]:
    """Copy a version's files into it and seal it as the role does; its files described as the role stages them."""
    (models / version).mkdir(exist_ok=True)
    files: Dict[str, Dict[str, Any]] = {}
    for kind, name, data in (("tflite", "output_graph.tflite", graph), ("alphabet", "alphabet.txt", ALPHABET)):
        (models / version / name).write_bytes(data)
        files[kind] = {"path": "/controller/cache/m/3/" + name, "checksum": hashlib.sha256(data).hexdigest(),
                       "size": len(data), "mode": "0644"}
    marker.seal(str(models / version), files)
    return files


def _listing(models: Path) -> Dict[str, Any]:
    """Everything a switch could change: the links (and their inodes), the versions and their files."""
    return {"links": {name: (os.readlink(str(models / name)), os.lstat(str(models / name)).st_ino)
                      for name in ("current", "previous") if (models / name).is_symlink()},
            "files": sorted(str(p.relative_to(models)) for p in models.rglob("*"))}


def test_switch_with_a_marker_that_holds_switches_and_prunes(tmp_path: Path) -> None:
    models = _models(tmp_path, "m-2", "m-1", "m-0", verified=("m-2", "m-1", "m-0"), current="m-2", previous="m-1")
    files = _proved(models, "m-3")
    result = _run(models, "switch", version="m-3", keep=1, require_marker=files)
    assert (result["verified"], result["reason"], result["current_target"]) == (True, "", "m-2")
    assert (result["changed"], result["current"], result["previous"], result["removed"]) == (True, "m-3", "m-2", ["m-0", "m-1"])
    assert _state(models) == {"current": "m-3", "previous": "m-2", "versions": "m-2 m-3"}


def test_switch_with_a_marker_to_the_current_version_changes_nothing(tmp_path: Path) -> None:
    """A converged Pi: the look-up and the switch in one run, and nothing changes."""
    models = _models(tmp_path, "m-2", verified=("m-2",), current="m-3", previous="m-2")
    files = _proved(models, "m-3")
    before = _listing(models)
    result = _run(models, "switch", version="m-3", keep=1, require_marker=files)
    assert (result["verified"], result["reason"], result["current_target"], result["changed"]) == (True, "", "m-3", False)
    assert _listing(models) == before


def test_a_removed_current_link_is_put_back_by_the_switch_with_a_marker(tmp_path: Path) -> None:
    models = _models(tmp_path, "m-2", verified=("m-2",), previous="m-2")
    files = _proved(models, "m-3")
    result = _run(models, "switch", version="m-3", keep=1, require_marker=files)
    assert (result["verified"], result["current_target"], result["changed"]) == (True, "", True)
    assert _state(models) == {"current": "m-3", "previous": "m-2", "versions": "m-2 m-3"}


def _truncate(version: Path) -> None:
    (version / "output_graph.tflite").write_bytes(GRAPH[:100])


def _resum(version: Path) -> None:
    (version / ".verified").write_text(json.dumps({"tflite": "0" * 64, "alphabet": "0" * 64}))


@pytest.mark.fault
@pytest.mark.parametrize("damage,reason", [
    (lambda v: (v / ".verified").unlink(), "no marker"),
    (lambda v: shutil.rmtree(str(v)), "no marker"),  # not copied yet: a new version (its dry run too)
    (_resum, "marker {v}/.verified names other files than the staged ones"),
    (_truncate, "tflite file {v}/output_graph.tflite has 100 bytes, 4000 were verified"),
    (lambda v: (v / "output_graph.tflite").write_bytes(b""), "tflite file {v}/output_graph.tflite has 0 bytes, 4000 were verified"),
    (lambda v: (v / "alphabet.txt").unlink(), "alphabet file {v}/alphabet.txt is missing"),
    (lambda v: (v / ".verified").write_text('{"tflite": "'), "unreadable marker {v}/.verified"),
], ids=["no-marker", "not-copied", "other-sums", "short-file", "emptied-file", "missing-file", "torn-marker"])
def test_switch_with_a_marker_that_does_not_hold_changes_nothing_and_says_why(tmp_path: Path, damage: Any, reason: str) -> None:
    models = _models(tmp_path, "m-2", "m-1", "m-0", verified=("m-2", "m-1", "m-0"), current="m-2", previous="m-1")
    files = _proved(models, "m-3")
    version = models / "m-3"
    damage(version)
    before = _listing(models)
    result = _run(models, "switch", version="m-3", keep=1, require_marker=files)
    assert (result["verified"], result["current_target"], result["changed"]) == (False, "m-2", False)
    assert reason.format(v=version) in result["reason"], result["reason"]
    assert result["reason"] == durable.marker_holds(str(version), files)[1], "the reason the marker check gives"
    assert (result["current"], result["previous"], result["removed"]) == ("m-2", "m-1", []), "nothing switched or pruned"
    assert _listing(models) == before


def test_a_marker_for_other_files_is_not_trusted_by_the_switch(tmp_path: Path) -> None:
    """The marker holds for the files proved before, not for the ones staged now (same sizes, other sums)."""
    models = _models(tmp_path, "m-2", verified=("m-2",), current="m-2")
    files = _proved(models, "m-3")
    staged = dict(files, tflite=dict(files["tflite"], checksum="f" * 64))
    before = _listing(models)
    result = _run(models, "switch", version="m-3", keep=1, require_marker=staged)
    assert not result["verified"] and result["reason"] == "marker {}/.verified names other files than the staged ones".format(models / "m-3")
    assert _listing(models) == before


def test_check_mode_of_the_switch_with_a_marker_plans_without_touching_anything(tmp_path: Path) -> None:
    models = _models(tmp_path, "m-2", "m-1", verified=("m-2", "m-1"), current="m-2", previous="m-1")
    files = _proved(models, "m-3")
    before = _listing(models)
    result = links.plan(str(models), "switch", version="m-3", keep=1, require_marker=files)
    assert (result["verified"], result["changed"], result["removed"]) == (True, True, ["m-1"])
    assert _listing(models) == before
    # A dry run of a new version on a Pi that has no models directory yet: an answer, no error.
    fresh = tmp_path / "fresh" / "models"
    result = links.plan(str(fresh), "switch", version="m-3", keep=1, require_marker=files)
    assert (result["verified"], result["reason"], result["current_target"], result["changed"]) == (False, "no marker", "", False)
    assert not fresh.exists()


def test_a_switch_without_a_marker_says_nothing_of_one(tmp_path: Path) -> None:
    """The plain switch after the role proved a version (and rollback, restore) does not look at markers."""
    models = _models(tmp_path, "m-2", "m-1", current="m-1")
    result = _run(models, "switch", version="m-2", keep=1)
    assert result["changed"] and not {"verified", "reason", "current_target"} & set(result)


@pytest.mark.bad_input
@pytest.mark.parametrize("files,message", [
    ({}, "require_marker must be a dict naming at least one file (file kind: name or path, checksum, size), as the staged files "
         "are described; got {}"),
    ({"tflite": {"name": "output_graph.tflite", "checksum": "ab"}},
     "require_marker.tflite must have name (or path), checksum and size, got {'name': 'output_graph.tflite', 'checksum': 'ab'}"),
    ({"tflite": "output_graph.tflite"}, "require_marker.tflite must have name (or path), checksum and size, got 'output_graph.tflite'"),
    ({"tflite": {"name": "output_graph.tflite", "checksum": "ab", "size": "big"}},
     "require_marker.tflite.size must be a number of bytes, got 'big'"),
], ids=["empty", "no-size", "no-dict", "size-not-a-number"])
def test_a_marker_requirement_that_names_no_files_is_refused_and_changes_nothing(tmp_path: Path, files: Any, message: str) -> None:
    models = _models(tmp_path, "m-2", verified=("m-2",), current="m-2")
    _proved(models, "m-3")
    before = _listing(models)
    with pytest.raises(links.LinksError) as refused:
        links.plan(str(models), "switch", version="m-3", keep=1, require_marker=files)
    assert str(refused.value) == message
    assert _listing(models) == before


@pytest.mark.bad_input
def test_a_marker_requirement_with_another_action_is_refused(tmp_path: Path) -> None:
    models = _models(tmp_path, "m-2", "m-1", verified=("m-2", "m-1"), current="m-2", previous="m-1")
    files = _proved(models, "m-3")
    with pytest.raises(links.LinksError, match="require_marker goes with action=switch only .* got action=rollback. "
                                               "Leave require_marker out."):
        links.plan(str(models), "rollback", require_marker=files)
    assert _state(models)["current"] == "m-2"


@pytest.mark.bad_input
def test_a_marker_requirement_does_not_let_a_link_be_switched_to(tmp_path: Path) -> None:
    models = _models(tmp_path, "m-2", verified=("m-2",), current="m-2")
    files = _proved(models, "m-3")
    with pytest.raises(links.VersionError, match="got 'current'"):
        links.plan(str(models), "switch", version="current", keep=1, require_marker=files)
    assert _state(models)["current"] == "m-2"
