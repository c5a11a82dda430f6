"""Rhasspy's speech-to-text on the converged Pi: the Hermes ASR service over MQTT, training, the profile.

The MQTT client runs inside the Pi with the ASR virtualenv's paho-mqtt (containers share the host's
network, so the broker's port is whatever the role configured: read from its local fact).
"""
from __future__ import annotations

import base64
import json
import os
import secrets
import time
from pathlib import Path
from typing import Any, Dict, List

import pytest
from test_retrain import ONE_FAULT_RUN, SENTENCES, _invocation, _wait_for_run, _write_sentences, restore_sentences  # noqa: F401 (fixture)

SCENARIO = os.environ.get("MOLECULE_SCENARIO_NAME", "default")
REPO = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", Path(__file__).resolve().parents[3]))
FIXTURE = Path(os.environ.get("PI_VOICE_FIXTURE_DIR", REPO / "files" / "fixture"))

VENV = "/opt/voice-appliance/venv"
SERVICE = "rhasspy-asr-deepspeech-hermes.service"
SCORER = "/var/lib/voice-appliance/generated.scorer"
PROFILE = "/home/pi/.config/rhasspy/profiles/de/profile.json"
WORK = "/srv/rhasspy-asr-test"  # readable by the service (its /tmp is private)
# Decoding and training under qemu (ARM) take many times longer than on amd64.
TIMEOUT = {"default": 120}.get(SCENARIO, 900)

# Runs on the Pi: connect, (optionally) wait for the service's subscriptions, publish, collect.
CLIENT = r'''
import io, json, sys, threading, time, wave
import paho.mqtt.client as mqtt

args = json.loads(sys.argv[1])
got, lock, done = [], threading.Lock(), threading.Event()

def on_connect(client, userdata, flags, rc):
    client.subscribe([("hermes/asr/textCaptured", 0), ("hermes/error/asr", 0), ("rhasspy/asr/#", 0)])

def on_message(client, userdata, msg):
    try:
        payload = json.loads(msg.payload.decode("utf-8"))
    except ValueError:
        return
    with lock:
        got.append({"topic": msg.topic, "payload": payload})
    if msg.topic in args["until_topics"] and payload.get(args["until_key"]) == args["until_value"]:
        done.set()

client = mqtt.Client()
if args.get("username"):
    client.username_pw_set(args["username"], args.get("password"))
client.on_connect, client.on_message = on_connect, on_message
client.connect(args["host"], args["port"])
client.loop_start()
time.sleep(1)
for topic, payload in args["publish"]:
    if isinstance(payload, dict) and "wav" in payload:
        with wave.open(payload["wav"], "rb") as source:
            params = (source.getnchannels(), source.getsampwidth(), source.getframerate())
            data = source.readframes(source.getnframes())
        step = 2048 * params[0] * params[1]
        for start in range(0, len(data), step):
            buffer = io.BytesIO()
            with wave.open(buffer, "wb") as out:
                out.setnchannels(params[0]); out.setsampwidth(params[1]); out.setframerate(params[2])
                out.writeframes(data[start:start + step])
            client.publish(topic, buffer.getvalue()).wait_for_publish()
    else:
        client.publish(topic, json.dumps(payload)).wait_for_publish()
done.wait(args["timeout"])
client.loop_stop()
client.disconnect()
print(json.dumps(got))
'''

GRAPH = r'''
import sys
import rhasspynlu
from rhasspynlu import ini_jsgf
intents = rhasspynlu.parse_ini(sys.argv[1])
sentences, replacements = ini_jsgf.split_rules(intents)
with open(sys.argv[2], "wb") as out:
    rhasspynlu.graph_to_gzip_pickle(rhasspynlu.intents_to_graph(sentences, replacements), out)
'''


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def _fact(host: Any) -> Dict[str, Any]:
    return json.loads(host.file("/etc/ansible/facts.d/rhasspy_asr.fact").content_string)


def _mqtt(host: Any, publish: List[Any], until_topics: List[str], key: str, value: str) -> List[Dict[str, Any]]:
    """Publish on the Pi's broker and return every message seen until one of until_topics has key == value."""
    fact = _fact(host)
    args = {"host": fact["mqtt_host"], "port": fact["mqtt_port"], "publish": publish, "until_topics": until_topics,
            "until_key": key, "until_value": value, "timeout": TIMEOUT}
    if fact.get("authenticated"):  # the credentials Rhasspy uses, from its profile
        mqtt = json.loads(host.file(PROFILE).content_string)["mqtt"]
        args.update(username=mqtt["username"], password=mqtt["password"])
    result = host.run("{}/bin/python -c {} {}".format(VENV, _quote(CLIENT), _quote(json.dumps(args))))
    assert result.rc == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def work(host: Any) -> str:
    host.run_test("mkdir -p {0} && chmod 0755 {0}".format(WORK))
    wav = base64.b64encode((FIXTURE / "das_ist_ein_test.wav").read_bytes()).decode("ascii")
    host.run_test("echo {} | base64 -d > {}/das_ist_ein_test.wav".format(wav, WORK))
    return WORK


def _transcribe(host: Any, wav: str) -> List[Dict[str, Any]]:
    fact = _fact(host)
    session = "test-" + secrets.token_hex(4)
    site = fact["site_id"]
    messages = _mqtt(host, [
        ["hermes/asr/startListening", {"siteId": site, "sessionId": session, "stopOnSilence": False}],
        ["hermes/audioServer/{}/audioFrame".format(site), {"wav": wav}],
        ["hermes/asr/stopListening", {"siteId": site, "sessionId": session}],
    ], ["hermes/asr/textCaptured"], "sessionId", session)
    return [m for m in messages if m["payload"].get("sessionId") == session]


def test_service_runs_as_the_service_account(host: Any) -> None:
    service = host.service(SERVICE)
    assert service.is_running and service.is_enabled
    assert host.check_output("systemctl show -p User --value " + SERVICE) == "voice"
    if _fact(host)["mqtt_broker"] == "local":
        assert host.service("mosquitto").is_running
        conf = host.file("/etc/mosquitto/conf.d/voice-appliance.conf").content_string
        assert "listener {} 127.0.0.1".format(_fact(host)["mqtt_port"]) in conf


def test_recorded_wav_over_mqtt_is_transcribed(host: Any, work: str) -> None:
    expected = (FIXTURE / "das_ist_ein_test.txt").read_text(encoding="utf-8").strip()
    messages = _transcribe(host, work + "/das_ist_ein_test.wav")
    captured = [m["payload"] for m in messages if m["topic"] == "hermes/asr/textCaptured"]
    errors = [m["payload"] for m in messages if m["topic"] == "hermes/error/asr"]
    assert captured, "no hermes/asr/textCaptured within {} s: {}\n{}".format(
        TIMEOUT, messages, host.run("journalctl -u {} -n 30 --no-pager -o cat".format(SERVICE)).stdout)
    assert captured[0]["text"] == expected and not errors, (captured, errors)
    assert captured[0]["siteId"] == _fact(host)["site_id"]


def test_training_message_rebuilds_the_scorer(host: Any, work: str) -> None:
    # A word never trained before, so the generated scorer must change (voice-retrain skips identical ones).
    word = "wort" + "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(6))
    ini = "[Test]\ndas ist ein test\n\n[Neu]\nsage {}\n".format(word)
    graph = os.path.dirname(PROFILE) + "/intent_graph.pickle.gz"  # only a graph inside the profile is read
    host.run_test("{}/bin/python -c {} {} {} && chmod 0644 {}".format(VENV, _quote(GRAPH), _quote(ini), graph, graph))
    before = host.check_output("sha256sum " + SCORER).split()[0]
    base_scorer = host.check_output("ls /opt/voice-appliance/models/current/")
    train_id = "train-" + secrets.token_hex(4)
    site = _fact(host)["site_id"]
    messages = _mqtt(host, [["rhasspy/asr/{}/train".format(site),
                             {"id": train_id, "graph_path": graph, "graph_format": "pickle-gzip"}]],
                     ["rhasspy/asr/{}/trainSuccess".format(site), "hermes/error/asr"], "id", train_id)
    errors = [m["payload"] for m in messages if m["topic"] == "hermes/error/asr"]
    assert any(m["topic"] == "rhasspy/asr/{}/trainSuccess".format(site) and m["payload"].get("id") == train_id
               for m in messages), (messages, errors)
    after = host.check_output("sha256sum " + SCORER).split()[0]
    assert after != before, "training succeeded but the generated scorer is unchanged"
    words = host.check_output("{}/bin/python -c {} {}".format(
        VENV, _quote("import sys, json\nfrom voice_appliance import scorer\n"
                     "print(json.dumps(sorted(scorer.words_of(scorer.read_scorer(sys.argv[1]), scorer.read_alphabet(sys.argv[2])))))"),
        SCORER + " /opt/voice-appliance/models/current/alphabet.txt"))
    assert word in json.loads(words)
    # One vocabulary: Rhasspy's sentences are kept and built together with /etc/voice-appliance/sentences.ini.
    assert word in host.file("/var/lib/voice-appliance/rhasspy-sentences.ini").content_string
    own = set(" ".join(line for line in host.file("/etc/voice-appliance/sentences.ini").content_string.splitlines()
                       if line and line[0] not in "#[" and "=" not in line and not set("()[]<>{}|$:0123456789") & set(line)).lower().split())
    assert own and own <= set(json.loads(words)), (own, "the words of sentences.ini stay in the scorer")
    assert host.check_output("ls /opt/voice-appliance/models/current/") == base_scorer  # the model directory untouched
    # The service keeps serving: the next voice command is decoded with the new scorer.
    captured = [m["payload"] for m in _transcribe(host, work + "/das_ist_ein_test.wav")
                if m["topic"] == "hermes/asr/textCaptured"]
    assert captured and captured[0]["text"] == "das ist ein test", captured


def _journal_cursor(host: Any) -> str:
    out = host.check_output("journalctl -n 0 --show-cursor --no-pager")
    return out.rsplit("-- cursor: ", 1)[1].strip()


def _wait_for_reload(host: Any, cursor: str) -> str:
    """Wait until the ASR service was reloaded after `cursor`; its journal (and the reload service's) since then."""
    deadline = time.time() + TIMEOUT
    while True:
        log = host.check_output("journalctl --after-cursor={} -u {} -u rhasspy-asr-reload.service --no-pager -o cat".format(
            _quote(cursor), SERVICE))
        if "Reloaded " in log or time.time() > deadline:
            return log
        time.sleep(1)


def _heard(host: Any, wav: str) -> str:
    captured = [m["payload"]["text"] for m in _transcribe(host, wav) if m["topic"] == "hermes/asr/textCaptured"]
    assert captured, "no hermes/asr/textCaptured within {} s:\n{}".format(
        TIMEOUT, host.run("journalctl -u {} -n 30 --no-pager -o cat".format(SERVICE)).stdout)
    return captured[0]


def test_an_edit_of_the_sentences_reaches_the_running_service(host: Any, work: str, restore_sentences: None) -> None:
    """sentences.ini -> voice-retrain -> new scorer -> rhasspy-asr-reload.path reloads the service -> the next
    voice command over MQTT is decoded with the new vocabulary (no manual restart)."""
    wav = "14_schalte_das_radio_ein.wav"
    rows = (FIXTURE / "heldout" / "transcripts.tsv").read_text(encoding="utf-8").splitlines()
    expected = dict(row.split("\t")[:2] for row in rows[1:])[wav]
    host.run_test("echo {} | base64 -d > {}/{}".format(
        base64.b64encode((FIXTURE / "heldout" / wav).read_bytes()).decode("ascii"), work, wav))
    spell = "{}/bin/voice-scorer-package inspect {} --alphabet /opt/voice-appliance/models/current/alphabet.txt --spell radio".format(
        VENV, SCORER)
    assert host.run(spell).rc == 1, "'radio' must not be in the scorer's vocabulary yet"
    heard_before = _heard(host, work + "/" + wav)
    assert heard_before != expected, "decoded without 'radio' in the vocabulary"
    main_pid = host.check_output("systemctl show -p MainPID --value " + SERVICE)
    before, cursor = _invocation(host), _journal_cursor(host)
    _write_sentences(host, host.file(SENTENCES).content_string + "\n[Radio]\nschalte das radio (ein | aus)\n")
    props = _wait_for_run(host, before)
    assert props["Result"] == "success", props
    log = _wait_for_reload(host, cursor)
    assert "Reloaded " in log and "reloading " + SERVICE in log, "no reload of the service after the new scorer:\n" + log
    assert host.check_output("systemctl show -p MainPID --value " + SERVICE) == main_pid, "reloaded, not restarted"
    heard = _heard(host, work + "/" + wav)
    assert heard == expected, (heard_before, heard, log)


EVIL = r'''
import gzip, os, pickle, sys
class Evil(object):
    def __reduce__(self):
        return (os.system, ("touch " + sys.argv[2],))
with gzip.open(sys.argv[1], "wb") as out:
    pickle.dump(Evil(), out)
'''


@ONE_FAULT_RUN  # the refusal is the service's Python, the same on every architecture
def test_a_training_request_naming_a_crafted_pickle_is_refused(host: Any, work: str) -> None:
    """A graph outside the profile, and a pickle that would run code inside it: refused, nothing runs."""
    site = _fact(host)["site_id"]
    marker = "/var/lib/voice-appliance/PWNED"  # writable by the service: the attack would succeed if it ran
    outside = work + "/evil.pickle.gz"
    inside = os.path.dirname(PROFILE) + "/evil.pickle.gz"
    for path in (outside, inside):
        host.run_test("{}/bin/python -c {} {} {} && chmod 0644 {}".format(VENV, _quote(EVIL), path, marker, path))
    try:
        for path, message in ((outside, "is outside the Rhasspy profile directory"),
                              (inside, "refers to posix.system")):
            train_id = "attack-" + secrets.token_hex(4)
            messages = _mqtt(host, [["rhasspy/asr/{}/train".format(site),
                                     {"id": train_id, "graph_path": path, "graph_format": "pickle-gzip"}]],
                             ["rhasspy/asr/{}/trainSuccess".format(site), "hermes/error/asr"], "sessionId", train_id)
            errors = [m["payload"]["error"] for m in messages
                      if m["topic"] == "hermes/error/asr" and m["payload"].get("sessionId") == train_id]
            assert errors and "training request refused" in errors[0] and message in errors[0], messages
            assert not host.file(marker).exists, "the crafted pickle ran"
        journal = host.check_output("journalctl -u {} -n 200 --no-pager -o cat".format(SERVICE))
        assert "training request refused: graph_path {}".format(outside) in journal
    finally:
        host.run("rm -f {} {} {}".format(outside, inside, marker))


def _secrets(host: Any) -> Dict[str, str]:
    """Each MQTT account's password (read as root on the Pi)."""
    out = host.check_output("for f in /etc/voice-appliance/mqtt/*.password; do echo \"$(basename $f .password) $(head -n1 $f)\"; done")
    return dict(line.split(" ", 1) for line in out.splitlines() if " " in line)


def _local(host: Any) -> bool:
    return _fact(host)["mqtt_broker"] == "local"


def test_mqtt_passwords_are_kept_private(host: Any) -> None:
    if not _local(host):
        pytest.skip("an external broker: the user's credentials (none in this scenario)")
    credentials = "LoadCredential=" in host.file("/etc/systemd/system/" + SERVICE).content_string
    secret_dir = host.file("/etc/voice-appliance/mqtt")
    assert secret_dir.user == "root" and secret_dir.mode == (0o700 if credentials else 0o711)
    accounts = _secrets(host)
    assert sorted(accounts) == ["rhasspy", "rhasspy-asr", "voice-verify"]
    assert all(len(password) >= 32 for password in accounts.values())
    for name in accounts:
        f = host.file("/etc/voice-appliance/mqtt/{}.password".format(name))
        readable_by_service = name == "rhasspy-asr" and not credentials
        assert f.user == "root" and (f.group, f.mode) == (("voice", 0o640) if readable_by_service else ("root", 0o600)), name
    passwd = host.file("/etc/mosquitto/voice-appliance.passwd")
    assert (passwd.user, passwd.group, passwd.mode) == ("root", "mosquitto", 0o640)
    assert not any(password in passwd.content_string for password in accounts.values())
    assert "$7$" in passwd.content_string
    profile = host.file(PROFILE)
    assert profile.mode & 0o077 == 0, oct(profile.mode)
    backups = host.run("ls {}.bak-* 2>/dev/null".format(PROFILE)).stdout.split()
    assert len(backups) <= 3 and all(host.file(b).mode & 0o077 == 0 for b in backups), backups
    # No file any other user may read holds a password (the service's own file: root and group voice only).
    found = host.run("find /etc /home /var/lib/voice-appliance /opt/voice-appliance /run /tmp -xdev -type f -perm -o=r "
                     "-size -2M -print0 2>/dev/null | xargs -0 -r grep -l -F -e {} 2>/dev/null".format(
                         " -e ".join(_quote(p) for p in accounts.values()))).stdout.split()
    assert not found, found


def test_no_password_on_any_command_line(host: Any) -> None:
    accounts = _secrets(host) if _local(host) else {}
    if not accounts:
        pytest.skip("no MQTT password on this Pi")
    assert "--password " not in host.check_output("systemctl show -p ExecStart --value " + SERVICE)
    cmdlines = host.check_output("cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '; ps -eo args")
    assert "rhasspy-asr-deepspeech-hermes" in cmdlines
    assert not [name for name, password in accounts.items() if password in cmdlines]


ACL_CLIENT = r'''
import json, sys, threading, time
import paho.mqtt.client as mqtt

args = json.loads(sys.argv[1])

def client(user=None, password=None):
    c = mqtt.Client()
    result = {}
    done = threading.Event()
    def on_connect(c, userdata, flags, rc):
        result["rc"] = rc
        done.set()
    c.on_connect = on_connect
    if user:
        c.username_pw_set(user, password)
    c.connect(args["host"], args["port"])
    c.loop_start()
    done.wait(10)
    return c, result.get("rc")

out = {}
anonymous, out["anonymous_rc"] = client()
anonymous.loop_stop()
seen = []
core, out["core_rc"] = client("rhasspy", args["core"])
core.on_message = lambda c, u, m: seen.append(m.topic)
core.subscribe([("hermes/#", 0), ("rhasspy/#", 0)])
time.sleep(1)
asr, out["asr_rc"] = client("rhasspy-asr", args["asr"])
for topic in args["topics"]:
    asr.publish(topic, "{}").wait_for_publish()
time.sleep(2)
out["seen"] = seen
print(json.dumps(out))
'''


def test_the_broker_refuses_anonymous_clients_and_confines_the_asr_account(host: Any) -> None:
    if not _local(host):
        pytest.skip("an external broker")
    fact, accounts = _fact(host), _secrets(host)
    topics = ["hermes/tts/say", "hermes/intent/SwitchOn", "rhasspy/asr/{}/train".format(fact["site_id"]),
              "hermes/asr/startListening", "hermes/error/asr"]
    args = {"host": fact["mqtt_host"], "port": fact["mqtt_port"], "core": accounts["rhasspy"],
            "asr": accounts["rhasspy-asr"], "topics": topics}
    result = json.loads(host.check_output("{}/bin/python -c {} {}".format(VENV, _quote(ACL_CLIENT), _quote(json.dumps(args))))
                        .splitlines()[-1])
    assert result["core_rc"] == 0 and result["asr_rc"] == 0, result
    assert result["anonymous_rc"] == 5, "an anonymous client was let in: {}".format(result)  # not authorised
    assert result["seen"] == ["hermes/error/asr"], "the ASR account published outside its topics: {}".format(result)


def test_profile_points_rhasspy_at_the_service(host: Any) -> None:
    profile = json.loads(host.file(PROFILE).content_string)
    fact = _fact(host)
    assert profile["speech_to_text"]["system"] == "hermes"
    assert profile["speech_to_text"]["deepspeech"]["scorer"] == SCORER
    mqtt = {key: value for key, value in profile["mqtt"].items() if key not in ("username", "password")}
    assert mqtt == {"enabled": True, "host": fact["mqtt_host"], "port": fact["mqtt_port"], "site_id": fact["site_id"]}
    assert ("username" in profile["mqtt"]) == fact["authenticated"]
    assert host.file(os.path.dirname(PROFILE) + "/sentences.ini").exists
