"""The role mqtt_broker refuses bad MQTT settings before it changes anything (each case feeds one).

The role runs on this machine (local connection); a refusal must stop it at its checks, before Mosquitto is
installed or a password file is written, and name the bad value and the fix.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List

import pytest
from ansible_collections.pivoice.voice_appliance.plugins.filter.mqtt_settings import mqtt_settings_errors
from test_shared_values import _play


@pytest.mark.bad_input
@pytest.mark.parametrize("settings,message", [
    ({"voice_appliance_mqtt_broker": "external", "voice_appliance_mqtt_username": "fleet"},
     "With an external broker set both voice_appliance_mqtt_username and voice_appliance_mqtt_password, or neither"),
    ({"voice_appliance_mqtt_username": "rhasspy asr"},
     "MQTT user name 'rhasspy asr': use only letters, digits, '.', '_' and '-'"),
    ({"voice_appliance_mqtt_username": "voice-verify"},
     "give the Rhasspy core (voice_appliance_mqtt_username), the ASR service (voice_appliance_mqtt_service_username) "
     "and the verification (voice_appliance_mqtt_verify_username) different names"),
    ({"voice_appliance_mqtt_password": "secret\nsecond line"},
     "voice_appliance_mqtt_password holds a line break or NUL character"),
    ({"voice_appliance_mqtt_allow_anonymous": True, "mqtt_broker_bind_address": "0.0.0.0"},
     "voice_appliance_mqtt_allow_anonymous is true and Mosquitto would listen on 0.0.0.0"),
])
def test_bad_mqtt_settings_are_refused_before_anything_changes(tmp_path: Path, settings: Dict[str, Any], message: str) -> None:
    secrets = tmp_path / "mqtt"
    run = _play(tmp_path, dict(settings, voice_appliance_mqtt_secret_dir=str(secrets)),
                {"name": "The broker's role alone.", "hosts": "localhost", "gather_facts": False, "roles": ["mqtt_broker"]},
                ANSIBLE_NOCOLOR="1")
    assert run.returncode != 0, run.stdout[-3000:]
    assert message in " ".join(run.stdout.split()), run.stdout[-3000:]
    assert "secret\nsecond line" not in run.stdout and "second line" not in run.stdout, "the password must not be shown"
    assert "TASK [mqtt_broker : Install Mosquitto" not in run.stdout, run.stdout[-3000:]
    assert not secrets.exists()


GOOD = {"local": True, "username": "", "password": "", "service_username": "voice-asr", "verify_username": "voice-verify",
        "core_user": "rhasspy", "allow_anonymous": False, "bind_address": "127.0.0.1"}


@pytest.mark.bad_input
@pytest.mark.parametrize("change,starts", [
    ({}, []),
    ({"local": False, "username": "fleet", "password": "pw"}, []),
    ({"allow_anonymous": True, "bind_address": "::1"}, []),
    ({"allow_anonymous": True, "bind_address": "192.0.2.1"}, ["voice_appliance_mqtt_allow_anonymous is true"]),
    ({"allow_anonymous": True, "bind_address": "192.0.2.1", "local": False}, []),  # no local broker listens
    ({"service_username": "a b", "verify_username": "a b"}, ["MQTT user name 'a b'", "MQTT user name 'a b'", "The MQTT accounts"]),
    ({"local": False, "password": "xyzzy\nplugh"}, ["With an external broker", "voice_appliance_mqtt_password holds"]),
])
def test_every_problem_of_the_settings_is_named_once(change: Dict[str, Any], starts: List[str]) -> None:
    errors = mqtt_settings_errors(dict(GOOD, **change))
    assert len(errors) == len(starts) and all(e.startswith(s) for e, s in zip(errors, starts)), errors
    assert not any("xyzzy" in e or "plugh" in e for e in errors), "the password is never shown"
