"""Filters that decide what a Pi gets: its DeepSpeech wheel, the fleet's compat builds, its model files, its pins.

Pure functions of the artifact table and the Pi's facts, run on the controller; the roles deepspeech_runtime,
deepspeech_model, deepspeech_tools and rhasspy_asr call them (tests/test_install_plan.py tests them).
"""
from __future__ import annotations

import re
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

from ansible.errors import AnsibleFilterError

# The wheels' platform tags per Debian architecture (deepspeech_runtime_wheel_platforms supplies them).
ARCHES = ("amd64", "armhf", "arm64")
_PYTHON = re.compile(r"^(\d+)\.(\d+)")
_MARKER = re.compile(r"""^\s*python_version\s*(>=|<=|==|!=|<|>)\s*["']([0-9]+(?:\.[0-9]+)*)["']\s*$""")


def version_tuple(text: str) -> tuple:
    """(3, 11) from '3.11': versions compared as numbers (3.10 is newer than 3.9)."""
    return tuple(int(part) for part in text.split("."))


def python_release(python: Any) -> str:
    """'3.11' from '3.11', '3.11.2' or a facts dict {'major': 3, 'minor': 11}; refused when it holds none."""
    if isinstance(python, Mapping):
        python = "{}.{}".format(python.get("major", ""), python.get("minor", ""))
    match = _PYTHON.match(str(python))
    if not match:
        raise AnsibleFilterError("a Python version like '3.11' is needed; got {!r}".format(python))
    return "{}.{}".format(match.group(1), match.group(2))


def pip_requirements(text: str, python: Any, source: str = "requirements") -> List[str]:
    """The pins of a requirements file that apply to a Pi's Python (markers `python_version OP "X.Y"` only).

    Evaluated here so that the pip module compares each pin on its own (also in check mode); any other marker
    is refused with its line, since it would be judged by the controller rather than the Pi.
    """
    version = version_tuple(python_release(python))
    compare: Dict[str, Callable[[tuple, tuple], bool]] = {
        ">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b, "==": lambda a, b: a == b,
        "!=": lambda a, b: a != b, "<": lambda a, b: a < b, ">": lambda a, b: a > b}
    pins: List[str] = []
    for number, raw in enumerate(str(text).splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        requirement, _, marker = line.partition(";")
        if marker.strip():
            match = _MARKER.match(marker)
            if not match:
                raise AnsibleFilterError(
                    "{}:{}: the marker {!r} cannot be decided for the Pi; only python_version OP \"X.Y\" is supported "
                    "(split the line into one pin per Python range)".format(source, number, marker.strip()))
            if not compare[match.group(1)](version, version_tuple(match.group(2))):
                continue
        pins.append(requirement.replace(" ", ""))
    return pins


def deepspeech_runtime_choice(arch: str, python: Any, version: str, x86_flavour: str = "tflite",
                              arm64_native_client_url: str = "", wheel_platforms: Optional[Mapping[str, str]] = None,
                              compat_subdir: str = "compat-wheels") -> Dict[str, Any]:
    """The wheel a Pi gets: always the compat wheel (the official 0.7.4 wheels are for CPython 3.5-3.8, which no
    supported Debian has), with the official library of its architecture inside."""
    if arch not in ARCHES:
        raise AnsibleFilterError("Debian architecture {!r} has no DeepSpeech {} library; supported: {}".format(
            arch, version, ", ".join(ARCHES)))
    platforms = dict(wheel_platforms or {})
    if arch not in platforms:
        raise AnsibleFilterError("no wheel platform tag for {!r} in deepspeech_runtime_wheel_platforms".format(arch))
    python_version = python_release(python)
    flavour = x86_flavour if arch == "amd64" else "tflite"
    if arch == "arm64" and arm64_native_client_url:
        # A user-supplied native_client archive overrides the official library from the npm package.
        artifact: Dict[str, str] = {"name": "deepspeech_native_client", "version": version, "variant": "arm64"}
    elif arch == "arm64":
        # Mozilla's own linux-arm64 library, shipped inside the npm package deepspeech@0.7.4 (FACTS §10).
        artifact = {"name": "deepspeech_npm", "version": version, "variant": "any", "member": "linux-arm64"}
    else:
        # The library is the same in every cpXY wheel of an arch: take it from the one the table always has.
        wheel = "deepspeech_tflite_wheel" if arch == "amd64" and flavour == "tflite" else "deepspeech_wheel"
        artifact = {"name": wheel, "version": version, "variant": "{}-{}".format(arch, "cp37" if arch == "armhf" else "cp38")}
    label = "compat.{}.{}".format(flavour, arch)
    return {"kind": "compat", "flavour": flavour, "arch": arch, "python": "cp" + python_version.replace(".", ""),
            "artifact": artifact, "label": label,
            "filename": "deepspeech-{}+{}-py3-none-{}.whl".format(version, label, platforms[arch]),
            "cache_subdir": compat_subdir + "/", "requirement": "deepspeech=={}+{}".format(version, label)}


def deepspeech_compat_builds(choices: Sequence[Mapping[str, Any]], catalog: Mapping[str, Any], cache: str = "") -> List[Dict[str, Any]]:
    """The distinct compat wheels of a fleet (one per file name), each with the cached artifact its library is in and,
    given the compat wheels' cache directory, the path of its wheel there (``wheel``: what staging looks for and the
    build makes)."""
    builds: Dict[str, Dict[str, Any]] = {}
    for choice in choices:
        if choice.get("kind") != "compat" or choice["filename"] in builds:
            continue
        artifact = choice["artifact"]
        try:
            entry = catalog[artifact["name"]][artifact["version"]][artifact["variant"]]
        except KeyError:
            raise AnsibleFilterError("the artifact table has no {name} {version} {variant} (needed for {0})".format(
                choice["filename"], **artifact)) from None
        member = entry.get("members", {}).get(artifact["member"], {}) if "member" in artifact else {}
        if "member" in artifact and not member:
            raise AnsibleFilterError("the artifact table's {name} {version} lists no member {member}".format(**artifact))
        builds[choice["filename"]] = {
            "filename": choice["filename"], "arch": choice["arch"], "label": choice["label"],
            "artifact_file": "{}/{}/{}".format(artifact["name"], artifact["version"], entry["filename"]),
            "sha256": entry.get("sha256", ""), "member": member.get("path", ""), "member_sha256": member.get("sha256", ""),
            "library_dir": "lib-{}-{}".format(artifact["name"], artifact.get("member", choice["arch"]))}
        if cache:
            builds[choice["filename"]]["wheel"] = "{}/{}".format(cache.rstrip("/"), choice["filename"])
    return list(builds.values())


def deepspeech_model_items(catalog: Mapping[str, Any], name: str, version: str, flavour: str) -> List[Dict[str, str]]:
    """The artifact keys of the model files a Pi needs: the graph its runtime reads (protobuf only for the x86
    full-TensorFlow build), the alphabet, and the scorer if the model has one."""
    files = catalog.get(name, {}).get(str(version))
    if files is None:
        raise AnsibleFilterError("the model {} {} is not in the artifact table".format(name, version))
    graph = "pb" if flavour == "tensorflow" else "tflite"
    variants = [graph, "alphabet"] + (["scorer"] if "scorer" in files else [])
    return [{"name": name, "version": str(version), "variant": variant} for variant in variants]


class FilterModule:
    def filters(self) -> Dict[str, Callable[..., Any]]:
        return {"pip_requirements": pip_requirements, "deepspeech_runtime_choice": deepspeech_runtime_choice,
                "deepspeech_compat_builds": deepspeech_compat_builds, "deepspeech_model_items": deepspeech_model_items}
