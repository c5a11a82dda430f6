#!/usr/bin/env python3
"""Build ``deepspeech-0.7.4+compat.<variant>-py3-none-<platform>.whl``.

The wheel holds this directory's ``deepspeech`` package (the ctypes binding and
CLI) and the official ``libdeepspeech.so`` 0.7.4 at ``deepspeech/lib/``, where
the official wheels keep it. Its version ``0.7.4+compat.<variant>`` is a PEP 440
local version, so ``deepspeech==0.7.4`` requirements (Rhasspy, ...) accept it;
``py3-none`` because it has no CPython extension (any CPython 3.7+ loads it).

Input, one of:
  --wheel PATH|URL   an official deepspeech / deepspeech-tflite 0.7.4 wheel
                     (a URL is fetched into the cache; --sha256 is then required)
  --library PATH     a bare libdeepspeech.so 0.7.4 (e.g. from the arm64
                     native_client archive); platform from its ELF header

Stdlib only, Python 3.7+. Example:
  python3 build_wheel.py --wheel deepspeech-0.7.4-cp37-cp37m-linux_armv7l.whl \\
      --sha256 17dbedf5... --out dist/
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import io
import os
import re
import shutil
import stat
import sys
import tempfile
import urllib.request
import zipfile
from typing import List, NamedTuple, Optional, Sequence, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE_DIR = os.path.join(HERE, "deepspeech")
sys.path.insert(0, HERE)

from deepspeech import _library  # noqa: E402  (pure Python: ELF and flavour inspection)

VERSION = "0.7.4"
LIB_MEMBER = "deepspeech/lib/libdeepspeech.so"
DEFAULT_DATE = (2020, 6, 18, 0, 0, 0)  # the 0.7.4 release; fixed for reproducible wheels
_WHEEL_NAME = re.compile(r"^(?P<name>deepspeech(?:[_-]tflite)?)-(?P<version>[^-]+)-(?P<py>[^-]+)-(?P<abi>[^-]+)-(?P<plat>[^-]+)\.whl$")
_PLATFORM_BY_ELF = {(32, "arm"): "linux_armv7l", (64, "aarch64"): "linux_aarch64", (64, "x86_64"): "linux_x86_64"}
_ELF_BY_PLATFORM_SUFFIX = {"armv7l": (32, "arm"), "aarch64": (64, "aarch64"), "x86_64": (64, "x86_64")}


class BuildError(Exception):
    """Bad input to the builder; the message says what and how to fix it."""


class BuiltWheel(NamedTuple):
    path: str
    version: str
    platform: str
    flavour: str
    library_sha256: str


def cache_dir() -> str:
    return os.environ.get("PI_VOICE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "pi-voice")


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(url: str, sha256: str, directory: Optional[str] = None) -> str:
    """Download ``url`` into the cache (once) and return the local path; sha256 is checked."""
    if not re.fullmatch(r"[0-9a-f]{64}", sha256 or ""):
        raise BuildError("a sha256 (64 lowercase hex digits) is required to fetch {}, got {!r}".format(url, sha256))
    directory = directory or os.path.join(cache_dir(), "downloads")
    os.makedirs(directory, exist_ok=True)
    target = os.path.join(directory, url.rstrip("/").rsplit("/", 1)[-1])
    if os.path.isfile(target) and sha256_file(target) == sha256:
        return target
    handle, partial = tempfile.mkstemp(prefix=".part-", dir=directory)
    try:
        with os.fdopen(handle, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
            shutil.copyfileobj(response, out)
        actual = sha256_file(partial)
        if actual != sha256:
            raise BuildError("{} has sha256 {}, expected {}: refusing it".format(url, actual, sha256))
        os.replace(partial, target)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    return target


def check_sha256(path: str, sha256: Optional[str]) -> None:
    if sha256:
        actual = sha256_file(path)
        if actual != sha256.lower():
            raise BuildError("{} has sha256 {}, expected {}".format(path, actual, sha256))


def library_from_wheel(wheel_path: str) -> Tuple[bytes, str]:
    """(library bytes, platform tag) of an official 0.7.4 wheel."""
    match = _WHEEL_NAME.match(os.path.basename(wheel_path))
    if not match:
        raise BuildError(
            "{} is not named like an official DeepSpeech wheel (deepspeech[-tflite]-0.7.4-<py>-<abi>-<platform>.whl)".format(wheel_path)
        )
    if match.group("version") != VERSION:
        raise BuildError("{} is version {}, this builder wraps {} only".format(wheel_path, match.group("version"), VERSION))
    try:
        with zipfile.ZipFile(wheel_path) as archive:
            data = archive.read(LIB_MEMBER)
    except KeyError:
        raise BuildError("{} has no {}".format(wheel_path, LIB_MEMBER)) from None
    except zipfile.BadZipFile as exc:
        raise BuildError("{} is not a valid wheel (zip): {}".format(wheel_path, exc)) from None
    return data, match.group("plat")


def inspect_library_bytes(data: bytes, origin: str) -> Tuple[_library.ElfInfo, str]:
    """ELF info and flavour of a library image; BuildError unless it is libdeepspeech 0.7.4."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "libdeepspeech.so")
        with open(path, "wb") as handle:
            handle.write(data)
        elf = _library.read_elf_info(path)
        flavour = _library.detect_flavour(path)
    if elf is None:
        raise BuildError("{} is not an ELF shared library".format(origin))
    if b"DS_CreateModel" not in data:
        raise BuildError("{} does not export DS_CreateModel: not a libdeepspeech".format(origin))
    if b"v0.7.4-" not in data:
        raise BuildError("{} is not libdeepspeech 0.7.4 (no 'v0.7.4-' version string)".format(origin))
    if flavour == _library.FLAVOUR_UNKNOWN:
        raise BuildError("{}: cannot tell whether this is the TFLite or the TensorFlow build".format(origin))
    return elf, flavour


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode("ascii")


def package_files() -> List[Tuple[str, bytes]]:
    files = []
    for name in sorted(os.listdir(PACKAGE_DIR)):
        if name.endswith(".py"):
            with open(os.path.join(PACKAGE_DIR, name), "rb") as handle:
                files.append(("deepspeech/" + name, handle.read()))
    if not any(name == "deepspeech/__init__.py" for name, _ in files):
        raise BuildError("{} holds no deepspeech/__init__.py".format(PACKAGE_DIR))
    return files


def metadata_text(version: str, flavour: str, source: str) -> str:
    return (
        "Metadata-Version: 2.1\n"
        "Name: deepspeech\n"
        "Version: {version}\n"
        "Summary: DeepSpeech 0.7.4 Python API (ctypes compat binding) with the official libdeepspeech.so ({flavour} build)\n"
        "License: MPL-2.0\n"
        "Requires-Python: >=3.7\n"
        "Provides-Extra: numpy\n"
        "Requires-Dist: numpy; extra == \"numpy\"\n"
        "Description-Content-Type: text/plain\n"
        "\n"
        "The deepspeech 0.7.4 API (Model, Stream, metadata, the deepspeech command) as a ctypes binding\n"
        "over Mozilla's official libdeepspeech.so 0.7.4 ({flavour} build), taken from {source}.\n"
        "Runs on any CPython 3.7+; numpy is optional.\n"
    ).format(version=version, flavour=flavour, source=source)


def write_wheel(out_dir: str, lib: bytes, platform: str, variant: str, flavour: str, source: str) -> str:
    version = "{}+compat.{}".format(VERSION, variant)
    dist_info = "deepspeech-{}.dist-info".format(version)
    entries = package_files() + [(LIB_MEMBER, lib)]
    entries += [
        (dist_info + "/METADATA", metadata_text(version, flavour, source).encode("utf-8")),
        (
            dist_info + "/WHEEL",
            "Wheel-Version: 1.0\nGenerator: deepspeech-compat build_wheel.py\nRoot-Is-Purelib: false\nTag: py3-none-{}\n".format(platform).encode("ascii"),
        ),
        (dist_info + "/entry_points.txt", b"[console_scripts]\ndeepspeech = deepspeech.client:main\n"),
        (dist_info + "/top_level.txt", b"deepspeech\n"),
    ]
    record = io.StringIO()
    for name, data in entries:
        record.write("{},{},{}\n".format(name, _record_hash(data), len(data)))
    record.write("{}/RECORD,,\n".format(dist_info))
    entries.append((dist_info + "/RECORD", record.getvalue().encode("utf-8")))

    os.makedirs(out_dir, exist_ok=True)
    target = os.path.join(out_dir, "deepspeech-{}-py3-none-{}.whl".format(version, platform))
    partial = "{}.part.{}".format(target, os.getpid())  # own name: parallel builds never interleave
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=DEFAULT_DATE)
            mode = 0o755 if name == LIB_MEMBER else 0o644
            info.external_attr = (stat.S_IFREG | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    os.replace(partial, target)
    return target


def build(
    out_dir: str,
    wheel: Optional[str] = None,
    library: Optional[str] = None,
    sha256: Optional[str] = None,
    platform: Optional[str] = None,
    variant: Optional[str] = None,
) -> BuiltWheel:
    """Build the compat wheel from an official wheel (path or URL) or a bare library."""
    if (wheel is None) == (library is None):
        raise BuildError("give exactly one of --wheel or --library")
    if wheel is not None:
        if re.match(r"^https?://", wheel):
            wheel = fetch(wheel, (sha256 or "").lower())
        elif not os.path.isfile(wheel):
            raise BuildError("wheel {!r} does not exist".format(wheel))
        else:
            check_sha256(wheel, sha256)
        data, wheel_platform = library_from_wheel(wheel)
        source = os.path.basename(wheel)
        platform = platform or wheel_platform
    else:
        assert library is not None
        if not os.path.isfile(library):
            raise BuildError("library {!r} does not exist".format(library))
        check_sha256(library, sha256)
        with open(library, "rb") as handle:
            data = handle.read()
        source = os.path.basename(library)
    elf, flavour = inspect_library_bytes(data, source)
    if platform is None:
        platform = _PLATFORM_BY_ELF.get((elf.bits, elf.machine))
        if platform is None:
            raise BuildError("no default platform tag for a {}-bit {} library: pass --platform".format(elf.bits, elf.machine))
    suffix = next((s for s in _ELF_BY_PLATFORM_SUFFIX if platform.endswith("_" + s)), None)
    if suffix is None or _ELF_BY_PLATFORM_SUFFIX[suffix] != (elf.bits, elf.machine):
        raise BuildError(
            "platform tag {!r} does not fit the library ({}-bit {}); use one of: {}".format(
                platform, elf.bits, elf.machine, ", ".join(sorted(_PLATFORM_BY_ELF.values())))
        )
    variant = variant or flavour
    if not re.fullmatch(r"[a-z0-9]+(\.[a-z0-9]+)*", variant):
        raise BuildError("variant {!r} must be lowercase letters/digits separated by dots (PEP 440 local version)".format(variant))
    path = write_wheel(out_dir, data, platform, variant, flavour, source)
    return BuiltWheel(path, "{}+compat.{}".format(VERSION, variant), platform, flavour, hashlib.sha256(data).hexdigest())


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="Build the deepspeech 0.7.4 compat wheel around the official libdeepspeech.so.")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--wheel", help="official deepspeech / deepspeech-tflite 0.7.4 wheel: a path or an https URL")
    source.add_argument("--library", help="a bare libdeepspeech.so 0.7.4")
    parser.add_argument("--sha256", help="expected sha256 of the input (required for a URL)")
    parser.add_argument("--platform", help="wheel platform tag (default: the official wheel's, or from the library's ELF header)")
    parser.add_argument("--variant", help="local version label, 0.7.4+compat.<variant> (default: the flavour, tflite or tensorflow)")
    parser.add_argument("--out", default="dist", help="output directory (default: dist)")
    args = parser.parse_args(argv)
    try:
        built = build(args.out, wheel=args.wheel, library=args.library, sha256=args.sha256, platform=args.platform, variant=args.variant)
    except (BuildError, OSError) as exc:
        print("build_wheel: error: {}".format(exc), file=sys.stderr)
        return 1
    print(built.path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
