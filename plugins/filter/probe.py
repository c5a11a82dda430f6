"""Whether Ansible can manage a Pi and the appliance supports its release: the raw probe's verdict (playbooks/probe.yml).

Read on the controller from what the probe's one raw round trip found (``python3``, ``python_version``, ``os_id``,
``os_codename``, ``os_name``), before Ansible relies on the Pi's Python::

    pi_probe_refusal: >-
      {{ pi_probe_found | pivoice.voice_appliance.probe_refusal(inventory_hostname, pi_probe_supported_releases,
                                                                 pi_probe_min_python, ansible_version.full) }}

The first refusal that applies, with its fix, or "" for a Pi that passes: no python3 (or one that does not run),
a Python older than current Ansible can manage (buster's 3.7), an unsupported release. A Pi with neither a working
python3 nor a supported release hears of both in the one message.
"""
from __future__ import annotations

import re
from typing import Any, Callable, Dict, Mapping, Sequence

from ansible_collections.pivoice.voice_appliance.plugins.filter.install_plan import python_release, version_tuple

_RUNS = re.compile(r"^[0-9]+\.[0-9]+")


def probe_refusal(found: Mapping[str, Any], host: str, supported_releases: Sequence[str], min_python: str,
                  ansible_version: str) -> str:
    """Why the probe refuses this Pi (one message with its fix), or ""."""
    supported = ", ".join(str(release) for release in supported_releases)
    python3, version = str(found.get("python3") or ""), str(found.get("python_version") or "")
    codename = str(found.get("os_codename") or "")
    system = found.get("os_name") or found.get("os_id") or "an unknown OS"
    if not python3 or not _RUNS.match(version):
        problem = "its python3 ({}) does not run".format(python3) if python3 else "it has no python3"
        note = "" if codename in supported_releases else (
            " Note that its release is not supported either (supported: Raspberry Pi OS / Debian {}): upgrade the Pi to "
            "Raspberry Pi OS bullseye or later.".format(supported))
        return ("Cannot manage {} ({}): {}, and Ansible runs its modules with the Pi's Python 3. Fix: install python3: sudo "
                "apt install python3.{}".format(host, system, problem, note))
    if version_tuple(python_release(version)) < version_tuple(python_release(min_python)):
        return ("Cannot manage {} ({}): its Python is {} ({}), and current Ansible (ansible-core {}) cannot manage a Pi with "
                "Python older than {} at all (Raspberry Pi OS buster ships Python 3.7). Fix: upgrade the Pi to Raspberry Pi OS "
                "bullseye or later (bookworm recommended; supported: {}), e.g. flash a current image.".format(
                    host, system, version, python3, ansible_version, min_python, supported))
    if codename not in supported_releases:
        return ("Unsupported release on {}: {} (ID={}, VERSION_CODENAME={} in /etc/os-release). The voice appliance supports "
                "Raspberry Pi OS / Debian {} on armhf, arm64 and amd64. Fix: install Raspberry Pi OS bookworm (or another "
                "supported release) on this Pi, or extend deepspeech_deps_supported_releases if you know the release "
                "works.".format(host, system, found.get("os_id") or "", codename, supported))
    return ""


class FilterModule:
    def filters(self) -> Dict[str, Callable[..., Any]]:
        return {"probe_refusal": probe_refusal}
