#!/usr/bin/env python3
"""Fetch one package-registry artifact by its package coordinates, with the ecosystem's own client.

An entry of ``artifacts.yml`` that comes from a package registry names the package, not a URL::

    filename: deepspeech-0.7.4-cp37-cp37m-linux_armv7l.whl
    pip: {package: deepspeech, version: 0.7.4, platform: linux_armv7l, python_version: "3.7"}
    sha256: 17dbedf5...

    filename: kenlm-0.2.0.tar.gz
    pip: {package: kenlm, version: 0.2.0, sdist: true}

    filename: deepspeech-0.7.4.tgz
    npm: {package: deepspeech, version: 0.7.4}

and is fetched by name: ``pip download --no-deps ...`` (PyPI files) or ``npm pack NAME@VERSION``
(npm tarballs). So whatever the user configured for that client applies — pip.conf and
``PIP_INDEX_URL``, ``.npmrc`` and ``npm config set registry``, ``HTTPS_PROXY``, credentials — while
the pinned sha256 still decides. The client runs into a fresh directory beside the destination;
the file it produced is checked and renamed into place atomically, so the destination only ever
holds a verified file. A destination that already has the pinned sum is left alone (no client
run). Without a pinned sum (trust on first use) the file is accepted and its sum returned.

pip runs as ``PYTHON -m pip`` with the Python running this script unless told otherwise. For an
sdist pip prepares the package's metadata with that Python (``--no-build-isolation``), which then
needs ``wheel`` (or setuptools >= 70.1) installed: the controller's requirements.txt pins both.

Library: ``fetch(entry, dest)`` -> ``Result(changed, path, sha256)``, ``FetchError`` with a message
meant for people; ``load_table(path)`` reads artifacts.yml without PyYAML. Command line::

    registry_fetch.py --artifact kenlm_sdist 0.2.0 any --dest DIR
    registry_fetch.py --entry-json '{"filename": ..., "pip": {...}, "sha256": ...}' --dest FILE
    registry_fetch.py --client npm --package deepspeech --version 0.7.4 \\
        --filename deepspeech-0.7.4.tgz --sha256 32f5c3d7... --dest DIR

prints ``{"changed": ..., "path": ..., "sha256": ...}`` on success; on failure the message goes to
stderr and the exit status is 1 (2: bad arguments). Stdlib only, Python 3.7+.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

REPO = Path(__file__).resolve().parent.parent
TABLE = REPO / "artifacts.yml"
CLIENTS = ("pip", "npm")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# Lines of a client's output that say nothing about the failure: pip's notes on configured
# find-links or file:// indexes that do not exist here, npm's stack frames and error-object dumps.
_NOISE = re.compile(r"is ignored: it is neither a file nor a directory|^\s*$"
                    r"|^(?:npm (?:error|ERR!))?\s+at \S|^npm (?:error|ERR!)(?:\s*\}?| {2,}\w+: .*)$")
_TAIL_LINES = 12


class FetchError(Exception):
    """The artifact could not be fetched or is not the pinned file; the message says what to do."""


class Coordinates(NamedTuple):
    """Where an artifact comes from, in its registry's terms, and what it must be."""

    client: str  # "pip" or "npm"
    package: str
    version: str
    filename: str  # the file the client produces (and the table names)
    sha256: str  # pinned sum, lowercase hex; "" when none is pinned (trust on first use)
    sdist: bool = False  # pip: the source distribution, not a wheel
    platform: str = ""  # pip wheels: --platform (e.g. linux_armv7l, manylinux1_x86_64)
    python_version: str = ""  # pip wheels: --python-version (e.g. 3.7)
    implementation: str = ""  # pip wheels: --implementation (e.g. cp)
    abi: str = ""  # pip wheels: --abi (e.g. cp37m)

    @property
    def spec(self) -> str:
        return "{}=={}".format(self.package, self.version) if self.client == "pip" else "{}@{}".format(self.package, self.version)

    def describe(self) -> str:
        kind = "sdist " if self.sdist else "wheel " if self.filename.endswith(".whl") else ""
        return "{} package {} ({}{})".format(self.client, self.spec, kind, self.filename)


class Result(NamedTuple):
    changed: bool  # the destination was (or, in check mode, would be) written
    path: str
    sha256: str  # the destination's sum ("" in check mode when it would be fetched)

    def to_json(self) -> str:
        return json.dumps({"changed": self.changed, "path": self.path, "sha256": self.sha256})


# --- the table --------------------------------------------------------------------------------

def _truthy(value: Any) -> bool:
    return value is True or str(value).strip().lower() in ("true", "yes", "1")


def is_registry_entry(entry: Mapping[str, Any]) -> bool:
    """Whether a table entry is described by package coordinates (pip: or npm:)."""
    return any(isinstance(entry.get(client), Mapping) for client in CLIENTS)


def coordinates(entry: Mapping[str, Any], sha256: Optional[str] = None) -> Coordinates:
    """The coordinates of a table entry; ``sha256`` (when given) replaces the entry's pin."""
    clients = [client for client in CLIENTS if entry.get(client) is not None]
    filename = str(entry.get("filename") or "")
    if len(clients) != 1 or not isinstance(entry.get(clients[0]), Mapping):
        raise FetchError("artifact entry {} names no package: give exactly one of pip: {{package, version, ...}} "
                         "or npm: {{package, version}} (found: {})".format(filename or json.dumps(dict(entry)),
                                                                            ", ".join(clients) or "neither"))
    client = clients[0]
    spec: Mapping[str, Any] = entry[client]
    package, version = str(spec.get("package") or ""), str(spec.get("version") or "")
    if not package or not version:
        raise FetchError("artifact entry {}: {}: needs both package and version, got {}".format(
            filename, client, json.dumps(dict(spec), default=str)))
    if not filename or "/" in filename:
        raise FetchError("artifact entry for {} {}: needs the file name the client produces (filename:)".format(client, package))
    pinned = str(sha256 if sha256 is not None else entry.get("sha256") or "").strip().lower()
    if pinned and not _SHA256.match(pinned):
        raise FetchError("{} {}: the pinned sha256 {!r} is not 64 hex digits".format(client, package, pinned))
    known = {"package", "version", "sdist", "platform", "python_version", "implementation", "abi"} if client == "pip" \
        else {"package", "version"}
    unknown = sorted(set(spec) - known)
    if unknown:
        raise FetchError("artifact entry {}: unknown {}: key(s) {} (known: {})".format(
            filename, client, ", ".join(unknown), ", ".join(sorted(known))))
    return Coordinates(
        client=client, package=package, version=version, filename=filename, sha256=pinned,
        sdist=_truthy(spec.get("sdist", False)), platform=str(spec.get("platform") or ""),
        python_version=str(spec.get("python_version") or ""), implementation=str(spec.get("implementation") or ""),
        abi=str(spec.get("abi") or ""))


def _strip_comment(text: str) -> str:
    quote = ""
    for index, char in enumerate(text):
        if quote:
            if char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char == "#" and (index == 0 or text[index - 1] in " \t"):
            return text[:index].rstrip()
    return text.rstrip()


def _scalar(text: str) -> Any:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1].replace("''", "'")
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("null", "~"):
        return None
    return text


def _flow(text: str, pos: int, where: str) -> Tuple[Any, int]:
    """A flow mapping, list or scalar starting at text[pos]; returns (value, position after it)."""
    while pos < len(text) and text[pos] == " ":
        pos += 1
    if pos < len(text) and text[pos] in "{[":
        closing, mapping = ("}", True) if text[pos] == "{" else ("]", False)
        result: Any = {} if mapping else []
        pos += 1
        while True:
            while pos < len(text) and text[pos] in " ,":
                pos += 1
            if pos >= len(text):
                raise ValueError("{}: unterminated {}".format(where, text))
            if text[pos] == closing:
                return result, pos + 1
            if mapping:
                key, pos = _flow(text, pos, where)
                if pos >= len(text) or text[pos] != ":":
                    raise ValueError("{}: expected ':' after {!r}".format(where, key))
                result[str(key)], pos = _flow(text, pos + 1, where)
            else:
                item, pos = _flow(text, pos, where)
                result.append(item)
    if pos < len(text) and text[pos] in "\"'":
        quote, end = text[pos], pos + 1
        while True:
            end = text.find(quote, end)
            if end < 0:
                raise ValueError("{}: unterminated quoted scalar in {}".format(where, text))
            if quote == "'" and text[end + 1:end + 2] == "'":  # '' is a quote inside '...'
                end += 2
            elif quote == '"' and text[end - 1] == "\\":
                end += 1
            else:
                return _scalar(text[pos:end + 1]), end + 1
    match = re.compile(r"[^,:{}\[\]]*(?::(?! )[^,:{}\[\]]*)*").match(text, pos)
    assert match is not None
    return _scalar(match.group(0)), match.end()


def load_table(path: "os.PathLike[str] | str" = TABLE) -> Dict[str, Any]:
    """Read artifacts.yml without PyYAML: block mappings, scalars and one-line flow collections.

    That is all the table uses; anything else (block lists, multi-line values) is refused with
    its line number.
    """
    root: Dict[str, Any] = {}
    stack: List[Tuple[int, Dict[str, Any]]] = [(-1, root)]
    with open(str(path), encoding="utf-8") as handle:
        for number, raw in enumerate(handle, 1):
            line = _strip_comment(raw.rstrip("\n"))
            stripped = line.strip()
            if not stripped or stripped in ("---", "..."):
                continue
            where = "{}:{}".format(path, number)
            indent = len(line) - len(line.lstrip(" "))
            match = re.match(r"^(\"[^\"]*\"|'[^']*'|[^\s\"'#{\[\]},&*!|>%@`-][^#]*?):(?:\s+(.*))?$", stripped)
            if not match:
                raise ValueError("{}: cannot read {!r} (the table uses block mappings, scalars and one-line "
                                 "{{...}} mappings only)".format(where, raw.rstrip("\n")))
            key, value = str(_scalar(match.group(1))), (match.group(2) or "").strip()
            while stack[-1][0] >= indent:
                stack.pop()
            parent = stack[-1][1]
            if key in parent:
                raise ValueError("{}: {!r} is given twice".format(where, key))
            if not value:
                child: Dict[str, Any] = {}
                parent[key] = child
                stack.append((indent, child))
            elif value[0] in "{[":
                parsed, end = _flow(value, 0, where)
                if value[end:].strip():
                    raise ValueError("{}: unexpected {!r} after the closing bracket".format(where, value[end:]))
                parent[key] = parsed
            else:
                parent[key] = _scalar(value)
    return root


def table_entry(name: str, version: str, variant: str, path: "os.PathLike[str] | str" = TABLE) -> Dict[str, Any]:
    """``artifacts.<name>.<version>.<variant>`` of the table."""
    try:
        entry = load_table(path)["artifacts"][name][version][variant]
    except (KeyError, TypeError):
        raise FetchError("{} has no entry artifacts.{}.{!r}.{}".format(path, name, version, variant)) from None
    if not isinstance(entry, dict):
        raise FetchError("{}: artifacts.{}.{!r}.{} is not a mapping".format(path, name, version, variant))
    return entry


# --- fetching ---------------------------------------------------------------------------------

def sha256_file(path: "os.PathLike[str] | str") -> str:
    digest = hashlib.sha256()
    with open(str(path), "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def client_command(coords: Coordinates, workdir: str, python: Optional[str] = None, npm: Optional[str] = None) -> List[str]:
    """The client's command line that writes ``coords``'s file into workdir."""
    if coords.client == "pip":
        command = [python or sys.executable, "-m", "pip", "download", "--no-deps", "--no-input",
                   "--disable-pip-version-check", "--progress-bar", "off", "--dest", workdir]
        if coords.sdist:
            # The sdist itself; pip reads its metadata with this Python's setuptools (no isolated
            # build environment to install first).
            command += ["--no-binary=:all:", "--no-build-isolation"]
        else:
            command += ["--only-binary=:all:"]
            for option, value in (("--platform", coords.platform), ("--python-version", coords.python_version),
                                  ("--implementation", coords.implementation), ("--abi", coords.abi)):
                if value:
                    command += [option, value]
        return command + [coords.spec]
    return [npm or "npm", "pack", coords.spec, "--pack-destination", workdir, "--ignore-scripts", "--loglevel", "warn"]


def _mirror_hint(coords: Coordinates) -> str:
    if coords.client == "pip":
        how = ("point pip at a reachable index or mirror (PIP_INDEX_URL=URL, or index-url = URL in pip.conf: "
               "pip config set global.index-url URL)")
    else:
        how = ("point npm at a reachable registry or mirror (npm config set registry URL, or registry=URL in "
               ".npmrc; npm_config_registry=URL for one run)")
    return ("To fetch it elsewhere: {}; behind a proxy set HTTPS_PROXY. Or give the file itself: put a copy "
            "with the pinned sha256 at the destination, or (Ansible) serve it from artifact_stage_mirror_url or "
            "drop it into files/artifacts/NAME/VERSION/{}.".format(how, coords.filename))


def _tail(output: str) -> str:
    lines = [line.rstrip() for line in output.splitlines() if not _NOISE.search(line)]
    return "\n".join("    " + line for line in lines[-_TAIL_LINES:]) or "    (no output)"


def _client_failed(coords: Coordinates, command: Sequence[str], output: str, reason: str) -> FetchError:
    message = "Could not fetch {} with {}: {}.".format(coords.describe(), coords.client, reason)
    if coords.client == "pip" and "from versions: none" in output:
        message += " pip found no file of {} on the indexes it asked (after 'Looking in indexes'): they are " \
                   "unreachable or do not have it.".format(coords.package)
    if coords.client == "pip" and "No module named pip" in output:
        message += " {} has no pip: install it ({} -m ensurepip), or name a Python that has one " \
                   "(--python; Ansible: artifact_stage_pip_python).".format(command[0], command[0])
    elif coords.client == "pip" and coords.sdist and re.search(
            r"bdist_wheel|metadata-generation-failed|[Pp]reparing metadata .*did not run successfully|egg_info", output):
        message += (" pip prepares an sdist's metadata with the Python that runs it ({}), which needs the "
                    "'wheel' package or setuptools >= 70.1: install the controller's pins "
                    "({} -m pip install -r requirements.txt) or name another Python (--python; Ansible: "
                    "artifact_stage_pip_python).".format(command[0], command[0]))
    return FetchError("{} {}\n  {}'s last output:\n{}".format(message, _mirror_hint(coords), coords.client, _tail(output)))


def _run_client(coords: Coordinates, workdir: str, python: Optional[str], npm: Optional[str],
                env: Optional[Mapping[str, str]], timeout: Optional[float]) -> None:
    command = client_command(coords, workdir, python, npm)
    if coords.client == "npm" and os.sep not in command[0] and shutil.which(command[0], path=(env or os.environ).get("PATH")) is None:
        raise FetchError(
            "Could not fetch {}: the npm client '{}' is not installed or not on PATH. Install npm (Debian: "
            "apt-get install npm), or name it (--npm PATH; Ansible: artifact_stage_npm), or give the file "
            "itself: put a copy with the pinned sha256 at the destination, or (Ansible) serve it from "
            "artifact_stage_mirror_url or drop it into files/artifacts/NAME/VERSION/{}.".format(
                coords.describe(), command[0], coords.filename))
    try:
        proc = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                              errors="replace", env=None if env is None else dict(env), cwd=workdir, timeout=timeout)
    except FileNotFoundError:
        what = "the Python that runs pip" if coords.client == "pip" else "the npm client"
        option = "--python; Ansible: artifact_stage_pip_python" if coords.client == "pip" else "--npm; Ansible: artifact_stage_npm"
        raise FetchError(
            "Could not fetch {}: {} '{}' does not exist. Install it or name another ({}), or give the file "
            "itself: put a copy with the pinned sha256 at the destination, or (Ansible) serve it from "
            "artifact_stage_mirror_url or drop it into files/artifacts/NAME/VERSION/{}.".format(
                coords.describe(), what, command[0], option, coords.filename)) from None
    except subprocess.TimeoutExpired as exc:
        output = exc.output if isinstance(exc.output, str) else (exc.output or b"").decode("utf-8", "replace")
        raise _client_failed(coords, command, output, "it did not finish within {} s".format(timeout)) from None
    if proc.returncode != 0:
        raise _client_failed(coords, command, proc.stdout, "'{}' exited with status {}".format(
            " ".join(command[:4] if coords.client == "pip" else command[:3]), proc.returncode))
    if not os.path.isfile(os.path.join(workdir, coords.filename)):
        produced = sorted(name for name in os.listdir(workdir))
        raise FetchError(
            "Could not fetch {}: {} succeeded but produced {} instead of {}. The table's coordinates or file name "
            "are wrong, or the index serves other files for this version.\n  {}'s last output:\n{}".format(
                coords.describe(), coords.client, ", ".join(produced) or "no file", coords.filename, coords.client,
                _tail(proc.stdout)))


def fetch(entry: "Mapping[str, Any] | Coordinates", dest: "os.PathLike[str] | str", *, sha256: Optional[str] = None,
          python: Optional[str] = None, npm: Optional[str] = None, env: Optional[Mapping[str, str]] = None,
          check: bool = False, timeout: Optional[float] = None) -> Result:
    """Make ``dest`` the entry's file: kept when it has the pinned sum, else fetched by its client.

    ``sha256`` replaces the entry's pin; ``python`` runs pip (default: this Python), ``npm`` is the
    npm binary (default: npm on PATH); ``env`` is the clients' environment (default: this one);
    ``check`` only reports whether a fetch is needed; ``timeout`` limits one client run (seconds).
    """
    coords = entry if isinstance(entry, Coordinates) else coordinates(entry, sha256)
    if isinstance(entry, Coordinates) and sha256 is not None:
        coords = coords._replace(sha256=sha256.strip().lower())
    target = Path(dest)
    if target.is_file():
        present = sha256_file(target)
        if not coords.sha256 or present == coords.sha256:
            return Result(False, str(target), present)
        if not check:
            target.unlink()  # not the pinned file: the cache keeps only verified files
    if check:
        return Result(True, str(target), "")
    target.parent.mkdir(parents=True, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix=".fetch-{}-".format(coords.filename), dir=str(target.parent))
    try:
        _run_client(coords, workdir, python, npm, env, timeout)
        produced = os.path.join(workdir, coords.filename)
        actual = sha256_file(produced)
        if coords.sha256 and actual != coords.sha256:
            raise FetchError(
                "Refused {} fetched with {}: expected sha256 {} (pinned), got {}; nothing was kept. The "
                "index, mirror or proxy serves a different file under this name: check where {} fetches from "
                "({}). Correct the pin only if you have verified the new file.".format(
                    coords.describe(), coords.client, coords.sha256, actual, coords.client,
                    "pip config list" if coords.client == "pip" else "npm config get registry"))
        os.chmod(produced, 0o644)
        os.replace(produced, str(target))
        return Result(True, str(target), actual)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


# --- command line -----------------------------------------------------------------------------

def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--artifact", nargs=3, metavar=("NAME", "VERSION", "VARIANT"), help="an entry of the table")
    source.add_argument("--entry-json", metavar="JSON", help="the entry itself, as JSON (the Ansible role passes it)")
    source.add_argument("--client", choices=CLIENTS, help="give the coordinates with the options below")
    parser.add_argument("--table", default=str(TABLE), help="the artifact table for --artifact (default: %(default)s)")
    parser.add_argument("--package")
    parser.add_argument("--version")
    parser.add_argument("--filename", help="the file the client produces")
    parser.add_argument("--sdist", action="store_true", help="pip: the source distribution")
    parser.add_argument("--platform", default="", help="pip wheels: --platform")
    parser.add_argument("--python-version", default="", help="pip wheels: --python-version")
    parser.add_argument("--implementation", default="", help="pip wheels: --implementation")
    parser.add_argument("--abi", default="", help="pip wheels: --abi")
    parser.add_argument("--sha256", help="the pinned sum (replaces the entry's; empty: trust on first use)")
    parser.add_argument("--dest", required=True, help="the destination file, or an existing directory (DIR/FILENAME)")
    parser.add_argument("--python", help="the Python whose pip fetches (default: the one running this script)")
    parser.add_argument("--npm", help="the npm binary (default: npm on PATH)")
    parser.add_argument("--check", action="store_true", help="only report whether a fetch is needed")
    parser.add_argument("--timeout", type=float, help="seconds one client run may take (default: no limit)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        if args.artifact:
            entry: Dict[str, Any] = table_entry(*args.artifact, path=args.table)
        elif args.entry_json:
            try:
                entry = json.loads(args.entry_json)
            except ValueError as exc:
                parser.error("--entry-json is not JSON: {}".format(exc))
            if not isinstance(entry, dict):
                parser.error("--entry-json must be a JSON object")
        else:
            missing = [name for name in ("package", "version", "filename") if not getattr(args, name)]
            if missing:
                parser.error("--client needs --" + ", --".join(missing))
            spec: Dict[str, Any] = {"package": args.package, "version": args.version}
            if args.client == "pip":
                spec.update(sdist=args.sdist, platform=args.platform, python_version=args.python_version,
                            implementation=args.implementation, abi=args.abi)
            entry = {"filename": args.filename, args.client: spec}
        filename = str(entry.get("filename") or "")
        dest = Path(args.dest)
        if dest.is_dir() or args.dest.endswith(os.sep):
            dest = dest / filename
        result = fetch(entry, dest, sha256=args.sha256, python=args.python, npm=args.npm, check=args.check,
                       timeout=args.timeout)
    except FetchError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    except ValueError as exc:  # an unreadable table
        print(str(exc), file=sys.stderr)
        return 1
    print(result.to_json())
    return 0


if __name__ == "__main__":
    sys.exit(main())
