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
# Artifacts whose sums are not published upstream: recorded on first use (the table says so), or pinned by the user.
UNPINNED = {"german_model"}
# Artifacts with no public origin: served from a mirror or files/artifacts (tests: a local server).
NO_ORIGIN = {"fixture_model"}
DRIVE_ID = re.compile(r"^[A-Za-z0-9_-]{25,}$")


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
                    drive = [k for k in ("gdrive_id", "gdrive_folder") if DRIVE_ID.match(str(entry.get(k) or ""))]
                    assert coordinates or drive or entry["url"].startswith("https://"), where
                if name not in UNPINNED:
                    assert SHA256.match(entry.get("sha256") or ""), where
                    assert "trust_on_first_use" not in entry, where + ": a pinned artifact needs no trust on first use"
                else:
                    assert entry.get("trust_on_first_use") is True and not entry.get("sha256"), \
                        where + ": an unpinned artifact says trust_on_first_use: true (its sum is recorded on first use)"


def test_the_german_model_comes_from_its_authors_drive_folder() -> None:
    """AASHISHAG/deepspeech-german's README, "Trained Models", v0.7.4: one public Drive folder."""
    entries = TABLE["german_model"]["0.7.4"]
    assert set(entries) == {"tflite", "pb", "alphabet", "scorer"}
    assert {e["gdrive_folder"] for e in entries.values()} == {"1PFSIdmi4Ge8EB75cYh2nfYOXlCIgiMEL"}
    assert {v: e["filename"] for v, e in entries.items()} == {
        "tflite": "output_graph.tflite", "pb": "output_graph.pb", "alphabet": "alphabet.txt", "scorer": "kenlm.scorer"}


def test_fixture_model_entries_match_the_committed_fixture() -> None:
    manifest = json.loads((REPO / "files" / "fixture" / "manifest.json").read_text())["files"]
    entries = TABLE["fixture_model"]["1"]
    assert set(entries) == {"tflite", "pb", "alphabet"}
    for variant, entry in entries.items():
        assert entry["sha256"] == manifest[entry["filename"]]["sha256"], \
            "artifacts.yml fixture_model {} is out of date: the fixture was regenerated".format(variant)
