"""Helpers of the python/rhasspy-asr tests: the installed venv, a private Mosquitto, the Hermes
service and an MQTT test client. (A unique module name: the repository's suites share one pytest
session.)

The venv is built once per set of inputs (build.py, patches, requirements.txt, the sdists' and
the official wheel's sha256, the deepspeech-compat and voice-appliance sources, the Python) into
``${PI_VOICE_CACHE:-~/.cache/pi-voice}/rhasspy-asr-<hash>``; a warm cache returns at once.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import wave
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent  # python/rhasspy-asr
REPO = PROJECT.parent.parent
COMPAT = REPO / "python" / "deepspeech-compat"
VOICE = REPO / "python" / "voice-appliance"
FIXTURE = Path(os.environ.get("PI_VOICE_FIXTURE_DIR") or REPO / "files" / "fixture")
# An upstream-made 0.7.4 scorer (German commands, German alphabet; voice-appliance's test data):
# the stand-in for the German base scorer. Its vocabulary has "das ist ein" but not "test".
BASE_SCORER_DATA = VOICE / "tests" / "data" / "de_commands"
TFLITE_WHEEL = ("deepspeech_tflite_wheel", "0.7.4", "amd64-cp38")  # the official x86_64 TFLite library
SERVICE = "rhasspy-asr-deepspeech-hermes"
# Rebuild the cached venv when this recipe changes.
RECIPE = "rasr-venv-v1"


def load_build() -> ModuleType:
    """python/rhasspy-asr/build.py as a module (imported under a unique name)."""
    name = "rhasspy_asr_build"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, str(PROJECT / "build.py"))
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def cache_dir() -> Path:
    return load_build().cache_dir()


def python_for(version: str) -> Optional[str]:
    """An interpreter of this minor version: this one, pythonX.Y on PATH, or pyenv's."""
    if "%d.%d" % sys.version_info[:2] == version:
        return sys.executable
    candidates = [str(p) for p in sorted((Path.home() / ".pyenv" / "versions").glob(version + ".*/bin/python"))]
    candidates += [c for c in (shutil.which("python" + version),) if c]  # may be a pyenv shim that fails
    for candidate in candidates:
        proc = subprocess.run([candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, universal_newlines=True)
        if proc.returncode == 0 and proc.stdout.strip() == version:
            return candidate
    return None


def _tree_digest(digest: "hashlib._Hash", root: Path, patterns: Sequence[str]) -> None:
    for pattern in patterns:
        for path in sorted(root.glob(pattern)):
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes())


def venv_key(python: str) -> str:
    build = load_build()
    digest = hashlib.sha256(RECIPE.encode())
    version = subprocess.run([python, "-c", "import sys; print(sys.version)"], stdout=subprocess.PIPE,
                             universal_newlines=True, check=True).stdout
    digest.update(version.encode())
    _tree_digest(digest, PROJECT, ["build.py", "requirements.txt", "patches/*/*.patch"])
    _tree_digest(digest, COMPAT, ["build_wheel.py", "deepspeech/*.py"])
    _tree_digest(digest, VOICE, ["pyproject.toml", "voice_appliance/*.py"])
    artifacts = build.load_artifacts()
    for package in build.PACKAGES:
        digest.update(build.artifact_entry(package, artifacts)["sha256"].encode())
    digest.update(official_wheel_entry()["sha256"].encode())
    return digest.hexdigest()[:12]


def official_wheel_entry() -> Dict[str, Any]:
    """The table entry of the official wheel (filename, sha256, pip coordinates) for build.fetch."""
    name, version, variant = TFLITE_WHEEL
    return dict(load_build().load_artifacts()[name][version][variant])


class Venv(object):
    def __init__(self, root: Path) -> None:
        self.root = root
        self.wheels = root / "wheels"
        self.bin = root / "venv" / "bin"
        self.python = str(self.bin / "python")

    def script(self, name: str) -> str:
        return str(self.bin / name)

    def run(self, code: str, *args: str, env: Optional[Dict[str, str]] = None,
            timeout: float = 300) -> "subprocess.CompletedProcess[str]":
        """Run Python code in the venv; fail with its output when it exits non-zero."""
        proc = subprocess.run([self.python, "-c", code] + list(args), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, universal_newlines=True, timeout=timeout,
                              env=env)
        if proc.returncode != 0:
            raise AssertionError("venv code failed (%d):\n%s\n%s" % (proc.returncode, proc.stdout,
                                                                      proc.stderr))
        return proc


def _step(command: Sequence[str], log: Path, what: str) -> None:
    with log.open("ab") as handle:
        handle.write(("\n$ %s\n" % " ".join(command)).encode())
        handle.flush()
        code = subprocess.run(list(command), stdout=handle, stderr=subprocess.STDOUT).returncode
    if code != 0:
        tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-30:]
        raise AssertionError("%s failed (exit %d): %s\n%s" % (what, code, " ".join(command), "\n".join(tail)))


def ensure_venv(python: str) -> Venv:
    """Build the patched wheels and install them with the compat deepspeech into a cached venv."""
    root = cache_dir() / ("rhasspy-asr-" + venv_key(python))
    root.parent.mkdir(parents=True, exist_ok=True)
    # One builder at a time (pytest's workers, two test runs): the others wait, then find the venv complete.
    with open(str(root) + ".lock", "w") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        if not (root / ".complete").is_file():
            _build_venv(root, python)
    return Venv(root)


def _build_venv(root: Path, python: str) -> None:
    """The venv at ``root`` made anew: the patched wheels built and installed with the compat deepspeech."""
    build = load_build()
    shutil.rmtree(str(root), ignore_errors=True)
    root.mkdir(parents=True)
    venv = Venv(root)
    log = root / "setup.log"
    nice = ["nice", "-n", "10"] if shutil.which("nice") else []
    _step([python, "-m", "venv", str(root / "venv")], log, "creating the venv")
    pip = nice + [venv.python, "-m", "pip", "--disable-pip-version-check"]
    # Building needs setuptools (+ wheel for setuptools < 70.1); setuptools < 81 is also a runtime pin.
    _step(pip + ["install", "-q", "setuptools>=40.8,<81", "wheel"], log, "installing setuptools")
    _step(nice + [venv.python, str(PROJECT / "build.py"), "--python", venv.python, "--out",
                  str(venv.wheels)], log, "build.py")
    _step(pip + ["wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index", "--wheel-dir",
                 str(venv.wheels), str(VOICE)], log, "building the voice-appliance wheel")
    official = build.fetch(official_wheel_entry())
    _step([python, str(COMPAT / "build_wheel.py"), "--wheel", str(official), "--out", str(venv.wheels)],
          log, "building the compat deepspeech wheel")
    _step(pip + ["install", "-q", "--find-links", str(venv.wheels), "-r", str(PROJECT / "requirements.txt"),
                 "numpy"], log, "installing requirements.txt")
    (root / ".complete").write_text(time.strftime("%Y-%m-%d %H:%M:%S\n"), encoding="utf-8")


# --- fixture model ---------------------------------------------------------------------------------

def fixture_present() -> bool:
    return (FIXTURE / "manifest.json").is_file()


def fixture() -> Dict[str, Any]:
    manifest = json.loads((FIXTURE / "manifest.json").read_text(encoding="utf-8"))
    return {"model": FIXTURE / manifest["model"]["tflite"],
            "alphabet": FIXTURE / manifest["model"]["alphabet"],
            "wav": FIXTURE / manifest["test_wav"]["file"],
            "transcript": manifest["test_wav"]["transcript"]}


# --- Mosquitto -------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_port(port: int, timeout: float, proc: "subprocess.Popen[bytes]", what: str) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError("%s exited with %s before listening" % (what, proc.returncode))
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("%s does not listen on 127.0.0.1:%d after %s s" % (what, port, timeout))


def mqtt_accounts() -> ModuleType:
    """The rhasspy_asr role's mqtt_accounts module (Mosquitto's password hashes)."""
    name = "mqtt_broker_accounts"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, str(REPO / "plugins" / "modules" / "mqtt_accounts.py"))
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)  # type: ignore[union-attr]
        sys.modules[name] = module
    return sys.modules[name]


class Broker(object):
    """A private Mosquitto on a free loopback port (no persistence); anonymous, or with ``users``
    ({name: password}) only those accounts may connect."""

    def __init__(self, directory: Path, users: Optional[Dict[str, str]] = None) -> None:
        binary = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)
        if not binary:
            raise AssertionError("mosquitto is not installed: apt-get install mosquitto "
                                 "(harness/setup.sh installs it)")
        self.binary = binary
        self.directory = directory
        self.port = free_port()
        self.config = directory / "mosquitto.conf"
        # log_type subscribe: the broker logs each subscription it has taken ("<client> <qos> <topic>")
        self.config.write_text("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\n"
                               "log_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\n"
                               "log_type subscribe\n" % self.port, encoding="utf-8")
        if users:
            passwd = directory / "mosquitto.passwd"
            hashes = mqtt_accounts()
            passwd.write_text("".join("%s:%s\n" % (name, hashes.hash_password(pw)) for name, pw in users.items()),
                              encoding="utf-8")
            text = self.config.read_text(encoding="utf-8").replace("allow_anonymous true", "allow_anonymous false")
            self.config.write_text(text + "password_file %s\nuser root\n" % passwd, encoding="utf-8")
        self.log_path = directory / "mosquitto.log"
        self.proc: Optional["subprocess.Popen[bytes]"] = None

    def log_offset(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def wait_subscribed(self, topics: Sequence[str], offset: int, timeout: float,
                        alive: Callable[[], bool] = lambda: True) -> None:
        """Wait until the broker has logged a subscription to every topic (after ``offset``):
        from then on it routes them (a client's own log line comes before its SUBSCRIBE is taken)."""
        deadline = time.time() + timeout
        while True:
            with self.log_path.open("rb") as handle:
                handle.seek(offset)
                lines = handle.read().decode("utf-8", "replace").splitlines()
            if all(any(line.endswith(" " + topic) and " 0 " in line for line in lines) for topic in topics):
                return
            if time.time() > deadline or not alive():
                raise AssertionError("the broker has no subscription to %s after %s s" % (list(topics), timeout))
            time.sleep(0.05)

    def start(self) -> "Broker":
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen([self.binary, "-c", str(self.config)], stdout=log, stderr=log)
        log.close()
        _wait_port(self.port, 10, self.proc, "mosquitto")
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# --- the Hermes service ----------------------------------------------------------------------------

class Service(object):
    """rhasspy-asr-deepspeech-hermes from the venv, with its log collected."""

    READY = ("hermes/asr/startListening", "hermes/audioServer/+/audioFrame", "hermes/asr/stopListening",
             "rhasspy/asr/+/train")

    def __init__(self, venv: Venv, broker: Broker, args: Sequence[str], env: Optional[Dict[str, str]] = None) -> None:
        self.broker = broker
        self.command = [venv.script(SERVICE), "--host", "127.0.0.1", "--port", str(broker.port), "--debug"] + list(args)
        self.env = dict(os.environ)
        self.env.update(env or {})
        self.lines: List[str] = []
        self.proc: Optional["subprocess.Popen[str]"] = None
        self._reader: Optional[threading.Thread] = None

    def start(self, ready_timeout: float = 60) -> "Service":
        offset = self.broker.log_offset()
        self.proc = subprocess.Popen(self.command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     universal_newlines=True, env=self.env)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.wait_subscribed(offset, ready_timeout)
        return self

    def wait_subscribed(self, offset: int, timeout: float = 60) -> None:
        """Wait until the broker (log from ``offset``) routes the service's topics to it."""
        assert self.proc
        try:
            self.broker.wait_subscribed(self.READY, offset, timeout, alive=lambda: self.proc.poll() is None)
        except AssertionError as error:
            time.sleep(0.2)
            raise AssertionError("%s; service %s:\n%s" % (error, "exited with %s" % self.proc.returncode
                                                          if self.proc.poll() is not None else "running", self.log()))

    def _read(self) -> None:
        assert self.proc and self.proc.stdout
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def log(self, last: int = 80) -> str:
        return "\n".join(self.lines[-last:])

    def run_to_exit(self, timeout: float = 60) -> Tuple[int, str]:
        """Run the command expecting it to exit by itself (start-up refusals)."""
        proc = subprocess.run(self.command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              universal_newlines=True, env=self.env, timeout=timeout)
        return proc.returncode, proc.stdout

    def signal(self, number: int) -> None:
        assert self.proc
        self.proc.send_signal(number)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._reader:
            self._reader.join(timeout=5)
        print("--- service log (%s) ---\n%s" % (" ".join(self.command[:1]), self.log(200)))  # shown on failure


# --- MQTT test client ------------------------------------------------------------------------------

class Hermes(object):
    """A paho-mqtt client (1.x or 2.x API) recording every message under the given topics."""

    def __init__(self, port: int, topics: Sequence[str] = ("hermes/#", "rhasspy/#"),
                 username: Optional[str] = None, password: Optional[str] = None) -> None:
        import paho.mqtt.client as mqtt

        if hasattr(mqtt, "CallbackAPIVersion"):
            self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        else:
            self.client = mqtt.Client()
        self.messages: List[Tuple[str, bytes]] = []
        self.cond = threading.Condition()
        subscribed = threading.Event()
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *args: subscribed.set()
        if username:
            self.client.username_pw_set(username, password)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.client.subscribe([(topic, 0) for topic in topics])
        if not subscribed.wait(10):
            raise AssertionError("the test client's subscription was not acknowledged")

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        with self.cond:
            self.messages.append((message.topic, message.payload))
            self.cond.notify_all()

    def publish(self, topic: str, payload: Any) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload)
        self.client.publish(topic, data).wait_for_publish()

    def wait_for(self, predicate: Callable[[str, Dict[str, Any]], bool], timeout: float,
                 what: str, since: int = 0) -> Tuple[str, Dict[str, Any]]:
        """The first JSON message (from index ``since``) matching predicate(topic, payload)."""
        deadline = time.time() + timeout
        with self.cond:
            while True:
                for topic, raw in self.messages[since:]:
                    try:
                        payload = json.loads(raw.decode("utf-8"))
                    except ValueError:
                        continue
                    if isinstance(payload, dict) and predicate(topic, payload):
                        return topic, payload
                left = deadline - time.time()
                if left <= 0:
                    seen = [(t, r[:200]) for t, r in self.messages[since:] if "audioFrame" not in t]
                    raise AssertionError("no %s within %s s; seen: %s" % (what, timeout, seen))
                self.cond.wait(left)

    def json_messages(self, topic: str, since: int = 0) -> List[Dict[str, Any]]:
        with self.cond:
            return [json.loads(raw.decode("utf-8")) for t, raw in self.messages[since:] if t == topic]

    def mark(self) -> int:
        with self.cond:
            return len(self.messages)

    def transcribe(self, wav: Path, session_id: str, site_id: str = "default",
                   timeout: float = 60) -> Tuple[Dict[str, Any], List[Dict[str, Any]]]:
        """startListening, the WAV in audioFrame chunks (each a complete WAV), stopListening;
        returns textCaptured and the hermes/error/asr messages of this session."""
        since = self.mark()
        self.publish("hermes/asr/startListening",
                     {"siteId": site_id, "sessionId": session_id, "stopOnSilence": False})
        for chunk in wav_chunks(wav):
            self.publish("hermes/audioServer/%s/audioFrame" % site_id, chunk)
        self.publish("hermes/asr/stopListening", {"siteId": site_id, "sessionId": session_id})
        _, captured = self.wait_for(
            lambda t, p: t == "hermes/asr/textCaptured" and p.get("sessionId") == session_id,
            timeout, "hermes/asr/textCaptured for session %s" % session_id, since)
        errors = [p for p in self.json_messages("hermes/error/asr", since) if p.get("sessionId") == session_id]
        return captured, errors

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def wav_chunks(path: Path, frames: int = 2048) -> List[bytes]:
    """The WAV's audio as complete little WAV files of ``frames`` frames (as Rhasspy's audio server)."""
    with wave.open(str(path), "rb") as source:
        params = (source.getnchannels(), source.getsampwidth(), source.getframerate())
        data = source.readframes(source.getnframes())
    step = frames * params[0] * params[1]
    chunks = []
    for start in range(0, len(data), step):
        buffer = io.BytesIO()
        with wave.open(buffer, "wb") as out:
            out.setnchannels(params[0])
            out.setsampwidth(params[1])
            out.setframerate(params[2])
            out.writeframes(data[start:start + step])
        chunks.append(buffer.getvalue())
    return chunks


def write_silence(path: Path, seconds: float, rate: int = 16000) -> Path:
    """A mono 16-bit WAV of silence (a recording with nothing said, or in a wrong format)."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\0\0" * int(seconds * rate))
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
