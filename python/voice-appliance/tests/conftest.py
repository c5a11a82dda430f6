"""Fixtures of the voice-appliance tests: real KenLM binaries, built once into the cache."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import voice_testlib  # noqa: E402,F401  (sets sys.path for the package and helpers)


@pytest.fixture(scope="session")
def kenlm_bin() -> Path:
    """Directory with lmplz, build_binary and filter built from the pinned sdist."""
    from kenlm_build import ensure_kenlm

    return ensure_kenlm()
