"""Built artifacts from a mirror are pinned by sums committed in the repository (scripts/built_sums.py,
role artifact_stage's fetch_built) — against a real HTTP server on 127.0.0.1 and real ansible-playbook runs.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, Tuple

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import built_sums  # noqa: E402
from test_artifact_stage import _server  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
TOOLS = "deepspeech-tools/deepspeech-tools-amd64-0123456789ab.tar.gz"
WHEEL = "compat-wheels/5b3df3727c96/deepspeech-0.7.4+compat-py3-none-any.whl"

PLAYBOOK = """
- name: Take built artifacts from the mirror.
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Fetch the built artifacts.
      ansible.builtin.include_role:
        name: artifact_stage
        tasks_from: fetch_built
"""


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _cache(root: Path) -> Dict[str, bytes]:
    files = {TOOLS: os.urandom(40_000), WHEEL: os.urandom(20_000)}
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return files


# --- the sums file --------------------------------------------------------------------------------

def test_the_cache_s_built_artifacts_are_pinned_and_the_build_venv_is_not(tmp_path: Path) -> None:
    files = _cache(tmp_path / "cache")
    venv = tmp_path / "cache" / "rhasspy-asr-wheels" / "build-venv" / "lib"
    venv.mkdir(parents=True)
    (venv / "pip-24.0-py3-none-any.whl").write_bytes(b"not a build")
    (tmp_path / "cache" / "deepspeech-tools" / (Path(TOOLS).name + ".sha256")).write_text("x")
    (tmp_path / "cache" / "deepspeech-tools" / ".partial.tar.gz").write_bytes(b"half")
    out = tmp_path / "built-artifacts.sha256"
    assert built_sums.main(["--cache", str(tmp_path / "cache"), "--output", str(out)]) == 0
    assert built_sums.parse(out.read_text()) == {rel: _sha(data) for rel, data in files.items()}


@pytest.mark.fault
def test_a_rebuilt_artifact_with_other_bytes_is_refused_and_the_file_kept(tmp_path: Path, capsys: Any) -> None:
    _cache(tmp_path / "cache")
    out = tmp_path / "built-artifacts.sha256"
    assert built_sums.main(["--cache", str(tmp_path / "cache"), "--output", str(out)]) == 0
    before = out.read_text()
    (tmp_path / "cache" / TOOLS).write_bytes(b"rebuilt differently")
    assert built_sums.main(["--cache", str(tmp_path / "cache"), "--output", str(out)]) == 1
    err = capsys.readouterr().err
    assert str(out) in err and TOOLS in err and "--replace" in err, err
    assert out.read_text() == before, "a refused run changes nothing"
    assert built_sums.main(["--cache", str(tmp_path / "cache"), "--output", str(out), "--replace"]) == 0
    assert built_sums.parse(out.read_text())[TOOLS] == _sha(b"rebuilt differently")


@pytest.mark.bad_input
def test_an_empty_cache_is_refused_with_the_fix(tmp_path: Path, capsys: Any) -> None:
    assert built_sums.main(["--cache", str(tmp_path / "none"), "--output", str(tmp_path / "out")]) == 1
    assert "stage first" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.bad_input
@pytest.mark.parametrize("line, expect", [
    ("abc  x.whl", "is not 'SHA256  PATH'"),
    ("{}  ../../etc/shadow".format("0" * 64), "leaves the artifact cache"),
    ("{}  /etc/shadow".format("0" * 64), "is not 'SHA256  PATH'"),
    ("{}  a.whl\n{}  a.whl".format("0" * 64, "1" * 64), "pinned twice"),
    ("{}  a b.whl".format("0" * 64), "is not 'SHA256  PATH'"),
])
def test_a_malformed_sums_file_is_refused_with_file_and_line(line: str, expect: str) -> None:
    with pytest.raises(built_sums.SumsError) as error:
        built_sums.parse("# header\n" + line + "\n", "fleet/built-artifacts.sha256")
    assert expect in str(error.value) and "fleet/built-artifacts.sha256:" in str(error.value), error.value


# --- the role's fetch_built against a real mirror ---------------------------------------------------

@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[Tuple[Path, Dict[str, bytes], int]]:
    root = tmp_path / "mirror"
    files = _cache(root)
    with _server(root, tmp_path / "requests.jsonl") as port:
        yield root, files, port


def _fetch(tmp_path: Path, port: int, pins: Dict[str, str], cache: Path) -> subprocess.CompletedProcess:
    sums = tmp_path / "built-artifacts.sha256"
    sums.write_text(built_sums.render(pins))
    (tmp_path / "playbook.yml").write_text(PLAYBOOK)
    (tmp_path / "vars.json").write_text(json.dumps({
        "artifact_stage_mirror_url": "http://127.0.0.1:{}".format(port), "artifact_stage_cache_dir": str(cache),
        "artifact_stage_built_files": [TOOLS, WHEEL, "rhasspy-asr-wheels/ffff/none.whl"],
        "artifact_stage_built_sums_file": str(sums), "artifact_stage_timeout": 5}))
    env = dict(os.environ, ANSIBLE_ROLES_PATH=str(REPO / "roles"), ANSIBLE_NOCOLOR="1")
    return subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local",
                           "-e", "ansible_python_interpreter=" + sys.executable, "-e", "@" + str(tmp_path / "vars.json"),
                           str(tmp_path / "playbook.yml")],
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, timeout=300)


def test_pinned_artifacts_are_taken_and_a_missing_one_is_left_to_build(tmp_path: Path, mirror: Any) -> None:
    _, files, port = mirror
    cache = tmp_path / "pi-cache"
    run = _fetch(tmp_path, port, {rel: _sha(data) for rel, data in files.items()}, cache)
    assert run.returncode == 0, run.stdout[-3000:]
    for rel, data in files.items():
        assert (cache / rel).read_bytes() == data
        assert (cache / (rel + ".sha256")).read_text().split()[0] == _sha(data)
    assert not (cache / "rhasspy-asr-wheels/ffff/none.whl").exists()


@pytest.mark.fault
def test_a_tampered_mirror_file_is_refused_and_nothing_replaced(tmp_path: Path, mirror: Any) -> None:
    root, files, port = mirror
    pins = {rel: _sha(data) for rel, data in files.items()}
    (root / TOOLS).write_bytes(b"tampered")
    (root / (TOOLS + ".sha256")).write_text(_sha(b"tampered") + "  x\n")  # the mirror's own sidecar agrees with it
    cache = tmp_path / "pi-cache"
    run = _fetch(tmp_path, port, pins, cache)
    assert run.returncode != 0
    assert "differs from the one pinned in " + str(tmp_path / "built-artifacts.sha256") in run.stdout, run.stdout[-3000:]
    assert "did not match" in run.stdout or "checksum" in run.stdout.lower(), run.stdout[-3000:]
    assert not (cache / TOOLS).exists(), "the tampered file must not reach the cache"


@pytest.mark.bad_input
def test_an_unpinned_file_the_mirror_has_is_refused_with_the_fix(tmp_path: Path, mirror: Any) -> None:
    _, files, port = mirror
    cache = tmp_path / "pi-cache"
    run = _fetch(tmp_path, port, {WHEEL: _sha(files[WHEEL])}, cache)
    assert run.returncode != 0
    assert "pins no sha256" in run.stdout and TOOLS in run.stdout and "scripts/built_sums.py" in run.stdout, run.stdout[-3000:]
    assert not (cache / TOOLS).exists() and not (cache / WHEEL).exists(), "nothing is taken from the mirror"
