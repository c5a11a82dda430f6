"""Fixtures of the deepspeech-compat tests: the official 0.7.4 wheels and their libraries.

The wheels are fetched by their package coordinates in artifacts.yml (pip download, through
scripts/registry_fetch.py) into ${PI_VOICE_CACHE:-~/.cache/pi-voice}/downloads (sha256-checked)
on first use. Tests that load a library do it in a worker
subprocess (one library per process, as in production).
"""
from __future__ import annotations

import os
import sys
from typing import Dict

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dscompat_support as support  # noqa: E402

sys.path.insert(0, support.PROJECT)


@pytest.fixture(scope="session")
def official_wheels() -> Dict[str, str]:
    """flavour -> official x86_64 wheel path (tflite: deepspeech-tflite, tensorflow: deepspeech)."""
    return {flavour: support.fetch_artifact(*key) for flavour, key in support.FLAVOUR_WHEELS.items()}


@pytest.fixture(scope="session")
def libraries(official_wheels: Dict[str, str]) -> Dict[str, str]:
    """flavour -> extracted official libdeepspeech.so (x86_64)."""
    return {flavour: support.extract_library(path) for flavour, path in official_wheels.items()}


@pytest.fixture(scope="session")
def armhf_library() -> str:
    return support.extract_library(support.fetch_artifact(*support.ARMHF_WHEEL))


@pytest.fixture(params=["tflite", "tensorflow"])
def flavour(request: "pytest.FixtureRequest") -> str:
    return request.param
