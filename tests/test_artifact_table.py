"""The artifact table (artifacts.yml): well-formed, and in step with the committed fixture model."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Dict

import yaml

REPO = Path(__file__).resolve().parent.parent
TABLE: Dict[str, Any] = yaml.safe_load((REPO / "artifacts.yml").read_text())["artifacts"]
SHA256 = re.compile(r"^[0-9a-f]{64}$")
# Artifacts whose sums are not published upstream: the user pins them or trusts on first use.
UNPINNED = {"german_model"}
# Artifacts with no public origin: served from a mirror or files/artifacts (tests: a local server).
NO_ORIGIN = {"german_model", "fixture_model"}


def test_every_entry_has_a_filename_source_and_sum() -> None:
    for name, versions in TABLE.items():
        for version, variants in versions.items():
            assert isinstance(version, str), "{}: quote the version {!r} so YAML keeps it a string".format(name, version)
            for variant, entry in variants.items():
                where = "{} {} {}".format(name, version, variant)
                assert entry.get("filename") and "/" not in entry["filename"], where
                if name not in NO_ORIGIN:
                    # registry files by package coordinates (scripts/registry_fetch.py), others by URL
                    coordinates = [c for c in ("pip", "npm") if isinstance(entry.get(c), dict)]
                    assert coordinates or entry["url"].startswith("https://"), where
                if name not in UNPINNED:
                    assert SHA256.match(entry.get("sha256") or ""), where


def test_fixture_model_entries_match_the_committed_fixture() -> None:
    manifest = json.loads((REPO / "files" / "fixture" / "manifest.json").read_text())["files"]
    entries = TABLE["fixture_model"]["1"]
    assert set(entries) == {"tflite", "pb", "alphabet"}
    for variant, entry in entries.items():
        assert entry["sha256"] == manifest[entry["filename"]]["sha256"], \
            "artifacts.yml fixture_model {} is out of date: the fixture was regenerated".format(variant)
