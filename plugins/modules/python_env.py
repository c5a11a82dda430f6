#!/usr/bin/python
# -*- coding: utf-8 -*-
"""The ASR virtualenv, built beside the live one and switched only after its proof.

The appliance's services run from one virtualenv, reached through a link (``/opt/voice-appliance/venv``).
pip upgrading that virtualenv in place left a broken service whenever an install failed half-way. This
module never touches the live virtualenv: it knows the whole content (every layer of requirements with the
wheel directories it is installed from, the Python, the system site packages) and names it by a hash of all
of it. When the link's virtualenv was built from exactly these inputs and every pinned distribution is still
there, nothing happens (one Python start on the Pi). Otherwise a new virtualenv is built in the store
(``venvs/<hash>-<time>``), every layer installed into it in order, the proof commands run with its ``bin`` on
the PATH, the marker written and synced, and only then the link is switched, atomically (a new link renamed
over the old). A failure anywhere removes the new virtualenv and leaves the link, and the services, on the
old one. Drift (a distribution removed or replaced) is repaired the same way: a new build beside.

The store keeps the live virtualenv and the newest ``keep_previous`` others; a build that never finished
(power loss) has no marker and is removed. A virtualenv that still sits where the link belongs (the layout
of earlier releases) is moved into the store once the new one is proved.

The wheels it is built from are put in place in the same call: ``directories`` and ``files`` as paths_state takes
them, with its code (module_utils/paths.py) and its action plugin (action/python_env.py subclasses it). A wheel the
Pi lacks is sent and the module runs again with it ``staged``; only that second run decides and builds (a build
from some of the wheels would be a wrong one). A converged Pi costs one module run for both.

The logic is plain stdlib (importable and testable without Ansible).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ansible_collections.pivoice.voice_appliance.plugins.module_utils.durable import RECEIPT_SPEC, receipt_result
from ansible_collections.pivoice.voice_appliance.plugins.module_utils.paths import ARGUMENT_SPEC as PATHS_SPEC
from ansible_collections.pivoice.voice_appliance.plugins.module_utils.paths import PathsError
from ansible_collections.pivoice.voice_appliance.plugins.module_utils.paths import ensure as ensure_paths
from ansible_collections.pivoice.voice_appliance.plugins.module_utils.paths import own_diff

DOCUMENTATION = r"""
---
module: python_env
short_description: Build a virtualenv from layers of requirements beside the live one and switch a link to it after its proof.
description:
  - The virtualenv is named by a hash of its inputs (the Python's version and machine, the system site packages,
    and per layer the requirements, pip's options and environment, the modules it must import, and the name,
    size and modification time of every file in its find-links directories, since Ansible's copy writes only
    a changed file).
  - Nothing changes when the link's virtualenv has the same hash and every pinned distribution (C(name==version))
    and every named one is installed; otherwise a new virtualenv is built in O(store), proved, and the link
    switched atomically.
  - On failure the new virtualenv is removed and the link is left as it was.
  - Supports check mode (reports whether a build would happen).
  - O(receipt) is written once the virtualenv of these inputs is live (proved and switched to in this run, or found
    live); a failed build leaves it as it was.
  - First, the directories of O(directories) and the files of O(files) (the wheels) are put in place as
    M(pivoice.voice_appliance.paths_state) does (its code and, on the controller, its action plugin); their changes
    are the task's changes too (RV(changes)). The virtualenv is decided only once every file is in place. A wheel
    from the controller that the Pi lacks is sent by the action plugin, which runs the module again with it; only
    that second run decides and builds. In check mode it is decided in any case, from the wheels the Pi has.
options:
  link:
    description: The path the services use; a symbolic link to the live virtualenv.
    type: path
    required: true
  store:
    description: The directory the virtualenvs are built in (created if missing, root-owned 0755).
    type: path
    required: true
  python:
    description: The Python that creates the virtualenv.
    type: path
    required: true
  system_site_packages:
    description: Whether the virtualenv sees the system's site packages (Debian's numpy).
    type: bool
    default: false
  layers:
    description:
      - Installed in order, each by one pip call. C(name), C(requirements) (list of requirement strings),
        C(find_links) (directories on the Pi), C(index) (false adds --no-index), C(deps) (false adds --no-deps),
        C(env) (pip's environment, for instance PIP_INDEX_URL or a proxy; not logged), C(imports) (modules the new
        virtualenv must import before the switch).
    type: list
    elements: dict
    required: true
  proof:
    description: Commands (argv lists) that must succeed in the new virtualenv before the switch; a relative
      first element names a program in its C(bin) directory.
    type: list
    elements: list
    default: []
  keep_previous:
    description: How many earlier virtualenvs the store keeps beside the live one (newest first).
    type: int
    default: 1
extends_documentation_fragment:
  - pivoice.voice_appliance.paths_first
  - pivoice.voice_appliance.receipt
author: voice appliance team
"""

EXAMPLES = r"""
- name: Build the ASR virtualenv from the staged wheels, prove it and switch to it.
  pivoice.voice_appliance.python_env:
    link: /opt/voice-appliance/venv
    store: /opt/voice-appliance/venvs
    python: /usr/bin/python3
    system_site_packages: true
    layers:
      - {name: deepspeech, requirements: ["deepspeech==0.7.4+compat1"], find_links: [/opt/voice-appliance/wheels], index: false}
    proof: [[deepspeech, --version]]
"""

RETURN = r"""
changes:
  description: Per changed path of O(directories) and O(files), what changed (as M(pivoice.voice_appliance.paths_state) says).
  type: dict
  returned: always
files:
  description: The destinations of O(files).
  type: list
  returned: always
transfer:
  description: The files the Pi lacks, which the action plugin sends (in the task's result empty, but in check mode).
  type: list
  returned: always
venv:
  description: The live virtualenv's directory after the run (in check mode, the one it would be built in).
  type: str
  returned: always
id:
  description: The hash of the inputs.
  type: str
  returned: always
built:
  description: Whether a new virtualenv was built (or, in check mode, would be).
  type: bool
  returned: always
reason:
  description: Why it was built (no virtualenv, changed inputs, which distributions were missing), or "".
  type: str
  returned: always
previous:
  description: The virtualenv the link pointed to before a switch (or "").
  type: str
  returned: always
removed:
  description: Virtualenvs the store no longer keeps.
  type: list
  elements: str
  returned: always
receipt:
  description: O(receipt) as the Pi holds it after the run (C(path), C(content)); voice_verify takes the local fact from it.
  type: dict
  returned: with O(receipt), unless check mode would write it
receipt_changed:
  description: Whether the receipt was (or, in check mode, would be) written.
  type: bool
  returned: always
"""

MARKER = "voice-venv.json"
_NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?(==([^\s,;]+)|(?:[<>!=~]=?[^\s;]*(?:,[<>!=~]=?[^\s,;]*)*))?$")

# Run by the virtualenv's own Python: every installed distribution, by normalised name.
_LIST_DISTRIBUTIONS = (
    "import json, re, sys\n"
    "from importlib import metadata\n"
    "found = {}\n"
    "for dist in metadata.distributions():\n"
    "    name = dist.metadata['Name']\n"
    "    if name:\n"
    "        found.setdefault(re.sub(r'[-_.]+', '-', name).lower(), dist.version)\n"
    "print(json.dumps({'python': '%d.%d' % sys.version_info[:2], 'distributions': found}))\n")

_PYTHON_IDENTITY = "import json, platform, sys; print(json.dumps(['%d.%d' % sys.version_info[:2], platform.machine()]))"


class EnvError(Exception):
    """A build or a proof failed; the message names what and shows pip's or the command's output."""


class ReceiptFailure(EnvError):
    """The receipt could not be written once the virtualenv was live: the message says which one is live."""


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(requirements: Sequence[str]) -> List[Tuple[str, Optional[str]]]:
    """The distributions a set of requirements names: (normalised name, exact version or None). URLs, paths and
    requirements that are not a plain name are left to pip."""
    out: List[Tuple[str, Optional[str]]] = []
    for requirement in requirements:
        match = _NAME.match(requirement.replace(" ", ""))
        if match:
            out.append((normalise(match.group(1)), match.group(4)))
    return out


def missing(installed: Dict[str, str], layers: Sequence[Dict[str, Any]]) -> List[str]:
    """The layers' named distributions that are not installed, or not at their pinned version."""
    gone: List[str] = []
    for layer in layers:
        for name, version in pins(layer.get("requirements") or []):
            have = installed.get(name)
            if have is None:
                gone.append(name if version is None else "{}=={}".format(name, version))
            elif version is not None and have != version and not ("+" not in version and have.split("+")[0] == version):
                # PEP 440: a pin without a local label (==0.7.4) is met by any local build of it (0.7.4+compat1).
                gone.append("{}=={} (found {})".format(name, version, have))
    return gone


def fingerprint(directory: str) -> List[List[Any]]:
    """Every regular file of a find-links directory (not recursive) with its size and modification time: a wheel
    copied or unpacked anew (Ansible's copy writes only a changed file) counts as new. A missing directory is empty."""
    if not os.path.isdir(directory):
        return []
    return [[entry.name, entry.stat().st_size, entry.stat().st_mtime_ns]
            for entry in sorted(os.scandir(directory), key=lambda e: e.name) if entry.is_file()]


def inputs_id(identity: Sequence[str], system_site_packages: bool, layers: Sequence[Dict[str, Any]]) -> str:
    """The hash naming a virtualenv: everything that decides what pip installs into it."""
    described = {
        "python": list(identity),
        "system_site_packages": bool(system_site_packages),
        "layers": [{"name": layer.get("name", ""), "requirements": list(layer.get("requirements") or []),
                    "index": bool(layer.get("index", True)), "deps": bool(layer.get("deps", True)),
                    "imports": list(layer.get("imports") or []),
                    "env": sorted((str(k), str(v)) for k, v in (layer.get("env") or {}).items()),
                    "find_links": [[d, fingerprint(d)] for d in layer.get("find_links") or []]}
                   for layer in layers]}
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode("utf-8")).hexdigest()


def _run(argv: Sequence[str], env: Optional[Dict[str, str]] = None, what: str = "") -> str:
    try:
        done = subprocess.run(list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd="/",
                              env=env, universal_newlines=True, check=False)
    except OSError as error:
        raise EnvError("{}: {} could not run: {}".format(what or "command", argv[0], error))
    if done.returncode != 0:
        tail = "\n".join(done.stdout.strip().splitlines()[-25:])
        raise EnvError("{} failed (exit {}): {}\n{}".format(what or " ".join(argv), done.returncode, " ".join(argv), tail))
    return done.stdout


def python_identity(python: str) -> List[str]:
    return json.loads(_run([python, "-c", _PYTHON_IDENTITY], what="asking {} for its version".format(python)))


def installed(venv: str) -> Dict[str, str]:
    out = _run([os.path.join(venv, "bin", "python"), "-c", _LIST_DISTRIBUTIONS], what="listing the distributions of " + venv)
    return json.loads(out)["distributions"]


def read_marker(venv: str) -> Optional[Dict[str, Any]]:
    try:
        with open(os.path.join(venv, MARKER), encoding="utf-8") as handle:
            marker = json.load(handle)
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) and isinstance(marker.get("id"), str) else None


def live(link: str) -> Optional[str]:
    """The virtualenv the link points to (a directory still at the link's place counts too), or None."""
    if os.path.islink(link):
        target = os.path.realpath(link)
        return target if os.path.isdir(target) else None
    return link if os.path.isdir(link) else None


def plan(link: str, python: str, system_site_packages: bool, layers: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """Whether a build is needed, and why (reads only)."""
    env_id = inputs_id(python_identity(python), system_site_packages, layers)
    current = live(link)
    if current is None:
        return {"id": env_id, "current": None, "build": True, "reason": "no virtualenv at {}".format(link)}
    marker = read_marker(current)
    if not os.path.islink(link) or marker is None:
        return {"id": env_id, "current": current, "build": True,
                "reason": "{} was not built by this module (no {})".format(current, MARKER)}
    if marker["id"] != env_id:
        return {"id": env_id, "current": current, "build": True, "reason": "its inputs changed"}
    try:
        gone = missing(installed(current), layers)
    except (EnvError, ValueError, KeyError) as error:
        return {"id": env_id, "current": current, "build": True, "reason": "its Python does not run ({})".format(error)}
    if gone:
        return {"id": env_id, "current": current, "build": True, "reason": "missing or replaced: " + ", ".join(gone)}
    return {"id": env_id, "current": current, "build": False, "reason": ""}


def _sync(*paths: str) -> None:
    """fsync each path, a file or a directory (the marker first, then the directories that name it)."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)


def _pip_argv(venv: str, layer: Dict[str, Any]) -> List[str]:
    argv = [os.path.join(venv, "bin", "python"), "-m", "pip", "install", "--disable-pip-version-check", "--no-input"]
    if not layer.get("index", True):
        argv.append("--no-index")
    if not layer.get("deps", True):
        argv.append("--no-deps")
    for directory in layer.get("find_links") or []:
        argv += ["--find-links", directory]
    return argv + list(layer.get("requirements") or [])


def build(store: str, env_id: str, python: str, system_site_packages: bool, layers: Sequence[Dict[str, Any]],
          proof: Sequence[Sequence[str]]) -> str:
    """A new, proved virtualenv in the store (its marker written and synced last); removed again on any failure."""
    os.makedirs(store, mode=0o755, exist_ok=True)
    venv = os.path.join(store, "{}-{}".format(env_id[:12], int(time.time())))
    suffix = 1
    while os.path.lexists(venv):
        suffix += 1
        venv = os.path.join(store, "{}-{}.{}".format(env_id[:12], int(time.time()), suffix))
    try:
        _run([python, "-m", "venv"] + (["--system-site-packages"] if system_site_packages else []) + [venv],
             what="creating the virtualenv " + venv)
        for layer in layers:
            env = dict(os.environ)
            env.update({str(k): str(v) for k, v in (layer.get("env") or {}).items()})
            _run(_pip_argv(venv, layer), env=env, what="installing the layer {!r}".format(layer.get("name", "")))
        gone = missing(installed(venv), layers)
        if gone:
            raise EnvError("after pip, the new virtualenv lacks: " + ", ".join(gone))
        modules = [name for layer in layers for name in layer.get("imports") or []]
        if modules:
            _run([os.path.join(venv, "bin", "python"), "-c", "import " + ", ".join(modules)],
                 what="importing " + ", ".join(modules))
        bin_dir = os.path.join(venv, "bin")
        env = dict(os.environ)
        env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "/usr/bin:/bin")
        for argv in proof:
            command = list(argv)
            if command and not os.path.isabs(command[0]):
                command[0] = os.path.join(bin_dir, command[0])
            _run(command, env=env, what="the proof " + " ".join(argv))
        marker = {"id": env_id, "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                  "layers": [{"name": layer.get("name", ""), "requirements": list(layer.get("requirements") or [])}
                             for layer in layers],
                  "proof": [list(argv) for argv in proof]}
        path = os.path.join(venv, MARKER)
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(marker, handle, indent=1)
            handle.write("\n")
        os.chmod(path, 0o644)
        _sync(path, venv, store)
    except BaseException:
        shutil.rmtree(venv, ignore_errors=True)
        raise
    return venv


def switch(link: str, venv: str, store: str) -> str:
    """Points the link at the new virtualenv (a new link renamed over the old one). A directory still at the link's
    place is moved into the store first. Returns the previous virtualenv (or "")."""
    previous = ""
    if os.path.islink(link):
        previous = os.path.realpath(link)
    elif os.path.isdir(link):
        previous = os.path.join(store, "legacy-{}".format(int(time.time())))
        os.rename(link, previous)
    elif os.path.lexists(link):
        raise EnvError("{} is neither a link nor a directory; move it away and run again".format(link))
    temporary = "{}.new-{}".format(link, os.getpid())
    if os.path.lexists(temporary):
        os.unlink(temporary)
    os.symlink(venv, temporary)
    os.replace(temporary, link)
    _sync(os.path.dirname(link) or ".")
    return previous


def prune(store: str, keep: str, keep_previous: int) -> List[str]:
    """Removes every virtualenv of the store but the live one and the newest keep_previous finished ones."""
    if not os.path.isdir(store):
        return []
    others = []
    for entry in os.scandir(store):
        if not entry.is_dir(follow_symlinks=False) or os.path.realpath(entry.path) == os.path.realpath(keep):
            continue
        finished = read_marker(entry.path) is not None or entry.name.startswith("legacy-")
        others.append((finished, entry.stat(follow_symlinks=False).st_mtime, entry.path))
    kept = [path for _, _, path in sorted((o for o in others if o[0]), key=lambda o: o[1], reverse=True)[:max(keep_previous, 0)]]
    removed = sorted(path for _, _, path in others if path not in kept)
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed


def ensure(link: str, store: str, python: str, system_site_packages: bool, layers: Sequence[Dict[str, Any]],
           proof: Sequence[Sequence[str]], keep_previous: int = 1, check: bool = False,
           receipt: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
    decided = plan(link, python, system_site_packages, layers)
    result: Dict[str, Any] = {"changed": decided["build"], "built": decided["build"], "id": decided["id"],
                              "reason": decided["reason"], "venv": decided["current"] or "", "previous": "", "removed": [],
                              "receipt_changed": False}
    if decided["build"] and not check:
        venv = build(store, decided["id"], python, system_site_packages, layers, proof)
        result["previous"] = switch(link, venv, store)
        result["venv"] = venv
        result["removed"] = prune(store, venv, keep_previous)
    try:
        result.update(receipt_result(receipt, check))  # the inputs' virtualenv is live now (in check mode: would be, once built)
    except OSError as error:
        raise ReceiptFailure("{} is live at {}{}, but its receipt could not be written: {}. A re-run writes it.".format(
            result["venv"], link, " (switched to in this run)" if decided["build"] else "", error)) from None
    result["changed"] = result["changed"] or result["receipt_changed"]
    return result


def run(params: Dict[str, Any], check: bool = False, want_diff: bool = False) -> Dict[str, Any]:
    """The module's whole work: the wheels put in place (or, ``check``, predicted), then, once every one is there,
    the virtualenv (``ensure``). A run that names a wheel to send leaves the virtualenv to the second run, which
    leaves the sent files' diff to the first. PathsError, EnvError, ReceiptFailure or OSError for a request that
    cannot be carried out."""
    staged = dict(params.get("staged") or {})
    paths = ensure_paths(list(params.get("directories") or []), [], list(params.get("files") or []), staged, check, want_diff)
    diff = own_diff(paths, staged)
    if paths["transfer"] and not check:
        return dict(paths, built=False, receipt_changed=False, work_pending=True, **diff)
    env = ensure(params["link"], params["store"], params["python"], params["system_site_packages"], params["layers"],
                 params["proof"], params["keep_previous"], check, params["receipt"])
    return dict(env, changed=env["changed"] or paths["changed"], changes=paths["changes"], files=paths["files"],
                transfer=paths["transfer"], **diff)


def main() -> None:  # pragma: no cover - exercised through Ansible in molecule
    from ansible.module_utils.basic import AnsibleModule

    module = AnsibleModule(
        argument_spec=dict(PATHS_SPEC, **{
            "link": {"type": "path", "required": True},
            "store": {"type": "path", "required": True},
            "python": {"type": "path", "required": True},
            "system_site_packages": {"type": "bool", "default": False},
            "layers": {"type": "list", "elements": "dict", "required": True, "options": {
                "name": {"type": "str", "required": True},
                "requirements": {"type": "list", "elements": "str", "required": True},
                "find_links": {"type": "list", "elements": "path", "default": []},
                "index": {"type": "bool", "default": True},
                "deps": {"type": "bool", "default": True},
                "env": {"type": "dict", "default": {}, "no_log": True},
                "imports": {"type": "list", "elements": "str", "default": []}}},
            "proof": {"type": "list", "elements": "list", "default": []},
            "keep_previous": {"type": "int", "default": 1},
            "receipt": RECEIPT_SPEC,
        }),
        supports_check_mode=True)
    params = module.params
    try:
        result = run(params, module.check_mode, module._diff)
    except (ReceiptFailure, PathsError) as error:
        module.fail_json(msg=str(error))
    except (EnvError, OSError, ValueError) as error:
        module.fail_json(msg="{} (the virtualenv at {} is unchanged)".format(error, params["link"]))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
