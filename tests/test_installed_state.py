"""installed_state, what a Pi decodes with now in one read-only call: the version `current` points to, the sums of
its `.verified` marker, the live scorer's sha256 and mtime; a missing or torn marker and a missing scorer are
reported, not raised."""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("installed_state_module", str(REPO / "plugins" / "modules" / "installed_state.py"))
assert _spec is not None and _spec.loader is not None
state: Any = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(state)

SUMS = {"tflite": "a" * 64, "alphabet": "b" * 64}


def _sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _models(tmp_path: Path, marker: str = json.dumps(SUMS)) -> Path:
    version = tmp_path / "models" / "german-0.7.4-0123abcd"
    version.mkdir(parents=True)
    (version / ".verified").write_text(marker)
    os.symlink("german-0.7.4-0123abcd", tmp_path / "models" / "current")
    return tmp_path / "models" / "current"


def test_the_current_version_its_sums_and_the_scorer_are_read(tmp_path: Path) -> None:
    current = _models(tmp_path)
    scorer = tmp_path / "generated.scorer"
    scorer.write_bytes(b"scorer bytes" * 1000)
    found = state.read(str(current), str(scorer), _sha256)
    assert found["model_id"] == "german-0.7.4-0123abcd" and found["model_sums"] == SUMS and found["changed"] is False
    assert found["scorer"] == {"exists": True, "sha256": hashlib.sha256(scorer.read_bytes()).hexdigest(),
                               "mtime": scorer.stat().st_mtime}


def test_a_model_directory_that_is_no_link_is_named_by_itself(tmp_path: Path) -> None:
    _models(tmp_path)
    found = state.read(str(tmp_path / "models" / "german-0.7.4-0123abcd") + "/", "", _sha256)
    assert found["model_id"] == "german-0.7.4-0123abcd" and found["scorer"]["exists"] is False


@pytest.mark.fault
@pytest.mark.parametrize("marker", ["", "{torn", "[1, 2]"])
def test_a_missing_or_torn_marker_gives_no_sums_and_says_why(tmp_path: Path, marker: str) -> None:
    current = _models(tmp_path, marker)
    found = state.read(str(current), "", _sha256)
    assert found["model_sums"] == {} and found["model_sums_error"].startswith(str(current / ".verified"))


@pytest.mark.fault
def test_a_removed_current_link_and_a_missing_scorer_are_reported_not_raised(tmp_path: Path) -> None:
    found = state.read(str(tmp_path / "models" / "current"), str(tmp_path / "gone.scorer"), _sha256)
    assert found["model_id"] == "current" and found["model_sums"] == {} and "model_sums_error" in found
    assert found["scorer"]["exists"] is False and found["scorer"]["error"].startswith(str(tmp_path / "gone.scorer"))
