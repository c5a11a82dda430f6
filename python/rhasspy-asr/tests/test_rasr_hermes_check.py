"""voice-hermes-check (the health check's MQTT path) against the real patched Hermes ASR service,
a real Mosquitto and the fixture model: what it hears, and how each failure is reported."""

from __future__ import annotations

import json
import subprocess
import wave
from pathlib import Path
from typing import Any, Dict, List

import rasr_support as support

SITE = "kitchen"
SERVICE_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin"}


def run_check(venv: support.Venv, *args: str, timeout: float = 120) -> "subprocess.CompletedProcess[str]":
    return subprocess.run([venv.script("voice-hermes-check")] + list(args), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, timeout=timeout, check=False)


def start_service(venv: support.Venv, broker: support.Broker, model: Path) -> support.Service:
    svc = support.Service(venv, broker, ["--model", str(model), "--site-id", SITE], env=SERVICE_ENV)
    svc.READY = tuple(topic.replace("/+/", "/%s/" % SITE) for topic in support.Service.READY)
    return svc.start()


def check_args(broker: support.Broker, wav: Path, *extra: str) -> List[str]:
    return ["--port", str(broker.port), "--site-id", SITE, "--wav", str(wav)] + list(extra)


def test_the_recording_is_heard_over_mqtt(asr_venv, broker, fixture_model: Dict[str, Any]) -> None:
    svc = start_service(asr_venv, broker, fixture_model["model"])
    try:
        done = run_check(asr_venv, *check_args(broker, fixture_model["wav"]))
        assert done.returncode == 0, (done.stderr, svc.log())
        result = json.loads(done.stdout)
        assert result["transcript"] == fixture_model["transcript"], (result, svc.log())
        with wave.open(str(fixture_model["wav"]), "rb") as source:
            duration = source.getnframes() / source.getframerate()
        assert abs(result["audio_s"] - duration) < 0.01 and result["path"] == "mqtt" and result["site_id"] == SITE
        assert result["latency_s"] > 0 and result["rtf"] > 0, result
        # A second check is its own session and is answered too (the model is reused).
        again = json.loads(run_check(asr_venv, *check_args(broker, fixture_model["wav"])).stdout)
        assert again["session_id"] != result["session_id"] and again["transcript"] == result["transcript"]
    finally:
        svc.stop()


def test_a_service_that_cannot_transcribe_is_reported(asr_venv, broker, tmp_path: Path,
                                                      fixture_model: Dict[str, Any]) -> None:
    broken = tmp_path / "output_graph.tflite"
    broken.write_bytes(b"not a model")
    svc = start_service(asr_venv, broker, broken)
    try:
        done = run_check(asr_venv, *check_args(broker, fixture_model["wav"]))
        assert done.returncode == 2, (done.stdout, done.stderr)
        assert "the ASR service reported an error" in done.stderr and "ModelFormatError" in done.stderr, done.stderr
    finally:
        svc.stop()


def test_no_service_on_the_site_times_out_with_the_site_named(asr_venv, broker, fixture_model) -> None:
    done = run_check(asr_venv, *check_args(broker, fixture_model["wav"], "--timeout", "3"))
    assert done.returncode == 3, done.stderr
    assert "from site '{}' within 3 s".format(SITE) in done.stderr and "--site-id {}".format(SITE) in done.stderr


def test_no_broker_is_a_connection_error(asr_venv, fixture_model) -> None:
    port = support.free_port()  # nothing listens there
    done = run_check(asr_venv, "--port", str(port), "--site-id", SITE, "--wav", str(fixture_model["wav"]))
    assert done.returncode == 4 and "cannot connect to the MQTT broker 127.0.0.1:{}".format(port) in done.stderr


def test_a_wrong_recording_format_names_the_fix(asr_venv, broker, tmp_path: Path) -> None:
    wav = support.write_silence(tmp_path / "8k.wav", 0.1, rate=8000)
    done = run_check(asr_venv, *check_args(broker, wav))
    assert done.returncode == 64 and "8000 Hz" in done.stderr and "sox {} -r 16000 -c 1 -b 16".format(wav) in done.stderr
