"""Wrong variable values are refused before anything runs, on every entry point.

Playbooks: each one a user runs is run for real (ansible-playbook) against a throwaway inventory
whose Pis are unreachable (ssh to 127.0.0.1 port 1, refused at once): one host per bad value, plus
one host with nothing set. A bad host must fail at the variable check with a message naming the
variable, the value and what is expected; the good host must pass it and only then meet the
unreachable Pi at the probe, the first task that would reach a Pi, which proves that nothing ran
before the check. build_tools.yml (localhost only) is run with ``--tags always``, which runs the
check and nothing else.

Role entry points: every entry point in every roles/*/meta/argument_specs.yml is included with one
wrongly typed option; its argument spec validation must stop it before its first task.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Dict, Iterator, List, NamedTuple, Optional, Tuple

import pytest
import yaml
from task_tree import role_includes

REPO = Path(__file__).resolve().parent.parent
ROLES = REPO / "roles"

_spec = importlib.util.spec_from_file_location("appliance_vars", REPO / "plugins/filter/appliance_vars.py")
assert _spec and _spec.loader
appliance_vars = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(appliance_vars)

PROBE_TASK = "Read the Pi's python3 and release without Python (read-only)."
CHECK_TASK = "Refuse a wrongly typed appliance variable before anything runs."


class Case(NamedTuple):
    variable: str
    value: Any
    expected: str  # a fragment of the message, after "VARIABLE = VALUE: "
    shown: Optional[str] = None  # the value as the message shows it, when not json.dumps(value)


# One wrong value per line; the key is the test id and the inventory host name.
CASES: Dict[str, Case] = {
    # deepspeech_deps
    "deps_list_for_int": Case("deepspeech_deps_min_ram_mb", [1, 2], "it is a list; expected a whole number (int)"),
    "deps_string_for_int": Case("deepspeech_deps_min_free_disk_mb", "1500", "it is a string"),
    "deps_relative_dir": Case("deepspeech_deps_base_dir", "opt/voice-appliance", "a relative path"),
    "deps_string_for_list": Case("deepspeech_deps_supported_releases", "bookworm", "it is a string (key=value"),
    "deps_list_for_string": Case("deepspeech_deps_user", ["voice"], "it is a list; expected a string"),
    "deps_dict_for_list": Case("deepspeech_deps_extra_packages", {"vim": 1}, "it is a mapping; expected a list"),
    "deps_bad_list_item": Case("deepspeech_deps_packages", ["sox", ["alsa-utils"]], "item 1 ([\"alsa-utils\"]): it is a list"),
    "deps_templated_list": Case("deepspeech_deps_min_free_disk_mb", "{{ [1500] }}", "it is a list", shown="[1500]"),
    "deps_null": Case("deepspeech_deps_min_python", None, "it is empty (null)"),
    # appliance_pull
    "pull_yes_please": Case("appliance_pull_timer_enabled", "yes please", "expected true or false"),
    "pull_string_false": Case("appliance_pull_verify_commit", "false", "it is a string"),
    "pull_list_for_dict": Case("appliance_pull_host_vars", ["artifact_stage_mirror_url"], "it is a list; expected a mapping"),
    "pull_relative_dir": Case("appliance_pull_state_dir", "var/lib/pull", "a relative path"),
    "pull_float_for_int": Case("appliance_pull_sleep", 1.5, "it is a number; expected a whole number (int)"),
    "pull_bool_for_string": Case("appliance_pull_branch", True, "it is a boolean; expected a string"),
    "pull_relative_cert": Case("appliance_pull_pip_cert", "certs/ca.pem", "a relative path"),
    # artifact_stage
    "stage_relative_cache": Case("artifact_stage_cache_dir", "cache", "a relative path"),
    "stage_string_for_dict": Case("artifact_stage_catalog_overrides", "german_model", "it is a string"),
    "stage_yes_please": Case("artifact_stage_trust_on_first_use", "yes please", "expected true or false"),
    "stage_secret_hidden": Case("artifact_stage_credentials", "mirror:hunter2-secret", "(value hidden: a secret): it is a string"),
    "stage_tilde_path": Case("artifact_stage_local_dir", "~/artifacts", "a relative path"),
    # deepspeech_runtime
    "runtime_unknown_choice": Case("deepspeech_runtime_x86_flavour", "tensorflw", "\"tensorflw\" is not one of the choices"),
    "runtime_bool_for_str": Case("deepspeech_runtime_arm64_native_client_url", True, "it is a boolean; expected a string"),
    "runtime_relative_venv": Case("deepspeech_runtime_venv", "venv", "a relative path"),
    # deepspeech_model
    "model_word_for_int": Case("deepspeech_model_keep_previous", "one", "it is a string"),
    "model_relative_dir": Case("deepspeech_model_dir", "models", "a relative path"),
    "model_list_for_string": Case("deepspeech_model_version", ["0.7.4"], "it is a list; expected a string"),
    # deepspeech_tools
    "tools_string_for_list": Case("deepspeech_tools_build_arches", "armhf", "it is a string"),
    "tools_string_for_int": Case("deepspeech_tools_build_jobs", "4", "it is a string"),
    "tools_relative_dir": Case("deepspeech_tools_dir", "./tools", "a relative path"),
    "tools_unknown_arch": Case("deepspeech_tools_build_arches", ["armhf", "armv6l"], "item 1 (\"armv6l\"): \"armv6l\" is not one of"),
    # scorer_retrain
    "retrain_string_for_int": Case("scorer_retrain_order", "3", "it is a string"),
    "retrain_string_for_argv": Case("scorer_retrain_reload_command", "systemctl reload x", "it is a string"),
    "retrain_relative_file": Case("scorer_retrain_sentences_file", "sentences.ini", "a relative path"),
    "retrain_null": Case("scorer_retrain_settle_sec", None, "it is empty (null)"),
    "retrain_order_out_of_range": Case("scorer_retrain_order", 7, "7 is not one of the choices; expected a whole number (int), one of: 1, 2"),
    # rhasspy_asr
    "rasr_unknown_choice": Case("rhasspy_asr_source", "forks", "\"forks\" is not one of the choices"),
    "rasr_string_for_port": Case("voice_appliance_mqtt_port", "1883", "it is a string"),
    "rasr_secret_hidden": Case("voice_appliance_mqtt_password", ["hunter2-secret"], "(value hidden: a secret): it is a list"),
    "rasr_relative_list_item": Case("rhasspy_asr_find_links", ["/opt/wheels", "wheels"], "item 1 (\"wheels\"): a relative path"),
    "rasr_list_for_dict": Case("rhasspy_asr_profile_extra", ["speech_to_text"], "it is a list; expected a mapping"),
    "rasr_yes_please": Case("rhasspy_asr_seed_sentences", "yes please", "expected true or false"),
    "rasr_relative_profile": Case("rhasspy_asr_profile", "profiles/de/profile.json", "a relative path"),
    # voice_verify
    "verify_unknown_list_choice": Case("voice_verify_paths", ["cli", "smoke"], "item 1 (\"smoke\"): \"smoke\" is not one of the choices"),
    "verify_string_for_float": Case("voice_verify_max_wer", "0.1", "it is a string"),
    "verify_secret_hidden": Case("voice_verify_mqtt_password", {"hunter2-secret": 1}, "(value hidden: a secret): it is a mapping"),
    "verify_relative_wav": Case("voice_verify_wav", "das_ist_ein_test.wav", "a relative path"),
    "verify_relative_scorer": Case("voice_verify_scorer", "generated.scorer", "a relative path"),
    # playbooks/rollout.yml's own variables
    "rollout_string_for_list": Case("rollout_serial", "10%", "it is a string"),
    "rollout_word_for_int": Case("rollout_max_fail_percentage", "ten", "it is a string"),
}

SECRET = "hunter2-secret"

# The roles (and variable groups) each entry point uses; it is tested with the cases of those.
_PROVISION = ["deps", "runtime", "model", "tools", "retrain", "rasr", "stage"]
ENTRY_POINTS: Dict[str, List[str]] = {
    "site.yml": _PROVISION + ["verify"],
    "playbooks/pull.yml": _PROVISION + ["verify"],
    "playbooks/stage.yml": ["deps", "stage", "runtime", "model", "tools", "rasr"],
    "playbooks/appliance.yml": _PROVISION,
    "playbooks/rollout.yml": _PROVISION + ["verify", "rollout"],
    "playbooks/pull_setup.yml": ["pull"],
    "playbooks/retrain.yml": ["retrain"],
    "playbooks/rollback.yml": ["model"],
    "playbooks/verify.yml": ["verify"],
    "playbooks/probe.yml": ["deps"],
    "playbooks/build_tools.yml": ["tools", "stage"],
}


def _cases_for(entry_point: str) -> List[str]:
    return [name for name in CASES if name.split("_", 1)[0] in ENTRY_POINTS[entry_point]]


def _ansible_playbook() -> str:
    found = shutil.which("ansible-playbook") or str(Path(sys.executable).parent / "ansible-playbook")
    if not os.path.exists(found):
        pytest.fail("ansible-playbook not found: run the tests from the controller venv (make test)")
    return found


def _env(work: Path) -> Dict[str, str]:
    # The repository's roles, nothing else of its ansible.cfg: no fact cache, no fleet report, only JSON on stdout.
    cfg = work / "ansible.cfg"
    cfg.write_text("[defaults]\nroles_path = {}\nretry_files_enabled = false\nforks = 50\n".format(ROLES))
    env = dict(os.environ, ANSIBLE_CONFIG=str(cfg), ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
               ANSIBLE_HOST_KEY_CHECKING="false", ANSIBLE_LOCAL_TEMP=str(work / "tmp"))
    env.pop("ANSIBLE_CALLBACKS_ENABLED", None)
    return env


def _run(work: Path, args: List[str]) -> Tuple[Dict[str, Any], str]:
    run = subprocess.run([_ansible_playbook()] + args, cwd=str(work), env=_env(work), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, universal_newlines=True, timeout=120, check=False)
    try:
        return json.loads(run.stdout), run.stdout + run.stderr
    except ValueError:
        pytest.fail("ansible-playbook printed no JSON:\n" + run.stdout[-3000:] + run.stderr[-3000:])
        raise


def _first_stop(report: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    """host -> the first task that failed or found it unreachable: {task, msg, unreachable}."""
    stops: Dict[str, Dict[str, Any]] = {}
    for play in report["plays"]:
        for task in play["tasks"]:
            for host, result in task["hosts"].items():
                if host not in stops and (result.get("failed") or result.get("unreachable")):
                    stops[host] = {"task": task["task"]["name"], "msg": str(result.get("msg")),
                                   "unreachable": bool(result.get("unreachable"))}
    return stops


def _inventory(hosts: Dict[str, Dict[str, Any]]) -> str:
    return yaml.safe_dump({"all": {"children": {"voice_assistants": {
        "vars": {"ansible_host": "127.0.0.1", "ansible_port": 1, "ansible_connection": "ssh",
                 "ansible_user": "nobody", "ansible_ssh_args": "-o ConnectTimeout=3 -o BatchMode=yes"},
        "hosts": hosts}}}})


def _run_entry_point(entry_point: str, work: Path) -> Dict[str, Any]:
    work.mkdir(parents=True, exist_ok=True)
    cases = _cases_for(entry_point)
    playbook = str(REPO / entry_point)
    if entry_point == "playbooks/build_tools.yml":
        # localhost only: the bad values all at once (one run reports them all; a variable with two cases
        # takes two runs), then none (the check passes).
        rounds: List[List[str]] = []
        for case in cases:
            free = [r for r in rounds if CASES[case].variable not in {CASES[c].variable for c in r}]
            if free:
                free[0].append(case)
            else:
                rounds.append([case])
        stops, texts = {}, []
        for index, round_cases in enumerate(rounds):
            (work / "bad{}.json".format(index)).write_text(json.dumps({CASES[c].variable: CASES[c].value for c in round_cases}))
            bad, bad_text = _run(work, [playbook, "--tags", "always", "-e", "@" + str(work / "bad{}.json".format(index))])
            texts.append(bad_text)
            stops.update({c: _first_stop(bad).get("localhost", {"task": None, "msg": ""}) for c in round_cases})
        good, _ = _run(work, [playbook, "--tags", "always"])
        return {"cases": stops, "text": "".join(texts), "good": _first_stop(good).get("localhost"), "good_report": good}
    # The good host names another role's default, as a fleet owner may: it is left to that role's own validation.
    hosts: Dict[str, Dict[str, Any]] = {"good": {"rhasspy_asr_venv": "{{ deepspeech_runtime_venv }}"}}
    hosts.update({c: {CASES[c].variable: CASES[c].value} for c in cases})
    (work / "hosts.yml").write_text(_inventory(hosts))
    report, text = _run(work, ["-i", str(work / "hosts.yml"), playbook])
    stops = _first_stop(report)
    return {"cases": {c: stops.get(c, {"task": None, "msg": ""}) for c in cases}, "text": text, "good": stops.get("good")}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dict[str, "Future[Any]"]]:
    """Every ansible-playbook run of this module, two at a time (the role entry points' run first, the longest)."""
    base = tmp_path_factory.mktemp("argspec")
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures: Dict[str, "Future[Any]"] = {"roles": pool.submit(_run_role_entry_points, base / "roles")}
        futures.update({ep: pool.submit(_run_entry_point, ep, base / ep.replace("/", "_")) for ep in ENTRY_POINTS})
        yield futures


@pytest.fixture(scope="module")
def outcomes(runs: Dict[str, "Future[Any]"]) -> Dict[str, Dict[str, Any]]:
    return {ep: runs[ep].result() for ep in ENTRY_POINTS}


@pytest.mark.bad_input
@pytest.mark.parametrize("entry_point,case", [(ep, c) for ep in ENTRY_POINTS for c in _cases_for(ep)])
def test_bad_value_is_refused_before_anything_runs(outcomes: Dict[str, Dict[str, Any]], entry_point: str, case: str) -> None:
    outcome = outcomes[entry_point]
    stop = outcome["cases"][case]
    variable, value, fragment, shown = CASES[case]
    assert stop["task"] == CHECK_TASK, "{} = {!r} was not refused by the variable check first: {}".format(variable, value, stop)
    message = stop["msg"]
    shown = "(value hidden: a secret)" if SECRET in json.dumps(value) else shown or json.dumps(value)
    assert "{} = {}: ".format(variable, shown) in message, message
    assert fragment in message, message
    assert "Fix: " in message and "expected " in message, message
    assert SECRET not in outcome["text"], "a secret value was printed"


@pytest.mark.parametrize("entry_point", sorted(ENTRY_POINTS))
def test_nothing_set_passes_the_check(outcomes: Dict[str, Dict[str, Any]], entry_point: str) -> None:
    good = outcomes[entry_point]["good"]
    if entry_point == "playbooks/build_tools.yml":
        assert good is None, good
        tasks = [t["task"]["name"] for p in outcomes[entry_point]["good_report"]["plays"] for t in p["tasks"]]
        assert tasks == [CHECK_TASK]
    else:
        # Past the check, the first task that reaches a Pi meets the unreachable one: nothing ran before.
        assert good is not None and good["unreachable"] and good["task"] == PROBE_TASK, good


@pytest.mark.bad_input
def test_extra_vars_are_checked_too(tmp_path: Path) -> None:
    (tmp_path / "hosts.yml").write_text(_inventory({"kitchen": {}}))
    report, _ = _run(tmp_path, ["-i", str(tmp_path / "hosts.yml"), str(REPO / "site.yml"),
                                "-e", "deepspeech_deps_min_ram_mb=850", "-e", '{"scorer_retrain_memory_max": ["1G"]}'])
    stop = _first_stop(report)["kitchen"]
    assert stop["task"] == CHECK_TASK
    assert 'deepspeech_deps_min_ram_mb = "850": it is a string (key=value extra vars' in stop["msg"]
    assert 'scorer_retrain_memory_max = ["1G"]: it is a list; expected a string' in stop["msg"]


# --- Role entry points: the role's own argument spec validation stops a wrong value before its first task.

_WRONG = {"int": [1, 2], "bool": "yes please", "list": {"not": "a list"}, "dict": ["not", "a", "dict"], "float": [0.5]}


def _role_entry_points() -> List[Tuple[str, str, str, Any]]:
    found = []
    for spec_file in sorted(ROLES.glob("*/meta/argument_specs.yml")):
        specs = yaml.safe_load(spec_file.read_text())["argument_specs"]
        for index, (entry_point, spec) in enumerate(sorted(specs.items())):
            options = spec.get("options") or {}
            # A different kind of mistake per entry point where the role has one.
            candidates = [(n, o) for n, o in options.items() if o.get("choices") and o.get("type") == "str"]
            candidates += [(n, o) for n, o in options.items() if o.get("type") in _WRONG]
            if not candidates:
                continue
            name, option = candidates[index % len(candidates)]
            value = "no-such-choice" if option.get("choices") and option.get("type") == "str" else _WRONG[option["type"]]
            found.append((spec_file.parent.parent.name, entry_point, name, value))
    return found


ROLE_ENTRY_POINTS = _role_entry_points()

# One task per entry point, each for its own host: include_role with a per-host templated tasks_from
# would include one entry point for every host.
ROLE_TASK = """
    - name: Include {role}:{entry}.
      ansible.builtin.include_role:
        name: {role}
        tasks_from: {entry}
      when: inventory_hostname == "{role}.{entry}"
"""


def _run_role_entry_points(work: Path) -> Dict[str, Dict[str, Any]]:
    work.mkdir(parents=True, exist_ok=True)
    hosts = {"{}.{}".format(role, entry): {name: value} for role, entry, name, value in ROLE_ENTRY_POINTS}
    (work / "hosts.yml").write_text(yaml.safe_dump({"all": {
        "vars": {"ansible_host": "127.0.0.1", "ansible_port": 1, "ansible_connection": "ssh", "ansible_user": "nobody"},
        "hosts": hosts}}))
    (work / "playbook.yml").write_text("- name: Include each role entry point on its own host.\n  hosts: all\n  gather_facts: false\n"
                                       "  tasks:" + "".join(ROLE_TASK.format(role=r, entry=e) for r, e, _, _ in ROLE_ENTRY_POINTS))
    report, _ = _run(work, ["-i", str(work / "hosts.yml"), str(work / "playbook.yml")])
    return _first_stop(report)


@pytest.fixture(scope="module")
def role_outcomes(runs: Dict[str, "Future[Any]"]) -> Dict[str, Dict[str, Any]]:
    return runs["roles"].result()


def test_every_role_entry_point_is_covered() -> None:
    covered = {(role, entry) for role, entry, _, _ in ROLE_ENTRY_POINTS}
    every = {(f.parent.parent.name, e) for f in ROLES.glob("*/meta/argument_specs.yml")
             for e, spec in yaml.safe_load(f.read_text())["argument_specs"].items()
             # Only strings and paths (voice_appliance): Ansible turns any value into one; the role's own
             # refusals are tested in tests/test_shared_values.py.
             if any(o.get("type") not in ("str", "path") or o.get("choices") for o in (spec.get("options") or {}).values())}
    assert covered == every


@pytest.mark.bad_input
@pytest.mark.parametrize("role,entry,name,value", ROLE_ENTRY_POINTS, ids=["{}.{}".format(r, e) for r, e, _, _ in ROLE_ENTRY_POINTS])
def test_role_entry_point_refuses_a_wrong_type(role_outcomes: Dict[str, Dict[str, Any]], role: str, entry: str, name: str,
                                               value: Any) -> None:
    stop = role_outcomes.get("{}.{}".format(role, entry))
    assert stop is not None and not stop["unreachable"], "{}:{} with {} = {!r} ran on: {}".format(role, entry, name, value, stop)
    assert "{} : Validating arguments against arg spec '{}'".format(role, entry) in stop["task"], stop
    assert name in stop["msg"], stop["msg"]


def test_an_include_skips_ansibles_argument_check_only_where_the_probe_checked_every_variable_first() -> None:
    # rolespec_validate: false saves a task execution per include and Pi: only sound in a playbook whose first play
    # is probe.yml (its strict check of every entry point's variables), never in a role, whose includer may be a
    # user's own playbook.
    skipping = {}
    for playbook in sorted((REPO / "playbooks").glob("*.yml")):
        plays = yaml.safe_load(playbook.read_text()) or []
        includes = [include for play in plays for section in ("pre_tasks", "tasks", "post_tasks")
                    for include in role_includes(play.get(section) or [])]
        if any(include.get("rolespec_validate") is False for include in includes):
            skipping[playbook.name] = plays[0].get("ansible.builtin.import_playbook")
    assert skipping == {name: "probe.yml" for name in ("appliance.yml", "rollback.yml", "rollout.yml", "stage.yml", "verify.yml")}
    for tasks_file in sorted(ROLES.glob("*/tasks/*.yml")):
        for include in role_includes(yaml.safe_load(tasks_file.read_text()) or []):
            assert include.get("rolespec_validate", True) is not False, "{}: a role's include keeps Ansible's check".format(tasks_file)


# --- The specs themselves.

def test_every_default_has_a_typed_spec_entry_and_fits_it() -> None:
    options = appliance_vars.load_options(ROLES)
    known = {"str", "path", "int", "float", "bool", "list", "dict", "raw"}
    problems = []
    for defaults_file in sorted(ROLES.glob("*/defaults/main.yml")):
        for name, default in (yaml.safe_load(defaults_file.read_text()) or {}).items():
            option = options.get(name)
            if option is None or option.get("type") not in known:
                problems.append("{}: no spec entry with a type".format(name))
                continue
            if option["type"] == "list" and option.get("elements") not in known:
                problems.append("{}: a list without typed elements".format(name))
            if "{{" not in json.dumps(default):
                problem = appliance_vars.option_problem(option, default)
                if problem:
                    problems.append("{}: its own default {!r} does not fit: {}".format(name, default, problem))
    assert not problems, problems


def test_role_docs_tables_are_generated() -> None:
    run = subprocess.run([sys.executable, str(REPO / "scripts/role_docs.py"), "--check"], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, universal_newlines=True, check=False)
    assert run.returncode == 0, run.stdout


@pytest.mark.bad_input
@pytest.mark.parametrize("option,value,problem", [
    ({"type": "int"}, True, "it is a boolean"),
    ({"type": "int"}, 0, None),
    ({"type": "float"}, 1, None),
    ({"type": "str"}, 0.931289, None),
    ({"type": "str", "choices": ["local", "external"]}, "Local", "\"Local\" is not one of the choices"),
    ({"type": "path"}, "", None),
    ({"type": "path"}, "/opt/x", None),
    ({"type": "path"}, 5, "it is a number"),
    ({"type": "list", "elements": "int"}, [1, "2"], "item 1 (\"2\"): it is a string"),
    ({"type": "dict"}, {}, None),
    ({"type": "raw"}, None, "it is empty (null)"),
])
def test_option_problem(option: Dict[str, Any], value: Any, problem: Any) -> None:
    found = appliance_vars.option_problem(option, value)
    assert (found is None) if problem is None else (found is not None and problem in found), found


@pytest.mark.bad_input
@pytest.mark.parametrize("option,value,problem", [
    ({"type": "int"}, "850", None),
    ({"type": "int"}, "ten", "it is a string"),
    ({"type": "bool"}, "False", None),
    ({"type": "bool"}, "yes please", "it is a string"),
    ({"type": "list", "elements": "int"}, "[1500]", None),
    ({"type": "list", "elements": "str"}, "armhf", "it is a string"),
    ({"type": "dict"}, "{'a': 1}", None),
    ({"type": "path"}, "opt/x", "a relative path"),
])
def test_option_problem_under_legacy_templating(option: Dict[str, Any], value: Any, problem: Any) -> None:
    """ansible-core < 2.19 renders a templated number, boolean, list or mapping as a string: read it as one."""
    found = appliance_vars.option_problem(option, value, legacy=True)
    assert (found is None) if problem is None else (found is not None and problem in found), found


@pytest.mark.bad_input
@pytest.mark.parametrize("value", ["relative/hunter2-secret", ["hunter2-secret", 5], "hunter2-secret-not-a-choice"])
def test_a_secret_is_never_shown(value: Any) -> None:
    options = {"x_password": {"type": "list", "elements": "path", "choices": ["/a"], "role": "x"},
               "x_token": {"type": "str", "choices": ["a"], "role": "x"}}
    errors = appliance_vars.variable_errors({"x_password": value, "x_token": value}, options)
    assert len(errors) == 2 and all("(value hidden: a secret)" in e for e in errors), errors
    assert SECRET not in "".join(errors), errors


def test_unset_and_unknown_variables_are_left_alone() -> None:
    options = appliance_vars.load_options(ROLES)
    values = {"deepspeech_deps_min_ram_mb": appliance_vars.UNSET, "not_an_appliance_variable": [1]}
    assert appliance_vars.variable_errors(values, options) == []
