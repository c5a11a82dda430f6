"""Helpers of the deepspeech-compat tests: artifacts table, cache, official wheels, worker runs.

Stdlib only (the pure-Python tests also run under Python 3.7 and 3.13). The official wheels are
fetched by their package coordinates with pip, through the repository's scripts/registry_fetch.py
(imported only when a wheel is fetched).
"""
from __future__ import annotations

import hashlib
import math
import struct
import wave
from array import array
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from types import ModuleType
from typing import Any, Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT = os.path.dirname(HERE)  # python/deepspeech-compat
REPO = os.path.dirname(os.path.dirname(PROJECT))
ARTIFACTS_YML = os.path.join(REPO, "artifacts.yml")
REGISTRY_FETCH = os.path.join(REPO, "scripts", "registry_fetch.py")
# The committed fixture model; DSCOMPAT_FIXTURE_DIR points the tests at another build of it.
FIXTURE = os.environ.get("DSCOMPAT_FIXTURE_DIR") or os.path.join(REPO, "files", "fixture")
# Real 0.7.4 scorer packages made by upstream's generate_package.py (python/voice-appliance's test data).
SCORER_DATA = os.path.join(REPO, "python", "voice-appliance", "tests", "data", "de_commands")
WORKER = os.path.join(HERE, "dscompat_worker.py")

# Which official wheel provides each x86_64 flavour (any cp tag: only the .so is used).
FLAVOUR_WHEELS = {
    "tflite": ("deepspeech_tflite_wheel", "0.7.4", "amd64-cp38"),
    "tensorflow": ("deepspeech_wheel", "0.7.4", "amd64-cp38"),
}
ARMHF_WHEEL = ("deepspeech_wheel", "0.7.4", "armhf-cp37")


def cache_dir() -> str:
    return os.environ.get("PI_VOICE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "pi-voice")


def _scalar(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    return text


def _flow_mapping(text: str) -> Dict[str, str]:
    """``{a: x, b: "y"}`` with plain or quoted scalar values (no nesting, no commas in values)."""
    items = re.findall(r"\s*([^:,{}\s]+)\s*:\s*(\"[^\"]*\"|'[^']*'|[^,}]*)\s*(?:,|$)", text.strip()[1:-1])
    return {key: _scalar(value) for key, value in items}


def load_artifacts(path: str = ARTIFACTS_YML) -> Dict[str, Any]:
    """Parse artifacts.yml: block mappings, plain/quoted scalars and one-line flow mappings (the subset it uses)."""
    root: Dict[str, Any] = {}
    stack = [(-1, root)]
    with open(path, encoding="utf-8") as handle:
        for number, raw in enumerate(handle, 1):
            line = raw.rstrip("\n")
            stripped = line.strip()
            if not stripped or stripped.startswith("#") or stripped == "---":
                continue
            indent = len(line) - len(line.lstrip(" "))
            match = re.match(r"^(\"[^\"]*\"|'[^']*'|[^:#]+):(?:\s+(.*?))?\s*(?:#.*)?$", stripped)
            if not match:
                raise ValueError("{}:{}: cannot parse {!r}".format(path, number, line))
            key, value = _scalar(match.group(1)), match.group(2)
            while stack[-1][0] >= indent:
                stack.pop()
            parent = stack[-1][1]
            if value and value.startswith("{") and value.endswith("}"):
                parent[key] = _flow_mapping(value)
            elif value:
                parent[key] = _scalar(value)
            else:
                child: Dict[str, Any] = {}
                parent[key] = child
                stack.append((indent, child))
    return root["artifacts"]


def artifact(name: str, version: str, variant: str) -> Dict[str, str]:
    return load_artifacts()[name][version][variant]


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def registry_fetch() -> ModuleType:
    """scripts/registry_fetch.py, the repository's one fetcher of package-registry files."""
    name = "registry_fetch"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REGISTRY_FETCH)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    return sys.modules[name]


def fetch_artifact(name: str, version: str, variant: str) -> str:
    """The artifact's file in the cache, fetched once by its package coordinates and sha256-checked.

    pip (run by this Python) fetches the wheel by name, so pip.conf / PIP_INDEX_URL / HTTPS_PROXY
    apply; a copy with the pinned sum already at ${PI_VOICE_CACHE}/downloads/FILENAME is used as is.
    """
    entry = artifact(name, version, variant)
    target = os.path.join(cache_dir(), "downloads", entry["filename"])
    return registry_fetch().fetch(entry, target).path


def extract_library(wheel_path: str) -> str:
    """libdeepspeech.so of an official wheel, extracted once into the cache."""
    directory = os.path.join(cache_dir(), "deepspeech-compat", sha256_file(wheel_path)[:16])
    target = os.path.join(directory, "libdeepspeech.so")
    if not os.path.isfile(target):
        os.makedirs(directory, exist_ok=True)
        with zipfile.ZipFile(wheel_path) as archive:
            data = archive.read("deepspeech/lib/libdeepspeech.so")
        # A name of its own per writer (pytest's workers extract at once), renamed into place whole.
        handle, partial = tempfile.mkstemp(dir=directory, prefix=".libdeepspeech.so.")
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.chmod(partial, 0o755)
        os.replace(partial, target)
    return target


def read_from_wheel(wheel_path: str, member: str) -> str:
    with zipfile.ZipFile(wheel_path) as archive:
        return archive.read(member).decode("utf-8")


def package_env(library: Optional[str] = None) -> Dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = PROJECT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("DEEPSPEECH_LIBRARY", None)
    if library:
        env["DEEPSPEECH_LIBRARY"] = library
    return env


class WorkerResult(object):
    def __init__(self, data: Any, stderr: str) -> None:
        self.data = data
        self.stderr = stderr


def start_worker(library: str, scenario: str, **kwargs: Any) -> "subprocess.Popen[bytes]":
    """Start one scenario of dscompat_worker.py in a fresh interpreter with ``library`` loaded."""
    return subprocess.Popen([sys.executable, WORKER, scenario, json.dumps(kwargs)], env=package_env(library),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish_worker(proc: "subprocess.Popen[bytes]") -> WorkerResult:
    out, err = proc.communicate(timeout=300)
    stdout, stderr = out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
    if proc.returncode != 0:
        raise AssertionError("worker {!r} failed ({}):\n{}\n{}".format(proc.args, proc.returncode, stdout, stderr))
    return WorkerResult(json.loads(stdout.strip().splitlines()[-1]), stderr)


def run_worker(library: str, scenario: str, **kwargs: Any) -> WorkerResult:
    return finish_worker(start_worker(library, scenario, **kwargs))


def run_cli(library: Optional[str], args: List[str], cwd: Optional[str] = None) -> "subprocess.CompletedProcess[str]":
    return subprocess.run(
        [sys.executable, "-m", "deepspeech"] + args, env=package_env(library), cwd=cwd,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=300,
    )


def write_graphdef(path: str) -> None:
    """A minimal real TensorFlow GraphDef: one Placeholder node named input_node (as DeepSpeech's)."""
    name, op = b"input_node", b"Placeholder"
    node = b"\x0a" + bytes([len(name)]) + name + b"\x12" + bytes([len(op)]) + op
    with open(path, "wb") as handle:
        handle.write(b"\x0a" + bytes([len(node)]) + node)


def write_tflite_header(path: str) -> None:
    """Bytes with the TFLite FlatBuffer identifier at offset 4 (not a loadable model)."""
    with open(path, "wb") as handle:
        handle.write(b"\x1c\x00\x00\x00TFL3" + b"\x00" * 56)


def write_pcm_wav(path: str, rate: int = 16000, channels: int = 1, width: int = 2, frames: int = 1600) -> array:
    samples = array("h", (int(8000 * math.sin(i / 7.0)) for i in range(frames * channels)))
    with wave.open(path, "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(width)
        out.setframerate(rate)
        if width == 2:
            out.writeframes(samples.tobytes())
        else:
            out.writeframes(bytes((s >> 8) & 0xFF for s in samples))
    return samples


def write_raw_wav(path: str, fmt: bytes, data: bytes, extra_chunks: bytes = b"") -> None:
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + extra_chunks + b"data" + struct.pack("<I", len(data)) + data
    with open(path, "wb") as handle:
        handle.write(b"RIFF" + struct.pack("<I", len(body)) + body)
