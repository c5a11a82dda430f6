"""Shared fixtures: reference data and real KenLM binaries (built once into the cache)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
sys.path.insert(0, str(HERE.parent))  # run from a checkout without installing
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(DATA))  # make_corpora


def reference_cases() -> List[Dict[str, Any]]:
    return json.loads((DATA / "cases.json").read_text(encoding="utf-8"))["cases"]


@pytest.fixture(scope="session")
def kenlm_bin() -> Path:
    """Directory with lmplz, build_binary and filter built from the pinned sdist."""
    from kenlm_build import ensure_kenlm

    return ensure_kenlm()
