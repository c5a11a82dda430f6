"""The mqtt_broker role's MQTT accounts: root-only password files, Mosquitto's password file written
without mosquitto_passwd, and the role's ACL — checked against a real Mosquitto on a free loopback port
with a real MQTT client (the hash must be one Mosquitto accepts; the ACL must confine each account).
"""
from __future__ import annotations

import grp
import importlib.util
import os
import shutil
import socket
import stat
import subprocess
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List

import jinja2
import pytest
from mqtt_client import ACCEPTED, NOT_AUTHORIZED, Client

REPO = Path(__file__).resolve().parent.parent
MODULE_PATH = REPO / "plugins" / "modules" / "mqtt_accounts.py"
ACL_TEMPLATE = REPO / "roles" / "mqtt_broker" / "templates" / "mosquitto-acl.j2"

_spec = importlib.util.spec_from_file_location("mqtt_accounts_module", str(MODULE_PATH))
accounts = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(accounts)  # type: ignore[union-attr]

ROOT_GROUP = "root"  # the passwd file's group in these tests (the role uses mosquitto)
SERVICE_GROUP = "daemon"  # a group other than root (gid 1 on Debian)
ACCOUNTS = [{"name": "rhasspy-asr"}, {"name": "voice-verify"}, {"name": "rhasspy", "password": "core-secret"}]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _run(tmp: Path, **kwargs: Any) -> Dict[str, Any]:
    options: Dict[str, Any] = {"passwd_file": str(tmp / "passwd"), "passwd_group": ROOT_GROUP}
    options.update(kwargs)
    return accounts.run(str(tmp / "mqtt"), options.pop("accounts", ACCOUNTS), **options)


def _password(tmp: Path, name: str) -> str:
    return (tmp / "mqtt" / (name + ".password")).read_text(encoding="utf-8").splitlines()[0]


# --- the module's logic ---------------------------------------------------------------------------

def test_hash_is_mosquittos_format_and_verifies() -> None:
    salt = bytes(range(12))
    encoded = accounts.hash_password("geheim", salt)
    parts = encoded.split("$")
    assert parts[:3] == ["", "7", "101"] and len(parts) == 5
    assert accounts.verify_password("geheim", encoded) and not accounts.verify_password("Geheim", encoded)
    # a hash mosquitto_passwd 2.0 wrote for "secret" (salt and digest in base64)
    known = "$7$101$axJNzLD4iByvlqh9$yo3sDGnnTY26qBRVc2/2aVmQLVpM1DaQAEHpKTyQWlM8HyrMSU/MiX9mp6FMN1p3UA0daonuytnISOxd+Wcm5w=="
    assert accounts.verify_password("secret", known) and not accounts.verify_password("secreT", known)
    assert not accounts.verify_password("secret", "$6$rounds$x$y") and not accounts.verify_password("x", "garbage")


def test_passwords_are_generated_once_kept_and_private(tmp_path: Path) -> None:
    first = _run(tmp_path)
    assert first["changed"] and first["passwd_changed"] and sorted(first["changed_accounts"]) == sorted(
        a["name"] for a in ACCOUNTS)
    assert _mode(tmp_path / "mqtt") == 0o700
    for name in ("rhasspy-asr", "voice-verify", "rhasspy"):
        path = tmp_path / "mqtt" / (name + ".password")
        assert _mode(path) == 0o600 and path.stat().st_uid == os.geteuid()
    generated = _password(tmp_path, "rhasspy-asr")
    assert len(generated) >= 32 and generated != _password(tmp_path, "voice-verify")
    assert _password(tmp_path, "rhasspy") == "core-secret"
    assert _mode(tmp_path / "passwd") == 0o640
    text = (tmp_path / "passwd").read_text(encoding="utf-8")
    assert "core-secret" not in text and generated not in text
    entries = accounts.parse_passwd(text)
    assert accounts.verify_password(generated, entries["rhasspy-asr"])
    assert accounts.verify_password("core-secret", entries["rhasspy"])
    assert "password" not in repr(first).replace("passwd_changed", "")  # no password in the result

    again = _run(tmp_path)
    assert not again["changed"] and _password(tmp_path, "rhasspy-asr") == generated
    assert (tmp_path / "passwd").read_text(encoding="utf-8") == text  # not rehashed when it verifies


def test_regenerate_changed_and_removed_accounts(tmp_path: Path) -> None:
    _run(tmp_path)
    old = _password(tmp_path, "rhasspy-asr")
    result = _run(tmp_path, regenerate=True)
    assert sorted(result["changed_accounts"]) == ["rhasspy-asr", "voice-verify"] and result["passwd_changed"]
    assert _password(tmp_path, "rhasspy-asr") != old and _password(tmp_path, "rhasspy") == "core-secret"
    # a new password given for the core; the verification account dropped
    changed = _run(tmp_path, accounts=[{"name": "rhasspy-asr"}, {"name": "rhasspy", "password": "neu"}])
    assert changed["changed_accounts"] == ["rhasspy"] and changed["passwd_changed"]
    assert not (tmp_path / "mqtt" / "voice-verify.password").exists()
    assert sorted(accounts.parse_passwd((tmp_path / "passwd").read_text(encoding="utf-8"))) == ["rhasspy", "rhasspy-asr"]
    # loosened modes are put back
    os.chmod(str(tmp_path / "mqtt" / "rhasspy.password"), 0o644)
    os.chmod(str(tmp_path / "mqtt"), 0o755)
    assert _run(tmp_path, accounts=[{"name": "rhasspy-asr"}, {"name": "rhasspy", "password": "neu"}])["changed"]
    assert _mode(tmp_path / "mqtt" / "rhasspy.password") == 0o600 and _mode(tmp_path / "mqtt") == 0o700


def test_check_mode_writes_nothing(tmp_path: Path) -> None:
    result = _run(tmp_path, check=True)
    assert result["changed"] and not (tmp_path / "mqtt").exists() and not (tmp_path / "passwd").exists()
    _run(tmp_path)
    before = {p.name: p.read_bytes() for p in (tmp_path / "mqtt").iterdir()}
    assert _run(tmp_path, regenerate=True, check=True)["changed"]
    assert {p.name: p.read_bytes() for p in (tmp_path / "mqtt").iterdir()} == before


def test_a_group_readable_account_for_services_without_credentials(tmp_path: Path) -> None:
    _run(tmp_path, accounts=[{"name": "rhasspy-asr", "group": SERVICE_GROUP}, {"name": "voice-verify"}])
    assert _mode(tmp_path / "mqtt" / "rhasspy-asr.password") == 0o640
    assert (tmp_path / "mqtt" / "rhasspy-asr.password").stat().st_gid == grp.getgrnam(SERVICE_GROUP).gr_gid
    assert _mode(tmp_path / "mqtt" / "voice-verify.password") == 0o600
    assert _mode(tmp_path / "mqtt") == 0o711  # traversable, not listable


@pytest.mark.bad_input
@pytest.mark.parametrize("bad, message", [
    ([{"name": "a b"}], "MQTT account name 'a b'"),
    ([{"name": "x"}, {"name": "x"}], "MQTT account x is listed twice"),
    ([{"name": "x", "password": "two\nlines"}], "holds a line break"),
])
def test_bad_accounts_are_refused_and_nothing_is_written(tmp_path: Path, bad: List[Dict[str, Any]], message: str) -> None:
    with pytest.raises(accounts.AccountError, match=message):
        _run(tmp_path, accounts=bad)
    assert not (tmp_path / "mqtt").exists()


def test_a_missing_group_is_named(tmp_path: Path) -> None:
    with pytest.raises(accounts.AccountError, match="group 'no-such-group-here' does not exist"):
        _run(tmp_path, passwd_group="no-such-group-here")


# --- against a real Mosquitto with the role's ACL ---------------------------------------------------

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _acl(anonymous: bool) -> str:
    environment = jinja2.Environment(trim_blocks=True, undefined=jinja2.StrictUndefined)
    environment.filters["bool"] = bool  # Ansible's filter, for the template's plain true/false
    template = environment.from_string(ACL_TEMPLATE.read_text(encoding="utf-8"))
    return template.render(ansible_managed="test", voice_appliance_mqtt_allow_anonymous=anonymous,
                           voice_appliance_mqtt_core_user="rhasspy", voice_appliance_mqtt_service_username="rhasspy-asr",
                           voice_appliance_mqtt_verify_username="voice-verify")


@pytest.fixture
def broker(tmp_path: Path, request: Any) -> Iterator[int]:
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not os.path.exists(binary):
        pytest.fail("mosquitto is not installed: apt-get install mosquitto (harness/setup.sh installs it)")
    anonymous = getattr(request, "param", False)
    _run(tmp_path)
    (tmp_path / "acl").write_text(_acl(anonymous), encoding="utf-8")
    port = _free_port()
    config = tmp_path / "mosquitto.conf"
    config.write_text("listener {} 127.0.0.1\nallow_anonymous {}\npassword_file {}\nacl_file {}\npersistence false\n"
                      "user root\n"  # no privilege drop: the files are in a root-only temporary directory
                      .format(port, "true" if anonymous else "false", tmp_path / "passwd", tmp_path / "acl"),
                      encoding="utf-8")
    log = (tmp_path / "mosquitto.log").open("wb")
    proc = subprocess.Popen([binary, "-c", str(config)], stdout=log, stderr=log)
    try:
        deadline = time.time() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    pytest.fail("mosquitto did not start: " + (tmp_path / "mosquitto.log").read_text())
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def test_mosquitto_accepts_the_hashes_and_refuses_anonymous(broker: int, tmp_path: Path) -> None:
    for name in ("rhasspy-asr", "voice-verify", "rhasspy"):
        client = Client(broker, name, _password(tmp_path, name))
        assert client.rc == ACCEPTED, name
        client.close()
    wrong = Client(broker, "rhasspy-asr", "wrong")
    anonymous = Client(broker)
    try:
        assert (wrong.rc, anonymous.rc) == (NOT_AUTHORIZED, NOT_AUTHORIZED)
    finally:
        wrong.close()
        anonymous.close()


def test_the_acl_confines_the_service_and_the_verification(broker: int, tmp_path: Path) -> None:
    core = Client(broker, "rhasspy", _password(tmp_path, "rhasspy"))
    asr = Client(broker, "rhasspy-asr", _password(tmp_path, "rhasspy-asr"))
    verify = Client(broker, "voice-verify", _password(tmp_path, "voice-verify"))
    try:
        core.subscribe("hermes/#")
        core.subscribe("rhasspy/#")
        asr.subscribe("rhasspy/asr/+/train")
        # what the ASR service publishes arrives; anything else it publishes is dropped
        for topic in ("hermes/tts/say", "hermes/intent/SwitchOn", "hermes/asr/startListening", "rhasspy/asr/kitchen/train",
                      "hermes/audioServer/kitchen/playBytes/1", "hermes/error/asr"):
            asr.publish(topic)
        # the verification may start a session, not train
        verify.publish("rhasspy/asr/kitchen/train", b'{"graph_path": "/tmp/evil"}')
        verify.publish("hermes/asr/startListening")
        time.sleep(1.0)
        seen = [topic for topic, _ in core.messages]
        assert seen.count("hermes/error/asr") == 1 and seen.count("hermes/asr/startListening") == 1, seen
        assert not any(t in seen for t in ("hermes/tts/say", "hermes/intent/SwitchOn", "rhasspy/asr/kitchen/train",
                                           "hermes/audioServer/kitchen/playBytes/1")), seen
        assert asr.messages == []  # the verification's training request never reached the service
        # the ASR account does not even read other topics (Mosquitto acknowledges, delivers nothing)
        asr.subscribe("hermes/intent/#")
        asr.subscribe("hermes/asr/startListening")
        core.publish("hermes/intent/SwitchOn")
        core.publish("hermes/asr/startListening")
        time.sleep(1.0)
        assert [topic for topic, _ in asr.messages] == ["hermes/asr/startListening"], asr.messages
    finally:
        for client in (core, asr, verify):
            client.close()


@pytest.mark.parametrize("broker", [True], indirect=True)
def test_the_anonymous_opt_out_lets_a_client_in_but_keeps_the_service_confined(broker: int, tmp_path: Path) -> None:
    anonymous = Client(broker)
    asr = Client(broker, "rhasspy-asr", _password(tmp_path, "rhasspy-asr"))
    try:
        assert anonymous.rc == ACCEPTED
        anonymous.subscribe("hermes/#")
        asr.publish("hermes/tts/say")
        asr.publish("hermes/asr/textCaptured")
        time.sleep(1.0)
        assert [t for t, _ in anonymous.messages] == ["hermes/asr/textCaptured"]
    finally:
        anonymous.close()
        asr.close()
