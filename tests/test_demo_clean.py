"""harness/demo.sh clean: it removes what the demo wrote, never other files of the directory PI_VOICE_DEMO_DIR names."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _clean(directory: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PI_VOICE_DEMO_NAME="pi-voice-no-such-demo-pi", PI_VOICE_DEMO_DIR=str(directory))
    return subprocess.run(["bash", str(REPO / "harness" / "demo.sh"), "clean"], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True, timeout=120, check=False)


def _demo_files(directory: Path) -> None:
    (directory / "origin" / "fixture_model" / "1").mkdir(parents=True)
    (directory / "origin" / "fixture_model" / "1" / "alphabet.txt").write_text("a\n")
    for name in ("model.yml", "pis.ini", "last-run.log", "das_ist_ein_test.wav"):
        (directory / name).write_text("demo\n")


def test_clean_keeps_the_users_files_in_a_shared_directory(tmp_path: Path) -> None:
    shared = tmp_path / "mine"
    shared.mkdir()
    _demo_files(shared)
    (shared / "notes.txt").write_text("mine\n")
    result = _clean(shared)
    assert result.returncode == 0, result.stdout
    assert "no container pi-voice-no-such-demo-pi" in result.stdout
    assert sorted(p.name for p in shared.iterdir()) == ["notes.txt"]


def test_clean_removes_the_demos_own_directory(tmp_path: Path) -> None:
    own = tmp_path / ".demo" / "pi-voice-demo"
    own.mkdir(parents=True)
    _demo_files(own)
    assert _clean(own).returncode == 0
    assert not own.exists()
