"""Speak a recorded WAV to Rhasspy's Hermes ASR over MQTT and report what it heard.

The health check's second path (the first is the deepspeech command line): the same recording a
user's satellite would stream, sent as hermes/audioServer/<siteId>/audioFrame WAV chunks between
hermes/asr/startListening and hermes/asr/stopListening; the answer is hermes/asr/textCaptured (or
hermes/error/asr) for this session. Prints one JSON object:
{"path": "mqtt", "transcript", "seconds" (the service's transcription time), "latency_s" (stopListening
to textCaptured), "audio_s", "rtf", "session_id"}.

Needs paho-mqtt (in the ASR virtualenv as a dependency of rhasspy-hermes); 1.x and 2.x both work.
The password is read from a file (--password-file, e.g. the root-only account file the rhasspy_asr
role keeps) or from the environment variable named by --password-env, never from argv.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import sys
import threading
import time
import uuid
import wave
from typing import Any, Dict, List, Optional, Sequence, Tuple

EXIT_ERROR, EXIT_TIMEOUT, EXIT_CONNECT, EXIT_USAGE = 2, 3, 4, 64


class CheckError(Exception):
    """A failed check: the message says what happened and what to look at; code is the exit status."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def wav_chunks(path: str, frames: int) -> Tuple[List[bytes], float]:
    """Split a 16 kHz mono 16-bit WAV into WAV-framed chunks of `frames` samples; also its duration."""
    try:
        with wave.open(path, "rb") as source:
            params = (source.getnchannels(), source.getsampwidth(), source.getframerate())
            data = source.readframes(source.getnframes())
    except (OSError, EOFError, wave.Error) as error:
        raise CheckError("cannot read the recording {}: {}".format(path, error), EXIT_USAGE)
    if params != (1, 2, 16000):
        raise CheckError("{} is {} channel(s), {}-bit, {} Hz; DeepSpeech needs 16 kHz mono 16-bit: "
                         "sox {} -r 16000 -c 1 -b 16 fixed.wav".format(path, params[0], 8 * params[1], params[2], path),
                         EXIT_USAGE)
    step = frames * 2
    chunks = []
    for start in range(0, len(data), step):
        buffer = io.BytesIO()
        with wave.open(buffer, "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(16000)
            out.writeframes(data[start:start + step])
        chunks.append(buffer.getvalue())
    return chunks, len(data) / 2 / 16000.0


def _client(mqtt: Any) -> Any:
    if hasattr(mqtt, "CallbackAPIVersion"):  # paho-mqtt 2.x
        return mqtt.Client(mqtt.CallbackAPIVersion.VERSION1)
    return mqtt.Client()


def check(host: str, port: int, site_id: str, wav: str, timeout: float, frames: int = 2048,
          username: Optional[str] = None, password: Optional[str] = None) -> Dict[str, Any]:
    """Stream `wav` to the Hermes ASR of `site_id` on host:port; the textCaptured result as a dict."""
    import paho.mqtt.client as mqtt  # only this path needs it

    chunks, audio_s = wav_chunks(wav, frames)
    session = "voice-verify-" + uuid.uuid4().hex[:12]
    answer: Dict[str, Any] = {}
    subscribed, done = threading.Event(), threading.Event()

    def on_connect(client: Any, userdata: Any, flags: Any, rc: int) -> None:
        if rc != 0:
            answer["connect_rc"] = rc
            done.set()
            return
        client.subscribe([("hermes/asr/textCaptured", 0), ("hermes/error/asr", 0)])

    def on_subscribe(client: Any, userdata: Any, mid: int, granted: Any) -> None:
        subscribed.set()

    def on_message(client: Any, userdata: Any, message: Any) -> None:
        try:
            payload = json.loads(message.payload.decode("utf-8"))
        except ValueError:
            return
        if payload.get("sessionId") == session and "topic" not in answer:
            answer.update(topic=message.topic, payload=payload, at=time.monotonic())
            done.set()

    client = _client(mqtt)
    if username:
        client.username_pw_set(username, password)
    client.on_connect, client.on_subscribe, client.on_message = on_connect, on_subscribe, on_message
    try:
        client.connect(host, port, keepalive=max(30, int(timeout)))
    except (OSError, ValueError) as error:
        raise CheckError("cannot connect to the MQTT broker {}:{}: {} (is Mosquitto running and listening there? "
                         "voice_appliance_mqtt_host/port)".format(host, port, error), EXIT_CONNECT)
    client.loop_start()
    try:
        if not subscribed.wait(min(timeout, 30)) or "connect_rc" in answer:
            raise CheckError("the MQTT broker {}:{} did not accept the connection (result {}): check the "
                             "username/password (voice_appliance_mqtt_username)".format(
                                 host, port, answer.get("connect_rc", "none")), EXIT_CONNECT)
        started = time.monotonic()
        client.publish("hermes/asr/startListening", json.dumps(
            {"siteId": site_id, "sessionId": session, "stopOnSilence": False, "sendAudioCaptured": False})).wait_for_publish()
        for chunk in chunks:
            client.publish("hermes/audioServer/{}/audioFrame".format(site_id), chunk).wait_for_publish()
        stopped = time.monotonic()
        client.publish("hermes/asr/stopListening",
                       json.dumps({"siteId": site_id, "sessionId": session})).wait_for_publish()
        if not done.wait(timeout):
            raise CheckError("no hermes/asr/textCaptured for session {} from site '{}' within {:.0f} s on {}:{}: is "
                             "rhasspy-asr-deepspeech-hermes running with --site-id {} on this broker? "
                             "(journalctl -u rhasspy-asr-deepspeech-hermes)".format(
                                 session, site_id, timeout, host, port, site_id), EXIT_TIMEOUT)
    finally:
        client.loop_stop()
        client.disconnect()
    payload = answer["payload"]
    if answer["topic"] == "hermes/error/asr":
        raise CheckError("the ASR service reported an error for {}: {} (context: {})".format(
            wav, payload.get("error"), payload.get("context")), EXIT_ERROR)
    seconds = float(payload.get("seconds") or 0.0)
    latency = answer["at"] - stopped
    return {"path": "mqtt", "transcript": payload.get("text", ""), "likelihood": payload.get("likelihood"),
            "seconds": round(seconds, 3), "latency_s": round(latency, 3), "stream_s": round(stopped - started, 3),
            "audio_s": round(audio_s, 3), "rtf": round((seconds if seconds > 0 else latency) / audio_s, 3),
            "session_id": session, "site_id": site_id}


def read_password_file(path: str) -> str:
    """The first line of a password file (CheckError naming the file otherwise)."""
    try:
        with open(path, "r", encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise CheckError("cannot read the MQTT password file {}: {} (run as root, or check "
                         "voice_appliance_mqtt_secret_dir)".format(path, error), EXIT_USAGE)
    if not lines or not lines[0]:
        raise CheckError("the MQTT password file {} is empty: its first line must be the password".format(path),
                         EXIT_USAGE)
    return lines[0]


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="voice-hermes-check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--wav", required=True, help="the recording (16 kHz mono 16-bit)")
    parser.add_argument("--site-id", required=True, help="the ASR service's site id")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1883)
    parser.add_argument("--username", default="")
    parser.add_argument("--password-env", default="VOICE_HERMES_PASSWORD",
                        help="environment variable holding the MQTT password (default %(default)s)")
    parser.add_argument("--password-file", default="",
                        help="file whose first line is the MQTT password (instead of --password-env)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the transcript")
    parser.add_argument("--frames", type=int, default=2048, help="samples per audioFrame message")
    args = parser.parse_args(argv)
    try:
        password = os.environ.get(args.password_env) if args.username else None
        if args.password_file:
            password = read_password_file(args.password_file)
        result = check(args.host, args.port, args.site_id, args.wav, args.timeout, args.frames,
                       args.username or None, password)
    except CheckError as error:
        print("voice-hermes-check: " + str(error), file=sys.stderr)
        return error.code
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
