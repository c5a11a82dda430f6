"""The patched wheels, requirements.txt and the compat deepspeech install together: pip check
passes, deepspeech==0.7.4 is satisfied, the service imports (Python 3.11; 3.13 quick check)."""

from __future__ import annotations

import subprocess

import pytest

import rasr_support as support

CHECK = """
import json
from importlib.metadata import requires, version
from packaging.requirements import Requirement
import deepspeech, networkx, rhasspyasr_deepspeech_hermes, rhasspyasr_deepspeech
pins = [Requirement(r) for r in requires("rhasspy-asr-deepspeech") if r.startswith("deepspeech")]
print(json.dumps({
    "deepspeech": version("deepspeech"),
    "satisfies": [str(p) for p in pins if p.specifier.contains(version("deepspeech"))],
    "library": deepspeech.version(),
    "networkx": networkx.__version__,
    "hermes": version("rhasspy-asr-deepspeech-hermes"),
}))
"""


def _pip_check(venv: support.Venv) -> str:
    proc = subprocess.run([venv.python, "-m", "pip", "check"], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True)
    assert proc.returncode == 0, proc.stdout
    return proc.stdout


def test_pip_check_and_deepspeech_0_7_4(asr_venv: support.Venv) -> None:
    assert "No broken requirements found" in _pip_check(asr_venv)
    import json

    info = json.loads(asr_venv.run(CHECK).stdout.strip().splitlines()[-1])
    assert info["deepspeech"].startswith("0.7.4+compat"), info
    assert info["satisfies"] == ["deepspeech==0.7.4"], info
    assert info["library"] == "0.7.4", info  # DS_Version() of the official library in the wheel
    assert info["networkx"] == "2.8.8" and info["hermes"] == "0.5.0+voice1", info


def test_python_3_13_installs_and_imports() -> None:
    python = support.python_for("3.13")
    if python is None:
        pytest.skip("no Python 3.13 interpreter on this machine (python3.13 or pyenv)")
    venv = support.ensure_venv(python)
    _pip_check(venv)
    proc = venv.run("import rhasspyasr_deepspeech_hermes, audioop, webrtcvad, deepspeech; "
                    "print(deepspeech.version())")
    assert proc.stdout.strip().splitlines()[-1] == "0.7.4"
