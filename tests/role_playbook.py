"""Run a role's playbook on this controller as the tests that drive roles through ansible-playbook do: the work
directory holds hosts.ini, playbook.yml and an ansible.cfg of its own (no timing callbacks, no fact cache: only the
JSON report on stdout); the variables go in as vars.json. Used by tests/test_artifact_stage.py and
tests/test_deepspeech_model.py."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Tuple

REPO = Path(__file__).resolve().parent.parent


def run_role_playbook(work: Path, variables: Mapping[str, Any], check: bool = False) -> Tuple[int, Dict[str, Any]]:
    """ansible-playbook -i work/hosts.ini work/playbook.yml -e @work/vars.json: its exit code and its JSON report."""
    (work / "vars.json").write_text(json.dumps(variables))
    env = dict(os.environ, ANSIBLE_ROLES_PATH=str(REPO / "roles"), ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
               ANSIBLE_CONFIG=str(work / "ansible.cfg"))
    cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(work / "hosts.ini"),
           str(work / "playbook.yml"), "-e", "@" + str(work / "vars.json")] + (["--check"] if check else [])
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=300)
    try:
        return proc.returncode, json.loads(proc.stdout)
    except ValueError:
        raise AssertionError("ansible-playbook printed no JSON report:\n" + proc.stdout[-3000:] + proc.stderr[-3000:]) from None


def failure_messages(results: Iterable[Mapping[str, Any]]) -> List[str]:
    """The messages of the failed task results, a loop's failed items' too."""
    return [msg for result in results if result.get("failed")
            for msg in [result.get("msg", "")] + [item.get("msg", "") for item in result.get("results", []) if item.get("failed")]]
