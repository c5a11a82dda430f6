"""Build KenLM's ``lmplz``, ``build_binary`` and ``filter`` from the pinned PyPI sdist.

Used by the test suite (session fixture) and runnable by hand::

    python tests/kenlm_build.py          # prints the directory holding the three binaries

The sdist is described in the repository's ``artifacts.yml`` (``kenlm_sdist``) by its package
coordinates; it is fetched once with ``pip download`` by name (through the repository's
``scripts/registry_fetch.py``, so pip.conf, ``PIP_INDEX_URL`` and ``HTTPS_PROXY`` apply) into
``${PI_VOICE_CACHE:-$HOME/.cache/pi-voice}``, checked against its sha256, and built into
``<cache>/kenlm-<hash>/bin``. A warm cache returns at once. pip reads the sdist's metadata with
the Python running this file, which needs ``wheel`` (or setuptools >= 70.1): the controller's
requirements.txt pins both.

Build dependencies (Debian): cmake g++ libboost-program-options-dev libboost-system-dev
libboost-thread-dev libboost-test-dev zlib1g-dev libbz2-dev liblzma-dev.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any, Dict, Optional

REPO_ROOT = Path(__file__).resolve().parents[3]
ARTIFACTS = REPO_ROOT / "artifacts.yml"
REGISTRY_FETCH = REPO_ROOT / "scripts" / "registry_fetch.py"
TOOLS = ("lmplz", "build_binary", "filter")
# Bump when the build recipe below changes, so a stale cache is not reused.
RECIPE = "cmake-release-v1"


def cache_dir() -> Path:
    env = os.environ.get("PI_VOICE_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "pi-voice"


def registry_fetch() -> ModuleType:
    """scripts/registry_fetch.py, the repository's one fetcher of package-registry files."""
    name = "registry_fetch"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, str(REGISTRY_FETCH))
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    return sys.modules[name]


def sdist_entry(version: str = "0.2.0") -> Dict[str, Any]:
    """Read ``artifacts.kenlm_sdist.<version>.any`` from artifacts.yml."""
    import yaml  # test dependency

    data = yaml.safe_load(ARTIFACTS.read_text(encoding="utf-8"))
    try:
        entry = data["artifacts"]["kenlm_sdist"][version]["any"]
    except (KeyError, TypeError) as exc:
        raise RuntimeError(
            "%s has no artifacts.kenlm_sdist.%r.any entry" % (ARTIFACTS, version)
        ) from exc
    return dict(entry)


def fetch_sdist(entry: Dict[str, Any], cache: Path) -> Path:
    """The sdist in the cache: fetched once by its package coordinates, sha256-checked."""
    fetcher = registry_fetch()
    try:
        return Path(fetcher.fetch(entry, cache / entry["filename"]).path)
    except fetcher.FetchError as exc:
        raise RuntimeError(str(exc)) from None


def _step(cmd: list, cwd: Path) -> None:
    log = cwd / "build.log"
    with log.open("ab") as handle:
        code = subprocess.run(cmd, cwd=str(cwd), stdout=handle, stderr=subprocess.STDOUT).returncode
    if code != 0:
        tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-25:]
        raise RuntimeError(
            "building KenLM failed: %s exited %d. Build dependencies (Debian): cmake g++ "
            "libboost-program-options-dev libboost-system-dev libboost-thread-dev "
            "libboost-test-dev zlib1g-dev libbz2-dev liblzma-dev\n%s"
            % (" ".join(cmd), code, "\n".join(tail)))


def build_dir_for(entry: Dict[str, str], cache: Path) -> Path:
    key = hashlib.sha256((entry["sha256"] + RECIPE).encode()).hexdigest()[:12]
    return cache / ("kenlm-" + key)


def ensure_kenlm(jobs: int = 2, cache: Optional[Path] = None) -> Path:
    """Return a directory holding lmplz, build_binary and filter; build them if needed."""
    cache = cache or cache_dir()
    entry = sdist_entry()
    out = build_dir_for(entry, cache)
    bindir = out / "bin"
    cache.mkdir(parents=True, exist_ok=True)
    # One builder at a time (pytest's workers, two test runs): the others wait, then find the tools built.
    with open(str(out) + ".lock", "w") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        if not all((bindir / tool).is_file() for tool in TOOLS):
            _build(entry, cache, out, jobs)
    return bindir


def _build(entry: Dict[str, Any], cache: Path, out: Path, jobs: int) -> None:
    """Build the tools from the sdist in a work directory of the cache, then rename them into place as ``out``."""
    sdist = fetch_sdist(entry, cache)
    work = Path(tempfile.mkdtemp(dir=str(cache), prefix=".kenlm-build-"))
    try:
        with tarfile.open(str(sdist)) as tar:
            if hasattr(tarfile, "data_filter"):  # Python >= 3.12 (and security backports)
                tar.extractall(str(work), filter="data")
            else:
                tar.extractall(str(work))
        (src,) = [p for p in work.iterdir() if p.is_dir()]
        build = work / "build"
        build.mkdir()
        nice = ["nice", "-n", "10"] if shutil.which("nice") else []
        _step(nice + ["cmake", "-DCMAKE_BUILD_TYPE=Release", str(src)], build)
        _step(nice + ["make", "-j%d" % jobs] + list(TOOLS), build)
        staged = work / "out" / "bin"
        staged.mkdir(parents=True)
        for tool in TOOLS:
            shutil.copy2(str(build / "bin" / tool), str(staged / tool))
        if out.exists():
            shutil.rmtree(str(out))
        os.replace(str(work / "out"), str(out))
    finally:
        shutil.rmtree(str(work), ignore_errors=True)


if __name__ == "__main__":
    print(ensure_kenlm(jobs=int(sys.argv[1]) if len(sys.argv) > 1 else 2))
