"""scripts/registry_fetch.py: registry artifacts fetched by package name with pip and npm.

The clients run for real against stand-ins served on 127.0.0.1 — a PEP 503 simple index for pip
(through PIP_INDEX_URL, with every pip config file switched off) and an npm registry (packument
and tarball, through npm_config_registry, with a private user config and cache) — serving small
files built here. Nothing beyond the loopback interface is contacted.
"""
from __future__ import annotations

import base64
import contextlib
import hashlib
import importlib.util
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any, Dict, Iterator, List, Tuple

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "registry_fetch.py"


def _load() -> ModuleType:
    if "registry_fetch" in sys.modules:  # loaded by path already (the Python helpers import it too)
        return sys.modules["registry_fetch"]
    spec = importlib.util.spec_from_file_location("registry_fetch", str(SCRIPT))
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["registry_fetch"] = module
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


rf = _load()

NPM = shutil.which("npm")
needs_npm = pytest.mark.skipif(NPM is None, reason="npm is not installed")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- small real packages ----------------------------------------------------------------------

def _wheel(name: str, version: str, tag: str) -> Tuple[str, bytes]:
    """A minimal valid wheel (METADATA, WHEEL, RECORD) with the given py-abi-platform tag."""
    dist = "{}-{}.dist-info/".format(name, version)
    files = {
        name + ".py": b"VALUE = 1\n",
        dist + "METADATA": "Metadata-Version: 2.1\nName: {}\nVersion: {}\n".format(name, version).encode(),
        dist + "WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: false\nTag: {}\n".format(tag).encode(),
    }
    record = "".join("{},sha256={},{}\n".format(
        n, base64.urlsafe_b64encode(hashlib.sha256(d).digest()).rstrip(b"=").decode(), len(d)) for n, d in files.items())
    files[dist + "RECORD"] = (record + dist + "RECORD,,\n").encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for member, data in files.items():
            archive.writestr(zipfile.ZipInfo(member, (2020, 1, 1, 0, 0, 0)), data)
    return "{}-{}-{}.whl".format(name, version, tag), buffer.getvalue()


def _targz(members: Dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for member, data in members.items():
            info = tarfile.TarInfo(member)
            info.size, info.mtime, info.mode = len(data), 1577836800, 0o644
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _sdist(name: str, version: str, setup_py: str) -> Tuple[str, bytes]:
    top = "{}-{}/".format(name, version)
    return "{}-{}.tar.gz".format(name, version), _targz({
        top + "PKG-INFO": "Metadata-Version: 2.1\nName: {}\nVersion: {}\n".format(name, version).encode(),
        top + "setup.py": setup_py.encode(),
    })


TINY_WHEEL = _wheel("tinypkg", "1.0", "cp37-cp37m-linux_armv7l")
# Also on the index: a wheel for every platform, which pip must not pick for linux_armv7l / 3.7.
DECOY_WHEEL = _wheel("tinypkg", "1.0", "py3-none-any")
TINY_SDIST = _sdist("tinysrc", "2.0", "from setuptools import setup\nsetup(name='tinysrc', version='2.0')\n")
# An sdist whose metadata step fails as kenlm's does when the Python running pip lacks 'wheel'.
BROKEN_SDIST = _sdist("brokensrc", "1.0", "import sys\nsys.stderr.write(\"error: invalid command 'bdist_wheel'\\n\")\n"
                                            "sys.exit(1)\n")
NPM_TARBALL = ("tinynpm-1.0.0.tgz", _targz({
    "package/package.json": json.dumps({"name": "tinynpm", "version": "1.0.0", "description": "test"}).encode(),
    "package/lib/native/libtiny.so": b"\x7fELF not really a library\n",
}))


# --- the registry stand-ins -------------------------------------------------------------------

class Registry:
    """A PEP 503 simple index and an npm registry on one loopback port, logging every request."""

    def __init__(self) -> None:
        self.files: Dict[str, bytes] = {}
        self.pypi: Dict[str, List[str]] = {}
        self.npm: Dict[str, Dict[str, str]] = {}
        self.requests: List[str] = []
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                registry.requests.append(self.path)
                body, kind = registry.answer(self.path.split("?")[0])
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:{}".format(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def add_pypi(self, project: str, *files: Tuple[str, bytes]) -> None:
        for filename, data in files:
            self.files[filename] = data
            self.pypi.setdefault(project, []).append(filename)

    def add_npm(self, package: str, version: str, tarball: Tuple[str, bytes]) -> None:
        self.files[tarball[0]] = tarball[1]
        self.npm.setdefault(package, {})[version] = tarball[0]

    def answer(self, path: str) -> Tuple[Any, str]:
        parts = [p for p in path.split("/") if p]
        if len(parts) == 2 and parts[0] == "simple" and parts[1] in self.pypi:
            links = "".join('<a href="/files/{0}#sha256={1}">{0}</a>\n'.format(f, _sha256(self.files[f]))
                            for f in self.pypi[parts[1]])
            return "<!DOCTYPE html><html><body>\n{}</body></html>\n".format(links).encode(), "text/html"
        if len(parts) == 2 and parts[0] == "files" and parts[1] in self.files:
            return self.files[parts[1]], "application/octet-stream"
        if len(parts) == 1 and parts[0] in self.npm:
            return json.dumps(self.packument(parts[0])).encode(), "application/json"
        if len(parts) == 3 and parts[1] == "-" and parts[2] in self.files:
            return self.files[parts[2]], "application/octet-stream"
        return None, "text/plain"

    def packument(self, package: str) -> Dict[str, Any]:
        versions = {}
        for version, filename in self.npm[package].items():
            data = self.files[filename]
            versions[version] = {
                "name": package, "version": version, "_id": "{}@{}".format(package, version),
                "dist": {"tarball": "{}/{}/-/{}".format(self.url, package, filename),
                         "shasum": hashlib.sha1(data).hexdigest(),
                         "integrity": "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()}}
        return {"_id": package, "name": package, "dist-tags": {"latest": max(versions)}, "versions": versions}


@pytest.fixture
def registry() -> Iterator[Registry]:
    served = Registry()
    served.add_pypi("tinypkg", DECOY_WHEEL, TINY_WHEEL)
    served.add_pypi("tinysrc", TINY_SDIST)
    served.add_pypi("brokensrc", BROKEN_SDIST)
    served.add_npm("tinynpm", "1.0.0", NPM_TARBALL)
    served.thread.start()
    try:
        yield served
    finally:
        served.server.shutdown()
        served.server.server_close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _client_env(tmp: Path, index: str) -> Dict[str, str]:
    """This environment without any pip/npm/proxy settings, pointed at ``index`` (a base URL)."""
    env = {k: v for k, v in os.environ.items()
           if not k.upper().startswith(("PIP_", "NPM_CONFIG_")) and k.lower() not in
           ("http_proxy", "https_proxy", "all_proxy", "no_proxy")}
    (tmp / "npmrc-user").write_text("")
    (tmp / "npmrc-global").write_text("")
    env.update({
        "PIP_CONFIG_FILE": os.devnull, "PIP_INDEX_URL": index + "/simple/", "PIP_RETRIES": "0", "PIP_TIMEOUT": "5",
        "PIP_CACHE_DIR": str(tmp / "pip-cache"), "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "npm_config_registry": index + "/", "npm_config_userconfig": str(tmp / "npmrc-user"),
        "npm_config_globalconfig": str(tmp / "npmrc-global"), "npm_config_cache": str(tmp / "npm-cache"),
        "npm_config_fetch_retries": "0", "npm_config_fetch_timeout": "5000", "npm_config_update_notifier": "false",
        "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
    })
    return env


WHEEL_ENTRY = {"filename": TINY_WHEEL[0], "sha256": _sha256(TINY_WHEEL[1]),
               "pip": {"package": "tinypkg", "version": "1.0", "platform": "linux_armv7l", "python_version": "3.7"}}
SDIST_ENTRY = {"filename": TINY_SDIST[0], "sha256": _sha256(TINY_SDIST[1]),
               "pip": {"package": "tinysrc", "version": "2.0", "sdist": True}}
NPM_ENTRY = {"filename": NPM_TARBALL[0], "sha256": _sha256(NPM_TARBALL[1]),
             "npm": {"package": "tinynpm", "version": "1.0.0"}}


def _leftovers(directory: Path) -> List[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


# --- fetching through the configured index / registry -----------------------------------------

def test_pip_fetches_the_wheel_for_the_pinned_platform_from_the_configured_index(registry: Registry, tmp_path: Path) -> None:
    dest = tmp_path / "cache" / TINY_WHEEL[0]
    result = rf.fetch(WHEEL_ENTRY, dest, env=_client_env(tmp_path, registry.url))
    assert result == rf.Result(True, str(dest), WHEEL_ENTRY["sha256"])
    assert dest.read_bytes() == TINY_WHEEL[1] and oct(dest.stat().st_mode & 0o777) == "0o644"
    assert "/simple/tinypkg/" in registry.requests, "pip must ask the index given by PIP_INDEX_URL"
    assert "/files/" + TINY_WHEEL[0] in registry.requests and "/files/" + DECOY_WHEEL[0] not in registry.requests
    assert _leftovers(dest.parent) == [dest.name], "the client's work directory is removed"


def test_pip_fetches_an_sdist_from_the_configured_index(registry: Registry, tmp_path: Path) -> None:
    dest = tmp_path / TINY_SDIST[0]
    result = rf.fetch(SDIST_ENTRY, dest, env=_client_env(tmp_path, registry.url))
    assert result.changed and result.sha256 == SDIST_ENTRY["sha256"] and dest.read_bytes() == TINY_SDIST[1]
    assert registry.requests.count("/files/" + TINY_SDIST[0]) == 1


@needs_npm
def test_npm_fetches_the_tarball_from_the_configured_registry(registry: Registry, tmp_path: Path) -> None:
    dest = tmp_path / "cache" / NPM_TARBALL[0]
    result = rf.fetch(NPM_ENTRY, dest, env=_client_env(tmp_path, registry.url))
    assert result == rf.Result(True, str(dest), NPM_ENTRY["sha256"])
    assert dest.read_bytes() == NPM_TARBALL[1], "npm pack keeps the published tarball byte for byte"
    assert registry.requests[0] == "/tinynpm", "npm must ask the registry given by npm_config_registry"
    assert "/tinynpm/-/" + NPM_TARBALL[0] in registry.requests
    assert _leftovers(dest.parent) == [dest.name]


def test_the_cli_prints_json_for_the_ansible_side(registry: Registry, tmp_path: Path) -> None:
    env = _client_env(tmp_path, registry.url)
    command = [sys.executable, str(SCRIPT), "--client", "pip", "--package", "tinypkg", "--version", "1.0",
               "--platform", "linux_armv7l", "--python-version", "3.7", "--filename", TINY_WHEEL[0],
               "--sha256", WHEEL_ENTRY["sha256"], "--dest", str(tmp_path)]
    first = subprocess.run(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout) == {"changed": True, "path": str(tmp_path / TINY_WHEEL[0]), "sha256": WHEEL_ENTRY["sha256"]}
    again = subprocess.run([sys.executable, str(SCRIPT), "--entry-json", json.dumps(WHEEL_ENTRY), "--dest",
                            str(tmp_path / TINY_WHEEL[0])], env=env, stdout=subprocess.PIPE, universal_newlines=True)
    assert again.returncode == 0 and json.loads(again.stdout)["changed"] is False


# --- what is refused, and how it is explained -------------------------------------------------

@pytest.mark.fault
@needs_npm
def test_a_tarball_whose_sum_does_not_match_its_pin_is_refused(registry: Registry, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    dest = cache / NPM_TARBALL[0]
    pinned = "0" * 64
    with pytest.raises(rf.FetchError) as refused:
        rf.fetch(dict(NPM_ENTRY, sha256=pinned), dest, env=_client_env(tmp_path, registry.url))
    message = str(refused.value)
    assert "npm package tinynpm@1.0.0" in message and pinned in message and NPM_ENTRY["sha256"] in message, message
    assert _leftovers(cache) == [], "nothing of a refused download stays in the cache"


def test_a_cached_file_with_a_wrong_sum_is_replaced_and_a_wrong_download_leaves_nothing(registry: Registry,
                                                                                      tmp_path: Path) -> None:
    env = _client_env(tmp_path, registry.url)
    dest = tmp_path / "cache" / TINY_WHEEL[0]
    dest.parent.mkdir()
    dest.write_bytes(b"stale")
    assert rf.fetch(WHEEL_ENTRY, dest, env=env).changed and dest.read_bytes() == TINY_WHEEL[1]
    dest.write_bytes(b"stale")
    with pytest.raises(rf.FetchError, match="expected sha256 {} \\(pinned\\), got {}".format("f" * 64, WHEEL_ENTRY["sha256"])):
        rf.fetch(WHEEL_ENTRY, dest, sha256="f" * 64, env=env)
    assert _leftovers(dest.parent) == []


@pytest.mark.fault
@pytest.mark.parametrize("client", ["pip", pytest.param("npm", marks=needs_npm)])
def test_an_unreachable_index_fails_naming_the_package_the_client_and_how_to_use_a_mirror(client: str, tmp_path: Path) -> None:
    entry = SDIST_ENTRY if client == "pip" else NPM_ENTRY
    dest = tmp_path / "cache" / entry["filename"]
    with pytest.raises(rf.FetchError) as failed:
        rf.fetch(entry, dest, env=_client_env(tmp_path, "http://127.0.0.1:{}".format(_closed_port())), timeout=120)
    message = str(failed.value)
    package = "tinysrc==2.0" if client == "pip" else "tinynpm@1.0.0"
    assert "Could not fetch {} package {}".format(client, package) in message, message
    assert "with {}:".format(client) in message and "{}'s last output".format(client) in message, message
    hint = "PIP_INDEX_URL" if client == "pip" else "npm config set registry"
    assert hint in message and "HTTPS_PROXY" in message and "artifact_stage_mirror_url" in message, message
    assert "is ignored: it is neither a file nor a directory" not in message
    assert _leftovers(dest.parent) == []


def test_an_sdist_whose_metadata_step_fails_says_what_the_python_running_pip_needs(registry: Registry, tmp_path: Path) -> None:
    entry = {"filename": BROKEN_SDIST[0], "pip": {"package": "brokensrc", "version": "1.0", "sdist": True}}
    with pytest.raises(rf.FetchError) as failed:
        rf.fetch(entry, tmp_path / BROKEN_SDIST[0], env=_client_env(tmp_path, registry.url))
    message = str(failed.value)
    assert "'wheel' package or setuptools >= 70.1" in message and sys.executable in message, message
    assert "invalid command 'bdist_wheel'" in message, "the client's own last lines are shown"


def test_a_file_name_that_does_not_fit_the_coordinates_is_reported(registry: Registry, tmp_path: Path) -> None:
    entry = dict(WHEEL_ENTRY, filename=DECOY_WHEEL[0])  # the coordinates select the armv7l wheel
    with pytest.raises(rf.FetchError, match="pip succeeded but produced {} instead of {}".format(
            TINY_WHEEL[0].replace(".", "\\."), DECOY_WHEEL[0].replace(".", "\\."))):
        rf.fetch(entry, tmp_path / "c" / DECOY_WHEEL[0], env=_client_env(tmp_path, registry.url))
    assert _leftovers(tmp_path / "c") == []


def test_a_missing_client_is_named_with_the_alternatives(tmp_path: Path) -> None:
    env = _client_env(tmp_path, "http://127.0.0.1:{}".format(_closed_port()))
    for npm in (str(tmp_path / "no-such-npm"), "no-such-npm-client"):
        with pytest.raises(rf.FetchError) as failed:
            rf.fetch(NPM_ENTRY, tmp_path / "c" / NPM_TARBALL[0], npm=npm, env=env)
        message = str(failed.value)
        assert npm in message and "artifact_stage_npm" in message and "files/artifacts/" in message, message
    with pytest.raises(rf.FetchError) as failed:
        rf.fetch(WHEEL_ENTRY, tmp_path / "c" / TINY_WHEEL[0], python=str(tmp_path / "no-python"), env=env)
    assert "the Python that runs pip" in str(failed.value) and "artifact_stage_pip_python" in str(failed.value)
    assert _leftovers(tmp_path / "c") == []
    cli = subprocess.run([sys.executable, str(SCRIPT), "--entry-json", json.dumps(NPM_ENTRY), "--npm", "no-such-npm-client",
                          "--dest", str(tmp_path / "c")], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         universal_newlines=True)
    assert cli.returncode == 1 and cli.stdout == "" and "no-such-npm-client" in cli.stderr


# --- the cache --------------------------------------------------------------------------------

@pytest.mark.parametrize("entry,package", [(WHEEL_ENTRY, TINY_WHEEL), pytest.param(NPM_ENTRY, NPM_TARBALL, marks=needs_npm)])
def test_a_cached_file_with_the_pinned_sum_is_not_fetched_again(registry: Registry, tmp_path: Path,
                                                                 entry: Dict[str, Any], package: Tuple[str, bytes]) -> None:
    env = _client_env(tmp_path, registry.url)
    dest = tmp_path / "cache" / package[0]
    assert rf.fetch(entry, dest, env=env).changed
    before = list(registry.requests)
    again = rf.fetch(entry, dest, env=env)
    assert again == rf.Result(False, str(dest), entry["sha256"]) and registry.requests == before
    assert rf.fetch(entry, dest, env=env, check=True).changed is False
    dest.unlink()
    assert rf.fetch(entry, dest, env=env, check=True) == rf.Result(True, str(dest), "")
    assert registry.requests == before and not dest.exists(), "check mode fetches nothing"


def test_without_a_pin_the_first_sum_seen_is_returned(registry: Registry, tmp_path: Path) -> None:
    env = _client_env(tmp_path, registry.url)
    entry = {k: v for k, v in SDIST_ENTRY.items() if k != "sha256"}
    dest = tmp_path / TINY_SDIST[0]
    first = rf.fetch(entry, dest, env=env)
    assert first.changed and first.sha256 == _sha256(TINY_SDIST[1])
    count = len(registry.requests)
    assert rf.fetch(entry, dest, env=env) == rf.Result(False, str(dest), first.sha256) and len(registry.requests) == count


# --- the table --------------------------------------------------------------------------------

def test_entries_need_exactly_one_client_with_package_and_version() -> None:
    for bad in ({"filename": "a.whl"}, {"filename": "a.whl", "pip": {"package": "a"}},
                {"filename": "a.tgz", "pip": {"package": "a", "version": "1"}, "npm": {"package": "a", "version": "1"}},
                {"filename": "a.tgz", "npm": {"package": "a", "version": "1", "platform": "x"}},
                {"filename": "a.tgz", "npm": {"package": "a", "version": "1"}, "sha256": "abc"}):
        with pytest.raises(rf.FetchError):
            rf.coordinates(bad)
    assert rf.client_command(rf.coordinates(SDIST_ENTRY), "/w", python="/py")[:4] == ["/py", "-m", "pip", "download"]
    assert rf.client_command(rf.coordinates(NPM_ENTRY), "/w")[:3] == ["npm", "pack", "tinynpm@1.0.0"]


def test_the_stdlib_table_reader_reads_artifacts_yml_as_yaml_does() -> None:
    assert rf.load_table(REPO / "artifacts.yml") == yaml.safe_load((REPO / "artifacts.yml").read_text())


def test_registry_entries_in_the_table_are_coordinates_that_match_their_file_names() -> None:
    table = rf.load_table(REPO / "artifacts.yml")["artifacts"]
    registry_entries = 0
    for name, versions in table.items():
        for version, variants in versions.items():
            for variant, entry in variants.items():
                if not rf.is_registry_entry(entry):
                    continue
                registry_entries += 1
                where = "{} {} {}".format(name, version, variant)
                assert "url" not in entry and "gdrive_id" not in entry, where + ": a registry file is fetched by name"
                coords = rf.coordinates(entry)
                assert len(coords.sha256) == 64, where
                stem = coords.package.replace("-", "_") if coords.filename.endswith(".whl") else coords.package
                assert coords.filename.startswith("{}-{}".format(stem, coords.version)), where
                if coords.client == "npm":
                    assert coords.filename == "{}-{}.tgz".format(coords.package, coords.version), where
                elif coords.sdist:
                    assert coords.filename == "{}-{}.tar.gz".format(coords.package, coords.version), where
                elif not coords.platform:  # a pure-Python wheel: one file for every Pi
                    assert not coords.python_version and coords.filename.endswith("-py3-none-any.whl"), where
                else:
                    py = "cp" + coords.python_version.replace(".", "")
                    assert isinstance(entry["pip"]["python_version"], str), where + ": quote python_version"
                    assert coords.filename.split("-")[2] == py and coords.filename.endswith("-" + coords.platform + ".whl"), where
    assert registry_entries == 15
    npm = table["deepspeech_npm"]["0.7.4"]["any"]
    assert npm["members"]["linux-arm64"] == {
        "path": "package/lib/binding/v0.7.4/linux-arm64/libdeepspeech.so",
        "sha256": "9d202ad2d875683e1aabce34581bffa7e282c49fc76b4d7173971c98617b0878"}


# --- through the role (artifact_stage), as playbooks/stage.yml runs it ------------------------

# The role's catalog + fetch, run once for the whole fleet: the same play as the staging tests'.
from test_artifact_stage import PLAYBOOK  # noqa: E402


class RoleRun:
    """ansible-playbook runs of the role's catalog + fetch on two local hosts."""

    def __init__(self, tmp: Path, registry: Registry, entries: Dict[str, Dict[str, Any]]) -> None:
        self.tmp, self.cache, self.entries = tmp, tmp / "cache", entries
        self.env = dict(_client_env(tmp, registry.url), ANSIBLE_ROLES_PATH=str(REPO / "roles"),
                        ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_CONFIG=str(tmp / "ansible.cfg"))
        (tmp / "playbook.yml").write_text(PLAYBOOK)
        (tmp / "hosts.ini").write_text("[all]\n" + "".join(
            "{} ansible_connection=local ansible_python_interpreter={}\n".format(h, sys.executable) for h in ("pi-1", "pi-2")))
        (tmp / "ansible.cfg").write_text("[defaults]\n")

    def path(self, name: str) -> Path:
        return self.cache / name / "1.0" / self.entries[name]["filename"]

    def run(self, extra: Dict[str, Any] = {}, check: bool = False) -> Dict[str, Any]:  # noqa: B006 (read only)
        (self.tmp / "artifacts.yml").write_text(yaml.safe_dump({"artifacts": {
            name: {"1.0": {"any": entry}} for name, entry in self.entries.items()}}))
        variables = dict({
            "artifact_stage_catalog_file": str(self.tmp / "artifacts.yml"), "artifact_stage_cache_dir": str(self.cache),
            "artifact_stage_local_dir": str(self.tmp / "dropped"), "artifact_stage_pip_python": sys.executable,
            "artifact_stage_items": [{"name": n, "version": "1.0", "variant": "any"} for n in self.entries],
            "artifact_stage_retries": 0, "artifact_stage_retry_delay": 0}, **extra)
        (self.tmp / "vars.json").write_text(json.dumps(variables))
        command = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(self.tmp / "hosts.ini"),
                   str(self.tmp / "playbook.yml"), "-e", "@" + str(self.tmp / "vars.json")] + (["--check"] if check else [])
        proc = subprocess.run(command, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True, timeout=300)
        report = json.loads(proc.stdout)
        failures = [msg for play in report["plays"] for task in play["tasks"] for res in task["hosts"].values()
                    if res.get("failed")
                    for msg in [res.get("msg", "")] + [r.get("msg", "") for r in res.get("results", []) if r.get("failed")]]
        return {"rc": proc.returncode, "changed": sum(s["changed"] for s in report["stats"].values()),
                "failures": " ".join(" ".join(failures).split()), "stderr": proc.stderr}


ROLE_ENTRIES = {"wheel": WHEEL_ENTRY, "sdist": SDIST_ENTRY, **({"npm": NPM_ENTRY} if NPM else {})}


def test_the_role_fetches_registry_entries_by_name_once_and_a_rerun_changes_nothing(registry: Registry, tmp_path: Path) -> None:
    stage = RoleRun(tmp_path, registry, {name: dict(entry) for name, entry in ROLE_ENTRIES.items()})
    first = stage.run()
    assert first["rc"] == 0, first["failures"] or first["stderr"]
    for name, entry in ROLE_ENTRIES.items():
        assert _sha256(stage.path(name).read_bytes()) == entry["sha256"], name
    assert "/simple/tinypkg/" in registry.requests and "/simple/tinysrc/" in registry.requests
    assert ("/tinynpm" in registry.requests) == bool(NPM)
    before = list(registry.requests)
    for check in (False, True):
        again = stage.run(check=check)
        assert again["rc"] == 0 and again["changed"] == 0, again
    assert registry.requests == before, "a re-run (and a check run) asks no registry"


def test_the_role_prefers_a_dropped_in_file_and_refuses_a_wrong_registry_file(registry: Registry, tmp_path: Path) -> None:
    stage = RoleRun(tmp_path, registry, {"wheel": dict(WHEEL_ENTRY), "sdist": dict(SDIST_ENTRY)})
    dropped = tmp_path / "dropped" / "wheel" / "1.0"
    dropped.mkdir(parents=True)
    (dropped / TINY_WHEEL[0]).write_bytes(TINY_WHEEL[1])
    stage.entries["sdist"]["sha256"] = "e" * 64
    result = stage.run()
    assert result["rc"] != 0
    assert "Could not stage sdist 1.0 any by its package name: Refused pip package tinysrc==2.0" in result["failures"], result
    assert "expected sha256 {} (pinned), got {}".format("e" * 64, SDIST_ENTRY["sha256"]) in result["failures"], result
    assert not stage.path("sdist").exists() and _leftovers(stage.path("sdist").parent) == []
    assert stage.path("wheel").read_bytes() == TINY_WHEEL[1]
    assert "/simple/tinypkg/" not in registry.requests, "the dropped-in file is used, the index not asked"


def test_the_role_records_a_registry_file_trusted_on_first_use(registry: Registry, tmp_path: Path) -> None:
    stage = RoleRun(tmp_path, registry, {"sdist": {k: v for k, v in SDIST_ENTRY.items() if k != "sha256"}})
    refused = stage.run()
    assert refused["rc"] != 0 and "No sha256 is pinned for sdist 1.0 any" in refused["failures"], refused
    trusted = stage.run({"artifact_stage_trust_on_first_use": True})
    assert trusted["rc"] == 0, trusted["failures"] or trusted["stderr"]
    assert yaml.safe_load((stage.cache / "trusted-sums.yml").read_text()) == {"sdist": {"1.0": {"any": SDIST_ENTRY["sha256"]}}}
