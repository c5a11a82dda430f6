"""debian_packages_missing, deepspeech_deps' reading of dpkg-query: apt runs only for a package dpkg does not show as
installed. Fed dpkg-query's real output on this machine (run as the role's raw task runs it) and written statuses."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import List

import pytest
import yaml

from ansible_collections.pivoice.voice_appliance.plugins.filter import debian_packages as packages

REPO = Path(__file__).resolve().parent.parent


def _task_command(wanted: List[str]) -> str:
    """The role's raw command for these packages (its Jinja part rendered as Ansible would: quoted, space-joined)."""
    tasks = yaml.safe_load((REPO / "roles" / "deepspeech_deps" / "tasks" / "packages.yml").read_text())
    command = next(task["ansible.builtin.raw"] for task in tasks if "ansible.builtin.raw" in task)
    return command.replace("{{ deepspeech_deps_apt_packages | map('quote') | join(' ') }}", " ".join(wanted))


@pytest.mark.skipif(not shutil.which("dpkg-query"), reason="needs Debian's dpkg")
def test_the_roles_query_shows_what_this_machine_has_and_lacks() -> None:
    wanted = ["bash", "dpkg", "no-such-package-here", "bash", "coreutils"]
    done = subprocess.run(["/bin/sh", "-c", _task_command(wanted)], stdout=subprocess.PIPE, universal_newlines=True, check=True)
    assert "bash ii" in done.stdout
    assert packages.debian_packages_missing(done.stdout, wanted) == ["no-such-package-here"]
    assert packages.debian_packages_missing(done.stdout, ["bash", "dpkg"]) == []


@pytest.mark.parametrize("status, missing", [("ii", []), ("hi", []), ("un", ["sox"]), ("rc", ["sox"]), ("iU", ["sox"]),
                                             ("iH", ["sox"]), ("iiR", ["sox"]), ("", ["sox"])])
def test_only_an_installed_status_without_an_error_flag_counts(status: str, missing: List[str]) -> None:
    assert packages.debian_packages_missing("sox {}\r\nalsa-utils ii\r\n".format(status), ["sox", "alsa-utils"]) == missing


def test_what_only_apt_understands_goes_to_apt() -> None:
    output = "sox ii\ngcc ii\n"
    assert packages.debian_packages_missing(output, ["sox", "gcc=4:12.2.0-3", "gcc:arm64", "python3-*", "./x.deb"]) == [
        "gcc=4:12.2.0-3", "gcc:arm64", "python3-*", "./x.deb"]
    assert packages.debian_packages_missing("", []) == [] and packages.debian_packages_missing(None, ["sox"]) == ["sox"]
