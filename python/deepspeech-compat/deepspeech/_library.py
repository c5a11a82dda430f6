"""Find, check and load the official ``libdeepspeech.so`` 0.7.4.

Lookup: ``$DEEPSPEECH_LIBRARY`` when set (it must name an existing file: a set
but wrong variable is an error, never a silent fallback), otherwise the library
embedded in the package at ``deepspeech/lib/libdeepspeech.so`` (the official
wheels' layout, kept by ``build_wheel.py``).

Before ``dlopen`` the ELF header is compared with the running interpreter's, so
the armhf library in a 64-bit Python fails with an explanation instead of the
bare "wrong ELF class: ELFCLASS32".

Flavour: the 0.7.4 library is built either with the TFLite runtime (reads only
``.tflite``) or with the full TensorFlow runtime (reads only ``.pb``/``.pbmm``).
Nothing in the C API says which, so the flavour is read from the library file
itself: the TFLite runtime carries the FlatBuffer loader's message "Model
provided has model identifier", the TensorFlow runtime carries its
``MemmappedFileSystem`` and ``DirectSession`` classes. Each of these strings is
in exactly one of the official builds (checked on the x86_64 TFLite, x86_64
TensorFlow and armv7l builds); the test suite re-checks this on the real files.
"""
from __future__ import annotations

import ctypes
import os
import struct
import sys
from typing import Dict, NamedTuple, Optional, Tuple

from ._errors import LibraryError

ENV_VAR = "DEEPSPEECH_LIBRARY"
LIBRARY_NAME = "libdeepspeech.so"

FLAVOUR_TFLITE = "tflite"
FLAVOUR_TENSORFLOW = "tensorflow"
FLAVOUR_UNKNOWN = "unknown"

_TFLITE_MARKERS = (b"Model provided has model identifier",)
_TENSORFLOW_MARKERS = (b"MemmappedFileSystem", b"DirectSession")

# e_machine values of the architectures DeepSpeech 0.7.4 was built for.
_MACHINES = {3: "x86", 40: "arm", 62: "x86_64", 183: "aarch64"}


class ElfInfo(NamedTuple):
    bits: int  # 32 or 64
    machine: str  # "arm", "aarch64", "x86_64", ... or "e_machine=<n>"


class LibraryInfo(NamedTuple):
    path: str
    flavour: str
    elf: ElfInfo


def default_library_path() -> str:
    """The library embedded in the package (``deepspeech/lib/libdeepspeech.so``)."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib", LIBRARY_NAME)


def find_library() -> str:
    """Return the path of the library to load, or raise LibraryError saying what is missing."""
    configured = os.environ.get(ENV_VAR)
    if configured:
        if not os.path.isfile(configured):
            raise LibraryError(
                "{}={!r} does not name an existing file. Point it at the official DeepSpeech 0.7.4 "
                "libdeepspeech.so (deepspeech/lib/libdeepspeech.so inside the official wheel), or unset "
                "it to use the library embedded in this package.".format(ENV_VAR, configured)
            )
        return configured
    embedded = default_library_path()
    if os.path.isfile(embedded):
        return embedded
    raise LibraryError(
        "No libdeepspeech.so: this deepspeech package (the compat binding) carries no native library at "
        "{!r} and {} is not set. Install a wheel built by python/deepspeech-compat/build_wheel.py for this "
        "machine's architecture (it embeds the official 0.7.4 library), or set {}=/path/to/libdeepspeech.so."
        .format(embedded, ENV_VAR, ENV_VAR)
    )


def read_elf_info(path: str) -> Optional[ElfInfo]:
    """ELF class and machine of ``path``; None when it is not an ELF file."""
    with open(path, "rb") as handle:
        header = handle.read(20)
    if len(header) < 20 or header[:4] != b"\x7fELF":
        return None
    bits = {1: 32, 2: 64}.get(header[4], 0)
    endian = "<" if header[5] == 1 else ">"
    (machine_id,) = struct.unpack(endian + "H", header[18:20])
    return ElfInfo(bits, _MACHINES.get(machine_id, "e_machine={}".format(machine_id)))


def process_elf_info() -> ElfInfo:
    """Architecture of the running interpreter (its own ELF header, not ``uname -m``).

    On a 64-bit kernel a 32-bit armhf Python may report ``aarch64`` from uname;
    the interpreter binary itself says what the process can load.
    """
    bits = struct.calcsize("P") * 8
    executable = os.path.realpath(sys.executable) if sys.executable else ""
    if executable and os.path.isfile(executable):
        try:
            info = read_elf_info(executable)
        except OSError:
            info = None
        if info is not None and info.bits == bits:
            return info
    import platform

    machine = platform.machine().lower()
    if machine in ("armv7l", "armv6l", "armv8l", "arm") or (machine == "aarch64" and bits == 32):
        machine = "arm"
    elif machine in ("amd64", "x86_64") and bits == 32:
        machine = "x86"
    elif machine == "amd64":
        machine = "x86_64"
    return ElfInfo(bits, machine)


def _describe(elf: ElfInfo) -> str:
    names = {
        (32, "arm"): "32-bit ARM (armhf/armv7l)",
        (64, "aarch64"): "64-bit ARM (arm64/aarch64)",
        (64, "x86_64"): "64-bit x86 (amd64/x86_64)",
        (32, "x86"): "32-bit x86 (i386)",
    }
    return names.get((elf.bits, elf.machine), "{}-bit {}".format(elf.bits, elf.machine))


_ARMHF_IN_ARM64 = (
    " The armhf library (the only ARM build of deepspeech 0.7.4 on PyPI) fails in a 64-bit (arm64) "
    "Python with 'wrong ELF class: ELFCLASS32'. On a 64-bit Raspberry Pi OS use the 0.7.4 arm64 "
    "library from the native_client release archive (build_wheel.py --library ... --platform "
    "linux_aarch64), or run the assistant in a 32-bit armhf userland (container/OS)."
)


def explain_arch_mismatch(path: str, lib: ElfInfo, proc: ElfInfo) -> str:
    text = "{} is a {} library, but this Python ({}) is a {} process; a process can only load libraries of its own architecture.".format(
        path, _describe(lib), sys.executable or "python", _describe(proc)
    )
    if lib == ElfInfo(32, "arm") and proc.bits == 64 and proc.machine in ("aarch64", "arm"):
        text += _ARMHF_IN_ARM64
    else:
        text += " Install the deepspeech-compat wheel built for this architecture, or point {} at a matching libdeepspeech.so.".format(ENV_VAR)
    return text


def explain_wrong_elf_class(path: str, lib: ElfInfo, error: str) -> str:
    """For a dlopen that failed with 'wrong ELF class' although the pre-check passed."""
    bits = struct.calcsize("P") * 8
    text = "Cannot load {}: {}. The library is {}, this Python is a {}-bit process.".format(path, error, _describe(lib), bits)
    if lib == ElfInfo(32, "arm") and bits == 64:
        text += _ARMHF_IN_ARM64
    return text


def detect_flavour(path: str) -> str:
    """``tflite``, ``tensorflow`` or ``unknown``, from marker strings inside the library file."""
    with open(path, "rb") as handle:
        data = handle.read()
    tflite = any(marker in data for marker in _TFLITE_MARKERS)
    tensorflow = any(marker in data for marker in _TENSORFLOW_MARKERS)
    if tflite and not tensorflow:
        return FLAVOUR_TFLITE
    if tensorflow and not tflite:
        return FLAVOUR_TENSORFLOW
    return FLAVOUR_UNKNOWN


_flavour_cache: Dict[Tuple[str, int, float], str] = {}


def flavour_of(path: str) -> str:
    stat = os.stat(path)
    key = (os.path.realpath(path), stat.st_size, stat.st_mtime)
    if key not in _flavour_cache:
        _flavour_cache[key] = detect_flavour(path)
    return _flavour_cache[key]


def inspect_library(path: str) -> LibraryInfo:
    elf = read_elf_info(path)
    if elf is None:
        raise LibraryError("{} is not an ELF shared library (wrong file, or a Git LFS pointer?).".format(path))
    return LibraryInfo(path, flavour_of(path), elf)


def open_library(path: str) -> ctypes.CDLL:
    """dlopen ``path`` after checking that its architecture fits this process."""
    info = inspect_library(path)
    proc = process_elf_info()
    if info.elf != proc:
        raise LibraryError(explain_arch_mismatch(path, info.elf, proc))
    try:
        return ctypes.CDLL(path)
    except OSError as exc:
        message = str(exc)
        if "wrong ELF class" in message:
            raise LibraryError(explain_wrong_elf_class(path, info.elf, message)) from exc
        raise LibraryError("Cannot load {}: {}".format(path, message)) from exc
