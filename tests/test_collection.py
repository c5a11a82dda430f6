"""The repository is the Ansible collection pivoice.voice_appliance (issue 13, item 1).

Built with ansible-galaxy into a tarball, installed into a temporary collections path and used from a
separate inventory directory that holds no file of this repository: every playbook resolves by its
collection name, and the probe runs for real against the controller (the collection's filter plugins,
its roles' argument specs, the raw probe and the fleet report callback), refusing a wrongly typed variable
of the user's inventory.
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import tarfile
from pathlib import Path
from typing import Dict, List

import pytest
import yaml
from test_probe import _ansible_playbook

ANSIBLE_GALAXY = str(Path(_ansible_playbook()).with_name("ansible-galaxy"))

REPO = Path(__file__).resolve().parent.parent
GALAXY = yaml.safe_load((REPO / "galaxy.yml").read_text())
NAME = "{}.{}".format(GALAXY["namespace"], GALAXY["name"])
PLAYBOOKS = sorted(p.stem for p in (REPO / "playbooks").glob("*.yml"))


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Path]:
    """The built tarball, installed into an empty collections path (ansible-galaxy run outside the checkout,
    whose ansible.cfg would show it the checkout as already installed)."""
    work = tmp_path_factory.mktemp("collection")
    env = dict(os.environ, ANSIBLE_CONFIG=str(work / "none.cfg"), ANSIBLE_COLLECTIONS_PATH=str(work / "none"))
    built = subprocess.run([ANSIBLE_GALAXY, "collection", "build", "--output-path", str(work), str(REPO)], cwd=str(work),
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, timeout=300, check=False)
    assert built.returncode == 0, built.stdout
    tarball = work / "{}-{}-{}.tar.gz".format(GALAXY["namespace"], GALAXY["name"], GALAXY["version"])
    assert tarball.is_file(), built.stdout
    done = subprocess.run([ANSIBLE_GALAXY, "collection", "install", "--offline", "--no-deps", "-p", str(work / "collections"),
                           str(tarball)], cwd=str(work), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, timeout=300, check=False)
    assert done.returncode == 0 and "installed successfully" in done.stdout, done.stdout
    user = work / "fleet"  # the fleet owner's own inventory repository
    (user / "group_vars").mkdir(parents=True)
    (user / "ansible.cfg").write_text("[defaults]\ncollections_path = {}\nretry_files_enabled = false\n"
                                      "callbacks_enabled = {}.fleet_report\n".format(work / "collections", NAME))
    (user / "pis.ini").write_text("[voice_assistants]\ncontroller ansible_connection=local ansible_python_interpreter=/usr/bin/python3\n")
    return {"tarball": tarball, "collections": work / "collections", "user": user}


def _playbook(user: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(ANSIBLE_CONFIG=str(user / "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_NOCOLOR="1")
    return subprocess.run([_ansible_playbook(), "-i", "pis.ini", *args], cwd=str(user), env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, timeout=300, check=False)


def test_the_tarball_holds_what_a_run_needs_and_no_test_bed(installed: Dict[str, Path]) -> None:
    with tarfile.open(str(installed["tarball"])) as tar:
        names = set(tar.getnames())
        manifest = json.loads(tar.extractfile("MANIFEST.json").read())  # type: ignore[union-attr]
    assert manifest["collection_info"]["version"] == GALAXY["version"]
    needed: List[str] = ["meta/runtime.yml", "playbooks/site.yml", "artifacts.yml", "scripts/registry_fetch.py",
                         "harness/build-tools.sh", "files/fixture/das_ist_ein_test.wav", "plugins/callback/fleet_report.py"]
    needed += [str(p.relative_to(REPO)) for p in (REPO / "plugins").glob("*/*.py")]
    needed += [str(p.relative_to(REPO)) for p in (REPO / "roles").glob("*/meta/argument_specs.yml")]
    needed += [str(p.relative_to(REPO)) for p in (REPO / "python").glob("*/*/*.py") if "/tests/" not in str(p)]
    assert [name for name in needed if name not in names] == []
    unwanted = [n for n in names if re.match(r"(molecule|tests|bench|\.collections|\.venv|\.git|python/[^/]+/tests)(/|$)", n)]
    assert unwanted == []


def test_the_collection_requires_the_ansible_core_it_is_tested_with() -> None:
    from ansible.module_utils.compat.version import LooseVersion
    from ansible.release import __version__

    runtime = yaml.safe_load((REPO / "meta" / "runtime.yml").read_text())
    minimum = re.fullmatch(r">=\s*([0-9.]+)", runtime["requires_ansible"])
    assert minimum, runtime
    assert LooseVersion(__version__) >= LooseVersion(minimum.group(1))


def test_plugins_live_in_the_collections_plugin_directories_only() -> None:
    stray = [str(p.relative_to(REPO)) for pattern in ("roles/*/library/*", "roles/*/filter_plugins/*", "playbooks/*_plugins/*")
             for p in REPO.glob(pattern)]
    assert stray == []


def _filter_names(path: Path) -> List[str]:
    """The names a filter plugin file offers (its FilterModule's filters())."""
    spec = importlib.util.spec_from_file_location("pi_voice_filter_" + path.stem, str(path))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return list(module.FilterModule().filters())


def test_tasks_name_the_collections_modules_and_filters_by_their_full_names() -> None:
    modules = [p.stem for p in (REPO / "plugins" / "modules").glob("*.py")]
    filters = sorted(name for path in (REPO / "plugins" / "filter").glob("*.py") for name in _filter_names(path))
    assert "voice_verify_wer" in filters and "appliance_variable_errors" in filters, filters
    short = re.compile(r"^\s+-?\s*({}):|\|\s*({})\b".format("|".join(modules), "|".join(filters)), re.M)
    files = [p for p in list((REPO / "roles").rglob("*.yml")) + list((REPO / "roles").rglob("*.j2")) + list((REPO / "playbooks").glob("*.yml"))]
    found = ["{}: {}".format(p.relative_to(REPO), m.group(0).strip()) for p in files for m in short.finditer(p.read_text())]
    assert found == []


@pytest.mark.parametrize("playbook", PLAYBOOKS)
def test_every_playbook_resolves_by_its_collection_name_from_another_directory(installed: Dict[str, Path], playbook: str) -> None:
    run = _playbook(installed["user"], "{}.{}".format(NAME, playbook), "--syntax-check")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert str(installed["collections"]) in run.stdout, run.stdout[-2000:]  # the installed copy, not this checkout


def test_the_installed_probe_runs_for_real_and_refuses_a_wrong_type_of_the_users_inventory(installed: Dict[str, Path]) -> None:
    user = installed["user"]
    run = _playbook(user, NAME + ".probe")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    stats = json.loads(run.stdout[run.stdout.find("{"):])["stats"]["controller"]
    assert stats["ok"] > 0 and stats["failures"] == 0 and stats["unreachable"] == 0, stats
    # The collection's callback, enabled by its full name, reports into the user's directory.
    report = json.loads((user / "fleet-report" / "fleet-report.json").read_text())
    assert report["playbook"].endswith("probe.yml") and [h["host"] for h in report["hosts"]] == ["controller"], report

    (user / "group_vars" / "voice_assistants.yml").write_text("deepspeech_deps_min_ram_mb: [1, 2]\n")
    try:
        bad = _playbook(user, NAME + ".probe")
    finally:
        (user / "group_vars" / "voice_assistants.yml").unlink()
    assert bad.returncode != 0
    assert "deepspeech_deps_min_ram_mb" in bad.stdout and "expected a whole number (int)" in bad.stdout, bad.stdout[-3000:]


def test_the_installed_collection_finds_its_own_files(installed: Dict[str, Path]) -> None:
    """collection_path resolves into the installed copy, and every file a role names through it was packed."""
    user = installed["user"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(ANSIBLE_CONFIG=str(user / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    run = subprocess.run([str(Path(_ansible_playbook()).with_name("ansible")), "localhost", "-m", "ansible.builtin.debug", "-a",
                          "msg={{ lookup('" + NAME + ".collection_path', 'artifacts.yml') }}"],
                         cwd=str(user), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                         timeout=120, check=False)
    installed_root = installed["collections"] / "ansible_collections" / GALAXY["namespace"] / GALAXY["name"]
    assert run.returncode == 0 and '"msg": "{}"'.format(installed_root / "artifacts.yml") in run.stdout, run.stdout[-2000:]
    from test_collection_path import OPTIONAL, collection_paths
    with tarfile.open(str(installed["tarball"])) as tar:
        names = set(tar.getnames())
    missing = [(where, rel) for where, rel in collection_paths()
               if rel not in OPTIONAL and rel not in names and not any(n.startswith(rel + "/") for n in names)]
    assert missing == []


@pytest.mark.parametrize("plugin", sorted(str(p.relative_to(REPO)) for p in (REPO / "plugins").glob("*/*.py")))
def test_every_plugins_documentation_parses(plugin: str) -> None:
    """ansible-doc and the plugin loader read DOCUMENTATION/EXAMPLES/RETURN as YAML (a stray ': ' breaks loading)."""
    import ast
    tree = ast.parse((REPO / plugin).read_text(encoding="utf-8"))
    for node in ast.walk(tree):  # a doc fragment's DOCUMENTATION is a class attribute
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            names = [t.id for t in node.targets if isinstance(t, ast.Name)]
            if set(names) & {"DOCUMENTATION", "EXAMPLES", "RETURN"}:
                yaml.safe_load(node.value.value)


def test_ansible_doc_renders_every_module_with_its_doc_fragments() -> None:
    """What users read: ansible-doc merges each module's doc fragments (a fragment's YAML error shows only here)."""
    modules = sorted("{}.{}".format(NAME, p.stem) for p in (REPO / "plugins" / "modules").glob("*.py"))
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"))
    run = subprocess.run([str(Path(_ansible_playbook()).with_name("ansible-doc")), "--json", *modules], cwd=str(REPO),
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, check=False)
    assert run.returncode == 0 and "ERROR" not in run.stderr, run.stderr[-3000:]
    docs = json.loads(run.stdout)
    assert sorted(docs) == modules and all(docs[m]["doc"].get("options") is not None for m in modules)
