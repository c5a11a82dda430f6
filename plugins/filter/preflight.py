"""Whether a machine can run the voice appliance: the preflight of the role deepspeech_deps, as messages.

Read-only, on the controller, from the machine's facts and one raw round trip (``dpkg --print-architecture``
and ``df -P -k``, whose last line is the deepest existing directory of the appliance's base directory)::

    deepspeech_deps_errors: >-
      {{ ansible_facts | pivoice.voice_appliance.preflight_errors(deepspeech_deps_probe.stdout_lines, {...}) }}

Every problem found is named at once, each with the value seen and the fix: the release, the CPU (refused or
unknown), the userland's architecture (a 32-bit Raspberry Pi OS on a 64-bit kernel reports aarch64 but runs
armhf programs), Python, memory and free disk space.
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Sequence

from ansible.errors import AnsibleFilterError
from ansible_collections.pivoice.voice_appliance.plugins.filter.install_plan import python_release, version_tuple


def preflight_errors(facts: Mapping[str, Any], probe_lines: Sequence[str], settings: Mapping[str, Any]) -> List[str]:
    """The preflight's refusals, [] for a machine that can run the appliance.

    settings: supported_distributions, supported_releases, refused_architectures (arch -> why), arch_map (CPU
    architecture -> Debian architecture), min_python ("3.9"), min_ram_mb, min_free_disk_mb and base_dir.
    """
    errors: List[str] = []
    distributions, releases = list(settings["supported_distributions"]), list(settings["supported_releases"])
    if facts.get("distribution") not in distributions or facts.get("distribution_release") not in releases:
        errors.append(
            "Unsupported operating system '{} {} ({})'. The voice appliance supports {} (Raspberry Pi OS reports itself as one "
            "of these) {}. Upgrade the Pi to Raspberry Pi OS bullseye or later (bookworm recommended), or extend "
            "deepspeech_deps_supported_releases if you know the release works.".format(
                facts.get("distribution"), facts.get("distribution_version", ""), facts.get("distribution_release"),
                " / ".join(distributions), ", ".join(releases)))
    cpu, arch_map = facts.get("architecture"), dict(settings["arch_map"])
    refused = dict(settings["refused_architectures"])
    if cpu in refused:
        errors.append("Unsupported architecture '{}': {}.".format(cpu, " ".join(str(refused[cpu]).split())))
    elif cpu not in arch_map:
        errors.append("Unsupported architecture '{}'. Supported: {} (Raspberry Pi 3/4/5 with a 32-bit or 64-bit OS, or an "
                      "x86_64 machine).".format(cpu, ", ".join(arch_map)))
    userland = probe_lines[0].strip() if probe_lines else ""
    if userland not in arch_map.values():
        errors.append("Unsupported userland architecture '{}' (dpkg --print-architecture) on a '{}' CPU. Supported: {}. Install "
                      "the 32-bit (armhf) or 64-bit (arm64) Raspberry Pi OS.".format(userland, cpu, ", ".join(arch_map.values())))
    executable = facts.get("python", {}).get("executable", "python3")
    try:
        python = python_release(facts.get("python", {}).get("version", {}))
    except AnsibleFilterError:
        python = ""
    if not python:
        errors.append("The Python version of {} is unknown (the facts hold no python.version). Gather the Pi's facts (the "
                      "play's gather_facts, or ansible.builtin.setup) before this check.".format(executable))
    elif version_tuple(python) < version_tuple(str(settings["min_python"])):
        errors.append(
            "Python {} ({}) is too old: the appliance needs Python {} or newer. Upgrade the Pi to Raspberry Pi OS bullseye or "
            "later (bullseye ships Python 3.9, bookworm 3.11, trixie 3.13; buster's 3.7 is too old).".format(
                python, executable, settings["min_python"]))
    if int(facts.get("memtotal_mb", 0)) < int(settings["min_ram_mb"]):
        errors.append(
            "Not enough memory: {} MiB total, the appliance needs at least {} MiB (a Raspberry Pi 3 or newer). Use a Pi with "
            "more memory, or lower deepspeech_deps_min_ram_mb if you run a smaller model.".format(
                facts.get("memtotal_mb"), settings["min_ram_mb"]))
    df = probe_lines[-1].split() if len(probe_lines) >= 3 else []
    free_mb = int(df[3]) // 1024 if len(df) >= 6 and df[3].isdigit() else -1
    if free_mb < int(settings["min_free_disk_mb"]):
        errors.append(
            "Not enough free disk space for {}: {} MiB free on '{}', the appliance needs at least {} MiB. Free some space (e.g. "
            "apt-get clean, old logs) or use a larger SD card.".format(
                settings["base_dir"], free_mb if free_mb >= 0 else "unknown", df[-1] if df else "?", settings["min_free_disk_mb"]))
    return errors


class FilterModule:
    def filters(self) -> Dict[str, Any]:
        return {"preflight_errors": preflight_errors}
