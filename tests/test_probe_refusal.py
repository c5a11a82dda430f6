"""The probe's verdict (plugins/filter/probe.py) for each kind of Pi the raw probe can find, with the exact messages
tests/test_probe.py also sees through Ansible against real containers: the first refusal that applies, or none."""
from __future__ import annotations

from typing import Any, Dict

import pytest

from ansible_collections.pivoice.voice_appliance.plugins.filter.probe import probe_refusal

RELEASES = ["bullseye", "bookworm", "trixie"]
BOOKWORM: Dict[str, Any] = {"python3": "/usr/bin/python3", "python_version": "3.11.2", "os_id": "debian",
                            "os_codename": "bookworm", "os_name": "Debian GNU/Linux 12 (bookworm)"}


def _verdict(**found: Any) -> str:
    return probe_refusal(dict(BOOKWORM, **found), "pi-1", RELEASES, "3.8", "2.19.4")


@pytest.mark.parametrize("version", ["3.9.2", "3.11.2", "3.13.5", "3.10.0", "3.8.10"])
def test_a_supported_pi_passes(version: str) -> None:
    assert _verdict(python_version=version) == "", "3.10 is newer than 3.8 (numbers, not text)"


@pytest.mark.bad_input
def test_no_python3_or_one_that_does_not_run_is_refused_with_the_install_fix_and_a_release_note_when_due() -> None:
    assert _verdict(python3="", python_version="") == (
        "Cannot manage pi-1 (Debian GNU/Linux 12 (bookworm)): it has no python3, and Ansible runs its modules with the Pi's "
        "Python 3. Fix: install python3: sudo apt install python3.")
    broken = _verdict(python_version="", os_codename="stretch", os_name="")
    assert broken == ("Cannot manage pi-1 (debian): its python3 (/usr/bin/python3) does not run, and Ansible runs its modules "
                      "with the Pi's Python 3. Fix: install python3: sudo apt install python3. Note that its release is not "
                      "supported either (supported: Raspberry Pi OS / Debian bullseye, bookworm, trixie): upgrade the Pi to "
                      "Raspberry Pi OS bullseye or later.")


@pytest.mark.bad_input
def test_buster_python_3_7_is_refused_naming_ansible_and_the_upgrade() -> None:
    assert _verdict(python_version="3.7.3", os_codename="buster", os_name="Raspbian GNU/Linux 10 (buster)") == (
        "Cannot manage pi-1 (Raspbian GNU/Linux 10 (buster)): its Python is 3.7.3 (/usr/bin/python3), and current Ansible "
        "(ansible-core 2.19.4) cannot manage a Pi with Python older than 3.8 at all (Raspberry Pi OS buster ships Python "
        "3.7). Fix: upgrade the Pi to Raspberry Pi OS bullseye or later (bookworm recommended; supported: bullseye, "
        "bookworm, trixie), e.g. flash a current image.")


@pytest.mark.bad_input
def test_an_unsupported_release_is_refused_naming_what_os_release_says() -> None:
    assert _verdict(os_codename="stretch", os_name="Debian GNU/Linux 9 (stretch)") == (
        "Unsupported release on pi-1: Debian GNU/Linux 9 (stretch) (ID=debian, VERSION_CODENAME=stretch in /etc/os-release). "
        "The voice appliance supports Raspberry Pi OS / Debian bullseye, bookworm, trixie on armhf, arm64 and amd64. Fix: "
        "install Raspberry Pi OS bookworm (or another supported release) on this Pi, or extend "
        "deepspeech_deps_supported_releases if you know the release works.")
    assert probe_refusal(dict(BOOKWORM, os_codename="stretch"), "pi-1", ["stretch"], "3.8", "2.19.4") == "", "a fleet's own list"
    assert "Unsupported release on pi-1: an unknown OS (ID=, VERSION_CODENAME= in" in _verdict(os_codename="", os_name="", os_id="")
