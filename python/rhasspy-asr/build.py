#!/usr/bin/env python3
"""Build the appliance's patched Rhasspy ASR wheels from the pinned PyPI sdists.

    python3 build.py --out dist/                      # fetch the sdists (sha256-checked), build
    python3 build.py --sdist-dir DIR --out dist/      # offline: take the sdists from DIR
    python3 build.py --sources-only src/              # only write the patched source trees

Each sdist named in the repository's ``artifacts.yml`` (by its package coordinates: fetched with
``pip download`` by name through ``scripts/registry_fetch.py``, so pip.conf, ``PIP_INDEX_URL``
and ``HTTPS_PROXY`` apply) is checked against its sha256, unpacked,
patched with ``patches/<package>/*.patch`` (unified diffs, applied in name order, exactly — no
fuzz), given the local version ``<version>+voice1`` and built with
``pip wheel --no-deps --no-build-isolation --no-index`` by ``--python`` (default: this Python),
which needs setuptools (and ``wheel`` for setuptools < 70.1). Stdlib only, Python 3.7+.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path
from types import ModuleType
from typing import Any, Dict, List, NamedTuple, Optional, Sequence

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
ARTIFACTS = REPO / "artifacts.yml"
REGISTRY_FETCH = REPO / "scripts" / "registry_fetch.py"
PATCHES = HERE / "patches"
LOCAL_LABEL = "voice1"  # bump when a patch changes


class Package(NamedTuple):
    name: str  # distribution name (and the patches/ directory)
    version: str
    artifact: str  # artifacts.yml key (variant "any")


PACKAGES = (
    Package("rhasspy-nlu", "0.4.0", "rhasspy_nlu_sdist"),
    Package("rhasspy-asr-deepspeech", "0.4.1", "rhasspy_asr_deepspeech_sdist"),
    Package("rhasspy-asr-deepspeech-hermes", "0.5.0", "rhasspy_asr_deepspeech_hermes_sdist"),
)


class BuildError(Exception):
    """A build step failed; the message says what and how to fix it."""


# --- artifacts.yml and the cache ------------------------------------------------------------------

def cache_dir() -> Path:
    env = os.environ.get("PI_VOICE_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "pi-voice"


def registry_fetch() -> ModuleType:
    """scripts/registry_fetch.py (the table reader and the one fetcher of registry files), by path."""
    name = "registry_fetch"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, str(REGISTRY_FETCH))
        if spec is None or spec.loader is None:
            raise BuildError("cannot load %s" % REGISTRY_FETCH)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    return sys.modules[name]


def load_artifacts(path: Path = ARTIFACTS) -> Dict[str, Any]:
    """The ``artifacts`` mapping of artifacts.yml (read by registry_fetch.load_table, stdlib only)."""
    try:
        root = registry_fetch().load_table(path)
    except (OSError, ValueError) as exc:
        raise BuildError("cannot read %s: %s" % (path, exc)) from exc
    artifacts = root.get("artifacts")
    if not isinstance(artifacts, dict):
        raise BuildError("%s has no top-level 'artifacts' mapping" % path)
    return artifacts


def artifact_entry(package: Package, artifacts: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """``artifacts.<package.artifact>.<version>.any``: filename, sha256 and pip coordinates."""
    table = artifacts if artifacts is not None else load_artifacts()
    try:
        entry = table[package.artifact][package.version]["any"]
        if not (entry["filename"] and entry["sha256"] and entry["pip"]["package"]):
            raise KeyError("filename")
    except (KeyError, TypeError) as exc:
        raise BuildError("artifacts.yml has no complete entry artifacts.%s.%r.any (filename, sha256, "
                         "pip: {package, version, sdist: true})" % (package.artifact, package.version)) from exc
    return dict(entry)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _pip_spec(entry: Dict[str, Any]) -> str:
    pip = entry.get("pip") or {}
    return "%s==%s" % (pip.get("package", "?"), pip.get("version", "?"))


def fetch(entry: Dict[str, Any], sdist_dir: Optional[Path] = None, python: Optional[str] = None) -> Path:
    """The file, sha256-checked: from ``sdist_dir`` if given, else fetched once into the cache.

    Fetching is ``pip download`` by the entry's package coordinates (registry_fetch), run by
    ``python`` (default: this Python; for an sdist it needs wheel or setuptools >= 70.1).
    """
    if sdist_dir is not None:
        path = sdist_dir / entry["filename"]
        if not path.is_file():
            raise BuildError("%s is missing: put %s (pip download --no-deps --no-binary=:all: %s) into %s, or "
                             "leave --sdist-dir out to fetch it" % (path, entry["filename"], _pip_spec(entry), sdist_dir))
        actual = sha256_file(path)
        if actual != entry["sha256"]:
            raise BuildError("%s has sha256 %s, artifacts.yml says %s: it is not the pinned sdist"
                             % (path, actual, entry["sha256"]))
        return path
    fetcher = registry_fetch()
    try:
        return Path(fetcher.fetch(entry, cache_dir() / "downloads" / entry["filename"], python=python).path)
    except fetcher.FetchError as exc:
        raise BuildError("%s (offline? use --sdist-dir)" % exc) from exc


# --- unpacking and patching -----------------------------------------------------------------------

def unpack(sdist: Path, destination: Path, package: Package) -> Path:
    """Unpack the sdist (regular files and directories only, nothing outside) into destination."""
    top = "%s-%s" % (package.name, package.version)
    with tarfile.open(str(sdist)) as archive:
        for member in archive.getmembers():
            parts = Path(member.name).parts
            if not parts or parts[0] != top or ".." in parts or Path(member.name).is_absolute():
                raise BuildError("%s: unexpected member %r (expected everything under %s/)"
                                 % (sdist, member.name, top))
            target = destination.joinpath(*parts)
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
            elif member.isfile():
                target.parent.mkdir(parents=True, exist_ok=True)
                source = archive.extractfile(member)
                assert source is not None
                with source, target.open("wb") as out:
                    shutil.copyfileobj(source, out)
                os.utime(str(target), (member.mtime, member.mtime))
            else:
                raise BuildError("%s: member %r is not a regular file or directory" % (sdist, member.name))
    root = destination / top
    if not (root / "setup.py").is_file():
        raise BuildError("%s holds no %s/setup.py" % (sdist, top))
    return root


class Hunk(NamedTuple):
    old_start: int
    old_lines: List[str]
    new_lines: List[str]
    line: int  # line of the @@ header in the patch file


class FilePatch(NamedTuple):
    old_path: Optional[str]  # None: new file
    new_path: Optional[str]  # None: deleted file
    hunks: List[Hunk]


_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


def _patch_path(raw: str, patch: Path, number: int) -> Optional[str]:
    name = raw.split("\t")[0].strip()
    if name == "/dev/null":
        return None
    if not (name.startswith("a/") or name.startswith("b/")):
        raise BuildError("%s:%d: file name %r must start with a/ or b/ (a -p1 diff)" % (patch, number, name))
    relative = name[2:]
    parts = Path(relative).parts
    if not parts or ".." in parts or Path(relative).is_absolute():
        raise BuildError("%s:%d: file name %r leaves the source tree" % (patch, number, name))
    return relative


def parse_patch(patch: Path) -> List[FilePatch]:
    """Parse a unified diff (git diff / diff -u). Text before the first '--- ' line is a comment."""
    lines = patch.read_text(encoding="utf-8").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    files: List[FilePatch] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        if not line.startswith("--- "):
            index += 1
            continue
        if index + 1 >= len(lines) or not lines[index + 1].startswith("+++ "):
            raise BuildError("%s:%d: '--- ' not followed by '+++ '" % (patch, index + 1))
        current = FilePatch(_patch_path(line[4:], patch, index + 1),
                            _patch_path(lines[index + 1][4:], patch, index + 2), [])
        if current.old_path is None and current.new_path is None:
            raise BuildError("%s:%d: both sides are /dev/null" % (patch, index + 1))
        files.append(current)
        index += 2
        while index < len(lines) and lines[index].startswith("@@"):
            match = _HUNK.match(lines[index])
            if not match:
                raise BuildError("%s:%d: bad hunk header %r" % (patch, index + 1, lines[index]))
            header_line = index + 1
            old_count = int(match.group(2)) if match.group(2) is not None else 1
            new_count = int(match.group(4)) if match.group(4) is not None else 1
            old: List[str] = []
            new: List[str] = []
            index += 1
            while len(old) < old_count or len(new) < new_count:
                if index >= len(lines):
                    raise BuildError("%s:%d: hunk ends early" % (patch, header_line))
                body = lines[index]
                tag, text = (body[:1], body[1:]) if body else (" ", "")
                if tag == " ":
                    old.append(text + "\n")
                    new.append(text + "\n")
                elif tag == "-":
                    old.append(text + "\n")
                elif tag == "+":
                    new.append(text + "\n")
                elif tag == "\\":
                    pass
                else:
                    raise BuildError("%s:%d: unexpected line in hunk: %r" % (patch, index + 1, body))
                index += 1
                # "\ No newline at end of file" belongs to the line before it
                if index < len(lines) and lines[index].startswith("\\"):
                    if tag in (" ", "-"):
                        old[-1] = old[-1][:-1]
                    if tag in (" ", "+"):
                        new[-1] = new[-1][:-1]
                    index += 1
            if len(old) != old_count or len(new) != new_count:
                raise BuildError("%s:%d: hunk line counts do not match its header" % (patch, header_line))
            current.hunks.append(Hunk(int(match.group(1)), old, new, header_line))
    if not files:
        raise BuildError("%s holds no unified diff" % patch)
    return files


def _lines(text: str) -> List[str]:
    """Lines with their '\\n' (only '\\n' ends a line, as in diff)."""
    parts = [part + "\n" for part in text.split("\n")]
    parts[-1] = parts[-1][:-1]
    return parts if parts[-1] else parts[:-1]


def apply_patch(patch: Path, root: Path) -> List[str]:
    """Apply one unified diff to the tree at root exactly (context must match). Returns the files."""
    changed = []
    for file_patch in parse_patch(patch):
        relative = file_patch.new_path or file_patch.old_path
        assert relative is not None
        target = root / relative
        if file_patch.old_path is None:
            if target.exists():
                raise BuildError("%s creates %s, which already exists" % (patch, relative))
            content: List[str] = []
        else:
            if not target.is_file():
                raise BuildError("%s changes %s, which does not exist in the sdist" % (patch, relative))
            with target.open(encoding="utf-8", newline="") as handle:
                content = _lines(handle.read())
        offset = 0
        for number, hunk in enumerate(file_patch.hunks, 1):
            start = hunk.old_start - 1 + offset if hunk.old_lines else hunk.old_start + offset
            if start < 0 or content[start:start + len(hunk.old_lines)] != hunk.old_lines:
                raise BuildError("%s: hunk %d (line %d of the patch) does not apply to %s at line %d: "
                                 "the sdist is not the one the patch was made for"
                                 % (patch, number, hunk.line, relative, hunk.old_start))
            content[start:start + len(hunk.old_lines)] = hunk.new_lines
            offset += len(hunk.new_lines) - len(hunk.old_lines)
        if file_patch.new_path is None:
            if content:
                raise BuildError("%s deletes %s but leaves lines in it" % (patch, relative))
            target.unlink()
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            with target.open("w", encoding="utf-8", newline="") as handle:
                handle.write("".join(content))
        changed.append(relative)
    return changed


def patches_for(package: Package) -> List[Path]:
    directory = PATCHES / package.name
    found = sorted(directory.glob("*.patch")) if directory.is_dir() else []
    if not found:
        raise BuildError("no patches in %s" % directory)
    return found


def prepare(package: Package, sdist: Path, destination: Path, log=print) -> Path:
    """Unpack, patch and version one sdist under destination; return the source tree."""
    root = unpack(sdist, destination, package)
    for patch in patches_for(package):
        files = apply_patch(patch, root)
        log("  %s: %s" % (patch.name, ", ".join(files)))
    version_file = root / "VERSION"
    found = version_file.read_text(encoding="utf-8").strip()
    if found != package.version:
        raise BuildError("%s: VERSION says %r, expected %r" % (sdist, found, package.version))
    version_file.write_text("%s+%s\n" % (package.version, LOCAL_LABEL), encoding="utf-8")
    # The sdist's egg-info (PKG-INFO, requires.txt) describes the unpatched package.
    for stale in root.glob("*.egg-info"):
        shutil.rmtree(str(stale))
    return root


# --- wheels ---------------------------------------------------------------------------------------

def wheel_requirements(wheel: Path) -> List[str]:
    with zipfile.ZipFile(str(wheel)) as archive:
        (metadata,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        text = archive.read(metadata).decode("utf-8")
    return [line[len("Requires-Dist: "):] for line in text.splitlines() if line.startswith("Requires-Dist: ")]


def build_wheel(root: Path, package: Package, out: Path, python: str, sdist: Path) -> Path:
    version = "%s+%s" % (package.version, LOCAL_LABEL)
    stem = "%s-%s-py3-none-any.whl" % (package.name.replace("-", "_"), version)
    env = dict(os.environ)
    # Reproducible timestamps inside the wheel: the sdist's own.
    env["SOURCE_DATE_EPOCH"] = str(int((root / "PKG-INFO").stat().st_mtime))
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    with tempfile.TemporaryDirectory(prefix="rhasspy-asr-wheel-") as scratch:
        command = [python, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                   "--wheel-dir", scratch, str(root)]
        result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                                universal_newlines=True)
        if result.returncode != 0:
            tail = "\n".join(result.stdout.strip().splitlines()[-15:])
            raise BuildError("building the %s wheel failed (%s exited %d). The building Python needs "
                             "setuptools, and wheel when setuptools < 70.1: %s -m pip install "
                             "'setuptools<81' wheel\n%s" % (package.name, " ".join(command),
                                                             result.returncode, python, tail))
        built = sorted(Path(scratch).glob("*.whl"))
        if [p.name for p in built] != [stem]:
            raise BuildError("expected %s from %s, pip built %s" % (stem, sdist.name, [p.name for p in built]))
        out.mkdir(parents=True, exist_ok=True)
        target = out / stem
        # Copied under a name of its own, then renamed: parallel builds never leave a torn wheel.
        partial = out / (".%s.%d.part" % (stem, os.getpid()))
        shutil.copyfile(str(built[0]), str(partial))
        os.replace(str(partial), str(target))
    return target


def build(out: Optional[Path], sdist_dir: Optional[Path] = None, python: str = sys.executable,
          sources_only: Optional[Path] = None, only: Sequence[str] = (), log=print) -> List[Path]:
    """Build (or, with sources_only, only prepare) the packages; return the wheels (or trees)."""
    artifacts = load_artifacts()
    unknown = sorted(set(only) - {p.name for p in PACKAGES})
    if unknown:
        raise BuildError("unknown package(s) %s; known: %s" % (", ".join(unknown),
                                                               ", ".join(p.name for p in PACKAGES)))
    results = []
    for package in PACKAGES:
        if only and package.name not in only:
            continue
        sdist = fetch(artifact_entry(package, artifacts), sdist_dir, python)
        log("%s %s (%s)" % (package.name, package.version, sdist.name))
        if sources_only is not None:
            sources_only.mkdir(parents=True, exist_ok=True)
            existing = sources_only / ("%s-%s" % (package.name, package.version))
            if existing.exists():
                raise BuildError("%s exists: remove it first" % existing)
            results.append(prepare(package, sdist, sources_only, log))
            continue
        assert out is not None
        with tempfile.TemporaryDirectory(prefix="rhasspy-asr-src-") as scratch:
            root = prepare(package, sdist, Path(scratch), log)
            wheel = build_wheel(root, package, out, python, sdist)
        log("  -> %s" % wheel)
        results.append(wheel)
    return results


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="build.py", description="Build the patched Rhasspy ASR wheels (<version>+%s) from the "
        "sdists pinned in artifacts.yml." % LOCAL_LABEL)
    parser.add_argument("--out", default="dist", help="wheel output directory (default: dist)")
    parser.add_argument("--sdist-dir", help="take the sdists from this directory (offline) instead of "
                        "fetching them with pip download into ${PI_VOICE_CACHE:-~/.cache/pi-voice}/downloads")
    parser.add_argument("--python", default=sys.executable,
                        help="Python that fetches the sdists (pip download) and builds the wheels (needs "
                        "setuptools, and wheel when setuptools < 70.1; default: this one)")
    parser.add_argument("--sources-only", metavar="DIR",
                        help="only unpack and patch the sdists into DIR (no wheels)")
    parser.add_argument("--only", action="append", default=[], metavar="PACKAGE",
                        help="build only this package (repeatable): %s" % ", ".join(p.name for p in PACKAGES))
    args = parser.parse_args(argv)
    try:
        build(Path(args.out), Path(args.sdist_dir) if args.sdist_dir else None, args.python,
              Path(args.sources_only) if args.sources_only else None, args.only)
    except BuildError as exc:
        print("build.py: error: %s" % exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
