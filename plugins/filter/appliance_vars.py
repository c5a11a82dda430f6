"""Check every appliance variable a user set, strictly, before a playbook does anything.

The types come from the roles' own ``meta/argument_specs.yml`` (every entry point of every role,
merged) plus the few variables the playbooks themselves define (``PLAYBOOK_OPTIONS``). Stricter
than Ansible's role argument validation, which converts what it can but hands the roles the
unconverted value: a string is no int (``-e name=1024`` gives the string "1024"), "yes please" is
no bool, and a ``path`` must be absolute (a relative one would be resolved against whatever
directory a task happens to run in).

Used by playbooks/probe.yml (imported first by every playbook that reaches the Pis) and
playbooks/build_tools.yml as one task::

    appliance_names: "{{ 'roles' | pivoice.voice_appliance.appliance_variable_names }}"
    appliance_errors: >-
      {{ dict(appliance_names | zip(query('ansible.builtin.vars', *appliance_names, default='__appliance_unset__')))
         | pivoice.voice_appliance.appliance_variable_errors }}

Each message names the variable, the value given (hidden for secrets), what is expected and the fix.
"""
from __future__ import annotations

import ast
import functools
import json
import re
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

import yaml
from jinja2 import Undefined

# The value the vars lookup returns for a variable nobody set.
UNSET = "__appliance_unset__"

ROLES_DIR = Path(__file__).resolve().parents[2] / "roles"  # plugins/filter/ -> the collection root

# Variables of the playbooks themselves (not of a role), in argument spec form.
PLAYBOOK_OPTIONS: Dict[str, Dict[str, Any]] = {
    "rollout_serial": {
        "type": "list",
        "elements": "raw",
        "description": "playbooks/rollout.yml's batch sizes (numbers of Pis or percentages such as \"10%\")",
    },
    "rollout_max_fail_percentage": {
        "type": "int",
        "description": "playbooks/rollout.yml's failed Pis a batch may have (percent) before the rollout stops",
    },
}

_SECRET = re.compile(r"password|secret|credential|token|passphrase", re.IGNORECASE)

_EXPECTED = {
    "str": "a string",
    "path": "an absolute path (a string starting with /)",
    "int": "a whole number (int)",
    "float": "a number",
    "bool": "true or false (a YAML boolean)",
    "list": "a list",
    "dict": "a mapping (dict)",
    "raw": "any value",
}

_EXAMPLE = {
    "str": '"text"',
    "path": "/absolute/path",
    "int": "1024",
    "float": "0.5",
    "bool": "true",
    "list": "[a, b]",
    "dict": "{key: value}",
}


def load_options(roles_dir: Optional[Path] = None) -> Dict[str, Dict[str, Any]]:
    """Every option of every entry point of every role under roles_dir, plus PLAYBOOK_OPTIONS.

    An option named by several entry points keeps its first definition (main is listed first).
    Read once per process (every host of a run asks).
    """
    return _load_options(Path(roles_dir or ROLES_DIR).resolve())


@functools.lru_cache(maxsize=4)
def _load_options(roles_dir: Path) -> Dict[str, Dict[str, Any]]:
    options: Dict[str, Dict[str, Any]] = {}
    for spec_file in sorted(roles_dir.glob("*/meta/argument_specs.yml")):
        specs = (yaml.safe_load(spec_file.read_text(encoding="utf-8")) or {}).get("argument_specs") or {}
        defaults_file = spec_file.parent.parent / "defaults" / "main.yml"
        defaults = (yaml.safe_load(defaults_file.read_text(encoding="utf-8")) or {}) if defaults_file.is_file() else {}
        for entry_point in sorted(specs, key=lambda name: name != "main"):
            for name, option in ((specs[entry_point] or {}).get("options") or {}).items():
                entry = dict(option or {}, role=spec_file.parent.parent.name)
                default = defaults.get(name)
                if default not in (None, "", [], {}) and "{{" not in json.dumps(default, default=str) and not _secret(name, entry):
                    entry["example"] = default
                options.setdefault(name, entry)
    for name, option in PLAYBOOK_OPTIONS.items():
        options.setdefault(name, dict(option, role="playbooks"))
    return options


def expected(option: Mapping[str, Any]) -> str:
    """What an option accepts, in words: 'a list of strings, each one of: cli, mqtt'."""
    kind = option.get("type", "raw")
    text = _EXPECTED.get(kind, kind)
    if kind == "list" and option.get("elements"):
        element = _EXPECTED.get(option["elements"], option["elements"])
        text = "a list, each item {}".format(element)
    if option.get("choices"):
        choices = ", ".join(str(choice) for choice in option["choices"])
        text += (", each one of: " if kind == "list" else ", one of: ") + choices
    return text


def _problem(kind: str, value: Any, choices: Optional[List[Any]] = None) -> Optional[str]:
    """Why value is not of kind (an argument spec type), or None when it is."""
    if value is None:
        return "it is empty (null)"
    if kind == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind == "float":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif kind == "bool":
        ok = isinstance(value, bool)
    elif kind == "str":
        # Numbers are fine as strings (a version 0.7, an lm_alpha 0.93); booleans, lists and mappings are not.
        ok = isinstance(value, (str, int, float)) and not isinstance(value, bool)
    elif kind == "path":
        if not isinstance(value, str):
            ok = False
        elif value and not value.startswith("/"):
            return "a relative path ({} is relative to whatever directory a task runs in)".format(json.dumps(value))
        else:
            ok = True
    elif kind == "list":
        ok = isinstance(value, list)
    elif kind == "dict":
        ok = isinstance(value, Mapping)
    else:
        ok = True
    if not ok:
        if isinstance(value, str) and kind in ("int", "float", "bool", "list", "dict"):
            return "it is a string (key=value extra vars and quoted YAML give strings)"
        return "it is {}".format(_kind_of(value))
    if choices and value not in choices:
        return "{} is not one of the choices".format(json.dumps(value, default=str))
    return None


def _kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    return "a " + type(value).__name__


def legacy_templating() -> bool:
    """True under ansible-core older than 2.19 (2.15 runs ansible-pull on bullseye Pis).

    Its templating is not native: a variable written as a template ("{{ 800 + 50 }}", "{{ [1500] }}")
    reaches this check as a string, indistinguishable from a string given as such.
    """
    try:
        from ansible.release import __version__
    except ImportError:
        return False
    return tuple(int(part) for part in re.findall(r"\d+", __version__)[:2]) < (2, 19)


_BOOLEAN_STRINGS = {"true": True, "false": False, "yes": True, "no": False, "on": True, "off": False}


def _legacy_value(kind: str, value: Any) -> Any:
    """value as a non-native template of kind would have meant it (unchanged when it cannot be read so)."""
    if not isinstance(value, str):
        return value
    if kind == "bool":
        return _BOOLEAN_STRINGS.get(value.strip().lower(), value)
    if kind in ("int", "float", "list", "dict"):
        try:
            return ast.literal_eval(value.strip())
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return value
    return value


def option_problem(option: Mapping[str, Any], value: Any, legacy: bool = False) -> Optional[str]:
    """Why value does not fit option (its type, elements and choices), or None when it does.

    legacy: read strings as ansible-core < 2.19 renders templates (see legacy_templating), so that a
    templated number, boolean, list or mapping is not refused there; a string that reads as nothing
    of the kind ("yes please", "ten") is still refused.
    """
    kind = option.get("type", "raw")
    if legacy:
        value = _legacy_value(kind, value)
    if kind == "list":
        problem = _problem("list", value)
        if problem:
            return problem
        for index, item in enumerate(value):
            if legacy:
                item = _legacy_value(option.get("elements", "raw"), item)
            problem = _problem(option.get("elements", "raw"), item, option.get("choices"))
            if problem:
                return "item {} ({}): {}".format(index, _show(item), problem)
        return None
    return _problem(kind, value, option.get("choices"))


def _show(value: Any) -> str:
    text = json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= 120 else text[:117] + "..."


def _secret(name: str, option: Mapping[str, Any]) -> bool:
    return bool(option.get("no_log")) or bool(_SECRET.search(name))


def variable_errors(values: Mapping[str, Any], options: Optional[Mapping[str, Mapping[str, Any]]] = None,
                    legacy: Optional[bool] = None) -> List[str]:
    """One message per variable in values (name -> value; UNSET for not set) that its option refuses.

    legacy: see option_problem; by default true under ansible-core older than 2.19.
    """
    options = load_options() if options is None else options
    legacy = legacy_templating() if legacy is None else legacy
    messages = []
    for name in sorted(values):
        if name not in options:
            continue
        option = options[name]
        try:
            value = values[name]
            if isinstance(value, Undefined) or isinstance(value, str) and value == UNSET:
                continue
            problem = option_problem(option, value, legacy)
        except Exception:  # noqa: BLE001 - Jinja2/Ansible raise their own errors for an undefined reference
            # A value that cannot be rendered here (it names another role's default, defined only once that
            # role is loaded) is left to the role's own argument spec validation.
            continue
        if problem is None:
            continue
        shown = _show(value)
        if _secret(name, option):
            shown = "(value hidden: a secret)"
            if '"' in problem or "item" in problem:  # a message that quotes (part of) the value
                problem = "it is {} that does not fit".format(_kind_of(value))
        messages.append("{} = {}: {}; expected {}. Fix: {}, or remove it to use the default of {}.".format(
            name, shown, problem, expected(option), _fix(name, option), _owner(option)))
    return messages


def _fix(name: str, option: Mapping[str, Any]) -> str:
    kind = option.get("type", "raw")
    if kind == "path" or option.get("elements") == "path":
        return "give {} as an absolute path (starting with /)".format(name)
    choices = option.get("choices")
    if "example" in option:
        example = json.dumps(option["example"], default=str)
        if len(example) > 60:
            example = _EXAMPLE.get(kind, "...")
    elif choices:
        example = json.dumps([choices[0]] if kind == "list" else choices[0], default=str)
    else:
        example = _EXAMPLE.get(kind, "...")
    return "write it in YAML as {} (e.g. {}: {}) in group_vars/host_vars, or as JSON with -e".format(
        expected(option), name, example)


def _owner(option: Mapping[str, Any]) -> str:
    role = option.get("role", "")
    return "the playbook" if role == "playbooks" else "the role {} (roles/{}/defaults/main.yml)".format(role, role)


def variable_names(_ignored: Any = None) -> List[str]:
    """The names of every appliance variable (the filter's input is ignored)."""
    return sorted(load_options())


def variable_errors_filter(values: Mapping[str, Any]) -> List[str]:
    return variable_errors(dict(values))


class FilterModule:
    def filters(self) -> Dict[str, Any]:
        return {
            "appliance_variable_names": variable_names,
            "appliance_variable_errors": variable_errors_filter,
        }
