"""Fixtures of the python/rhasspy-asr tests: the patched wheels installed in a cached venv, KenLM,
a private Mosquitto, the fixture model."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Dict, Iterator

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rasr_support as support  # noqa: E402


@pytest.fixture(scope="session")
def asr_venv() -> support.Venv:
    """Python 3.11 venv with the patched wheels, the compat deepspeech and requirements.txt."""
    python = support.python_for("3.11")
    if python is None:
        pytest.fail("no Python 3.11 interpreter (python3.11 on PATH or pyenv) for the service venv")
    return support.ensure_venv(python)


@pytest.fixture(scope="session")
def kenlm_bin() -> Path:
    """lmplz, filter, build_binary built from the pinned sdist (python/voice-appliance's helper)."""
    sys.path.insert(0, str(support.VOICE / "tests"))
    from kenlm_build import ensure_kenlm

    return ensure_kenlm()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[support.Broker]:
    instance = support.Broker(tmp_path).start()
    try:
        yield instance
    finally:
        instance.stop()


@pytest.fixture
def fixture_model() -> Dict[str, Any]:
    """The fixture model's files; skipped only while files/fixture has no manifest.json."""
    if not support.fixture_present():
        pytest.skip("the fixture model is not there yet (%s/manifest.json)" % support.FIXTURE)
    return support.fixture()
