"""voice_verify's rollout state: what a rollout comes back to, kept on the Pi until the Pi verified or was restored."""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from pathlib import Path

import pytest

MODULE_PATH = Path(__file__).resolve().parents[1] / "plugins" / "modules" / "rollout_state.py"
_spec = importlib.util.spec_from_file_location("rollout_state_module", str(MODULE_PATH))
state = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(state)  # type: ignore[union-attr]


@pytest.fixture()
def pi(tmp_path: Path) -> Path:
    models = tmp_path / "models"
    models.mkdir()
    for version in ("m-1-aaa", "m-2-bbb"):
        (models / version).mkdir()
    (models / "current").symlink_to("m-2-bbb")
    (models / "previous").symlink_to("m-1-aaa")
    (tmp_path / "generated.scorer").write_bytes(b"scorer one")
    return tmp_path


def _remember(pi: Path, write: bool = True) -> dict:
    return state.remember(str(pi / "models" / ".rollout-remembered.json"), str(pi / "models"), str(pi / "generated.scorer"), write)


def test_the_state_is_recorded_root_only_and_returned(pi: Path) -> None:
    got = _remember(pi)
    assert got["changed"] and not got["resumed"]
    assert (got["model"], got["previous"]) == ("m-2-bbb", "m-1-aaa")
    assert got["scorer_sha256"] == hashlib.sha256(b"scorer one").hexdigest()
    record = pi / "models" / ".rollout-remembered.json"
    assert oct(record.stat().st_mode & 0o777) == "0o600"
    assert json.loads(record.read_text()) == {k: got[k] for k in state.FIELDS}
    assert [p.name for p in (pi / "models").iterdir() if p.name.startswith(".rollout-state.")] == [], "no temporary file left"


@pytest.mark.fault
def test_an_interrupted_rollout_comes_back_to_the_state_recorded_before_it(pi: Path) -> None:
    """A Pi lost after its model switched: the next rollout's state to come back to is the one before."""
    first = _remember(pi)
    (pi / "models" / "current").unlink()
    (pi / "models" / "current").symlink_to("m-3-ccc")  # half-changed by the lost rollout
    (pi / "models" / "previous").unlink()
    (pi / "models" / "previous").symlink_to("m-2-bbb")
    (pi / "generated.scorer").write_bytes(b"scorer two")
    again = _remember(pi)
    assert again["resumed"] and not again["changed"]
    assert {k: again[k] for k in state.FIELDS} == {k: first[k] for k in state.FIELDS}


def test_forgetting_removes_the_record_and_the_next_rollout_starts_afresh(pi: Path) -> None:
    record = str(pi / "models" / ".rollout-remembered.json")
    _remember(pi)
    assert state.forget(record) is True
    assert state.forget(record) is False
    assert not _remember(pi)["resumed"]


def test_check_mode_writes_nothing(pi: Path) -> None:
    assert _remember(pi, write=False)["changed"]
    assert not (pi / "models" / ".rollout-remembered.json").exists()
    _remember(pi)
    assert state.forget(str(pi / "models" / ".rollout-remembered.json"), write=False) is True
    assert (pi / "models" / ".rollout-remembered.json").exists()


@pytest.mark.bad_input
@pytest.mark.parametrize("content", ["", "{", "[]", '{"model": 1, "previous": "", "scorer_sha256": "", "since": ""}',
                                     '{"model": "m-1"}'])
def test_a_record_that_is_not_one_is_ignored_and_replaced(pi: Path, content: str) -> None:
    (pi / "models" / ".rollout-remembered.json").write_text(content)
    got = _remember(pi)
    assert not got["resumed"] and got["model"] == "m-2-bbb"
    assert json.loads((pi / "models" / ".rollout-remembered.json").read_text())["model"] == "m-2-bbb"


@pytest.mark.fault
def test_links_are_not_followed(pi: Path) -> None:
    """A record or scorer that is a symlink (e.g. planted at a secret) is neither read as a record nor hashed."""
    secret = pi / "secret"
    secret.write_text(json.dumps({"model": "evil", "previous": "", "scorer_sha256": "", "since": "x"}))
    (pi / "models" / ".rollout-remembered.json").symlink_to(secret)
    (pi / "generated.scorer").unlink()
    (pi / "generated.scorer").symlink_to(secret)
    got = _remember(pi)
    assert not got["resumed"] and got["model"] == "m-2-bbb"
    assert got["scorer_sha256"] == "", "a linked scorer is not hashed"
    assert not (pi / "models" / ".rollout-remembered.json").is_symlink(), "the link was replaced, not written through"
    assert json.loads(secret.read_text())["model"] == "evil"


def test_a_pi_without_a_model_or_scorer_yet_records_empty_values(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    got = state.remember(str(tmp_path / "models" / "r.json"), str(tmp_path / "models"), str(tmp_path / "none.scorer"))
    assert (got["model"], got["previous"], got["scorer_sha256"]) == ("", "", "")
    assert os.path.exists(str(tmp_path / "models" / "r.json"))
