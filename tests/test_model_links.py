"""model_links, the one owner of the model links current and previous: switch, rollback, restore.

Each action on a real models directory (versions as directories, .verified markers, relative links):
the links afterwards, what is pruned or unmarked, atomic replacement, and refusals that change nothing.
"""
from __future__ import annotations

import importlib.util
import os
import time
from pathlib import Path
from typing import Any, Dict

import pytest

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
