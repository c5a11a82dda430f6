"""The voice_verify role's metrics: word error rate and the client's timing line."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parent.parent / "plugins" / "filter" / "speech_metrics.py"
_SPEC = importlib.util.spec_from_file_location("speech_metrics", str(_PATH))
metrics = importlib.util.module_from_spec(_SPEC)
assert _SPEC.loader is not None
_SPEC.loader.exec_module(metrics)  # type: ignore[union-attr]


@pytest.mark.parametrize("hyp,ref,wer", [
    ("das ist ein test", "das ist ein test", 0.0),
    ("ist das ein test", "das ist ein test", 0.5),      # two substitutions
    ("das ist eintest", "das ist ein test", 0.5),       # one substitution, one deletion
    ("das ist ein tet", "das ist ein test", 0.25),
    ("", "das ist ein test", 1.0),
    ("das ist ein kleiner test", "das ist ein test", 0.25),  # one insertion
])
def test_word_error_rate(hyp: str, ref: str, wer: float) -> None:
    assert metrics.word_error_rate(hyp, ref) == wer


@pytest.mark.bad_input
def test_empty_reference_is_refused() -> None:
    with pytest.raises(ValueError, match="expected transcript is empty"):
        metrics.word_error_rate("das", "  ")


def test_timing_line_gives_the_real_time_factor() -> None:
    stderr = "Loading model from file m.tflite\nRunning inference.\nInference took 0.420s for 1.512s audio file.\n"
    assert metrics.deepspeech_timing(stderr) == {"inference_s": 0.42, "audio_s": 1.512, "rtf": round(0.42 / 1.512, 4)}


def test_missing_timing_line_is_reported() -> None:
    with pytest.raises(ValueError, match="no 'Inference took"):
        metrics.deepspeech_timing("Segmentation fault")


# The result: what each path heard, judged against the gates, with what the Pi runs.
import json  # noqa: E402
from typing import Any, Dict  # noqa: E402

EXPECTED = "das ist ein test"
CLI_OK = {"rc": 0, "stdout": "das ist ein test\n", "stderr": "Loading model...\nInference took 0.500s for 2.000s audio file.\n"}


def _heard(transcript: str = EXPECTED, seconds: float = 0.4, rtf: float = 0.2) -> Dict[str, Any]:
    return {"rc": 0, "stdout": json.dumps({"transcript": transcript, "seconds": seconds, "latency_s": 0.6, "audio_s": 2.0, "rtf": rtf}),
            "stderr": ""}


def inputs(**changes: Any) -> Dict[str, Any]:
    base: Dict[str, Any] = {
        "paths": ["cli", "mqtt", "wyoming"], "enabled": {"cli": True, "mqtt": True, "wyoming": True},
        "cli": CLI_OK, "hermes": _heard(), "wyoming": _heard(), "wyoming_recorded": True,
        "expected": EXPECTED, "wav": "/repo/files/fixture/das_ist_ein_test.wav", "max_wer": "0.0", "max_rtf": 2,
        "facts": {"distribution": "Debian", "distribution_version": "13.1", "distribution_release": "trixie",
                  "architecture": "aarch64", "python": {"version": {"major": 3, "minor": 13, "micro": 5}}, "other": "ignored"},
        "runtime": {"arch": "arm64", "flavour": "tflite", "requirement": "deepspeech==0.7.4+compat.tflite.arm64"},
        "model": "/opt/voice-appliance/models/current/output_graph.tflite",
        "scorer": "/var/lib/voice-appliance/generated.scorer",
        "installed": {"model_id": "german-0.7.4-0123abcd", "model_sums": {"tflite": "a" * 64, "alphabet": "b" * 64},
                      "scorer": {"exists": True, "sha256": "c" * 64, "mtime": 1764000000.5}},
    }
    base.update(changes)
    return base


def test_a_healthy_pi_gets_an_ok_row_with_every_path_and_what_it_runs() -> None:
    result = metrics.verify_result(inputs())
    assert result["status"] == "ok" and result["reason"] == ""
    assert [c["path"] for c in result["checks"]] == ["cli", "mqtt", "wyoming"]
    assert result["checks"][0] == {"path": "cli", "transcript": EXPECTED, "wer": 0.0, "rtf": 0.25, "inference_s": 0.5, "audio_s": 2.0}
    assert result["checks"][1] == {"path": "mqtt", "transcript": EXPECTED, "wer": 0.0, "rtf": 0.2, "inference_s": 0.4,
                                   "latency_s": 0.6, "audio_s": 2.0}
    assert (result["path"], result["transcript"], result["wer"], result["rtf"]) == ("cli", EXPECTED, 0.0, 0.25)
    assert result["wav"] == "das_ist_ein_test.wav" and result["max_wer"] == 0.0 and result["max_rtf"] == 2.0
    assert result["os"] == "Debian 13.1 (trixie)" and result["arch"] == "aarch64" and result["python"] == "3.13.5"
    assert (result["debian_arch"], result["flavour"]) == ("arm64", "tflite")
    assert result["runtime"] == "deepspeech==0.7.4+compat.tflite.arm64"
    assert result["model_id"] == "german-0.7.4-0123abcd" and result["model_sha256"] == "a" * 64
    assert (result["scorer"], result["scorer_sha256"], result["scorer_mtime"]) == (
        "/var/lib/voice-appliance/generated.scorer", "c" * 64, 1764000000.5)
    json.dumps(result)  # a fact and a fleet report row: plain JSON


def test_a_hermes_service_without_its_decode_time_is_measured_by_its_latency() -> None:
    assert metrics.verify_result(inputs(hermes=_heard(seconds=0)))["checks"][1]["inference_s"] == 0.6


@pytest.mark.fault
def test_each_failing_path_is_named_with_its_own_message() -> None:
    result = metrics.verify_result(inputs(
        cli={"rc": -11, "stdout": "", "stderr": "a\nb\nc\nSegmentation fault\n"},
        hermes={"rc": 1, "stdout": "", "stderr": "no transcript within 60 s\n"},
        wyoming=_heard("das ist ein fest")))
    assert result["status"] == "failed"
    assert result["checks"][0] == {"path": "cli", "transcript": "", "error": "deepspeech exited with -11: b / c / Segmentation fault"}
    assert result["checks"][1] == {"path": "mqtt", "error": "no transcript within 60 s"}
    assert result["reason"] == ("cli: deepspeech exited with -11: b / c / Segmentation fault; mqtt: no transcript within 60 s; "
                                "wyoming heard 'das ist ein fest': WER 0.25 > 0.0")
    assert (result["path"], result["transcript"], result["wer"]) == ("wyoming", "das ist ein fest", 0.25)  # the first that heard


def test_too_slow_is_a_reason_of_its_own() -> None:
    result = metrics.verify_result(inputs(max_rtf=0.22, paths=["cli", "mqtt"], enabled={"cli": True, "mqtt": True}))
    assert result["status"] == "failed" and result["reason"] == "cli: RTF 0.25 > 0.22"


def test_a_path_asked_for_without_its_service_is_a_failure_that_says_how_to_skip_it() -> None:
    result = metrics.verify_result(inputs(enabled={"cli": True, "mqtt": False, "wyoming": False}, wyoming_recorded=False))
    assert [c["path"] for c in result["checks"]] == ["cli", "mqtt", "wyoming"]
    assert "remove mqtt from voice_verify_paths" in result["checks"][1]["error"]
    assert "remove wyoming from voice_verify_paths" in result["checks"][2]["error"]
    # A Wyoming server the owner turned off (recorded, not enabled) is not checked and not an error.
    quiet = metrics.verify_result(inputs(enabled={"cli": True, "mqtt": True, "wyoming": False}))
    assert [c["path"] for c in quiet["checks"]] == ["cli", "mqtt"] and quiet["status"] == "ok"


@pytest.mark.bad_input
def test_no_path_at_all_is_a_failure_that_says_so() -> None:
    result = metrics.verify_result(inputs(paths=[], enabled={}))
    assert result["status"] == "failed" and result["reason"] == "no path checked: voice_verify_paths is empty"
    assert (result["path"], result["wer"], result["rtf"]) == ("cli", 1.0, None)


@pytest.mark.fault
def test_a_model_without_its_marker_and_a_missing_scorer_leave_their_fields_empty() -> None:
    result = metrics.verify_result(inputs(installed={"model_id": "german-1-ab", "model_sums": {},
                                                     "model_sums_error": "/x/models/german-1-ab/.verified: not found",
                                                     "scorer": {"exists": False, "sha256": "", "mtime": None}},
                                          model="/x/models/german-1-ab/output_graph.pb"))
    assert result["model_sha256"] == "" and result["model_id"] == "german-1-ab"
    assert (result["scorer"], result["scorer_sha256"], result["scorer_mtime"]) == ("", "", None)


@pytest.mark.fault
def test_a_client_that_printed_no_json_is_an_error_not_a_crash() -> None:
    result = metrics.verify_result(inputs(wyoming={"rc": 0, "stdout": "Traceback ...", "stderr": ""}))
    assert result["checks"][2]["error"].startswith("the client printed no JSON result") and result["status"] == "failed"


def test_check_mode_on_a_pi_without_the_test_wav_checks_nothing_and_fails_nothing() -> None:
    """A first run's preview (--check on a fresh Pi): health_check ran no check, so no path can have failed, and the
    gates (which loop over the checks) pass; the row says why nothing was checked."""
    why = "check mode: /opt/voice-appliance/verify/das_ist_ein_test.wav would be created or rewritten first"
    result = metrics.verify_result(inputs(cli={}, hermes={}, wyoming={}, wyoming_recorded=False,
                                          enabled={"cli": True, "mqtt": False, "wyoming": False},
                                          installed={"checks": {}, "checks_skipped": why}))
    assert (result["status"], result["reason"], result["checks"]) == ("skipped", why, [])
    assert (result["transcript"], result["model_sha256"], result["scorer"]) == ("", "", "")


@pytest.mark.fault
def test_the_gate_names_every_failure_with_what_was_heard_or_measured_and_where_to_look() -> None:
    model, scorer = "/opt/voice-appliance/models/current/output_graph.tflite", "/var/lib/voice-appliance/generated.scorer"
    assert metrics.verify_failures(metrics.verify_result(inputs()), "pi-1", model, scorer) == []
    result = metrics.verify_result(inputs(cli={"rc": 1, "stdout": "", "stderr": "boom\n"}, hermes=_heard("das ist ein fest"),
                                          wyoming=_heard(rtf=3.5), max_rtf=3))
    failures = metrics.verify_failures(result, "pi-1", model, scorer)
    assert failures == [
        "pi-1: the cli check failed: deepspeech exited with 1: boom",
        "pi-1 heard 'das ist ein fest' in das_ist_ein_test.wav (mqtt), expected 'das ist ein test': word error rate 0.25 is above "
        "voice_verify_max_wer 0.0. Check the model ({}), the scorer {} (the words of sentences.ini) and the recording (16 kHz mono "
        "16-bit).".format(model, scorer),
        "pi-1 needed 0.4 s for 2.0 s of audio (wyoming): real-time factor 3.5 is above voice_verify_max_rtf 3.0 (an overloaded or "
        "throttled Pi, or a model too large for it)."]
    # The CLI decodes with the model alone: its wrong words do not point at the scorer.
    wrong_cli = metrics.verify_result(inputs(cli=dict(CLI_OK, stdout="das ist ein fest\n")))
    assert metrics.verify_failures(wrong_cli, "pi-1", model, scorer)[0].endswith(
        "Check the model ({}) and the recording (16 kHz mono 16-bit).".format(model))


@pytest.mark.parametrize("rtf, fails", [(3.0, False), (3.01, True)])
def test_the_row_and_the_gate_judge_a_limit_alike(rtf: float, fails: bool) -> None:
    # A real-time factor at the limit passes, a hair above fails: the fleet report's row and the gate agree.
    result = metrics.verify_result(inputs(wyoming=_heard(rtf=rtf), max_rtf=3))
    failures = metrics.verify_failures(result, "pi-1", "/m/output_graph.tflite", "/s/generated.scorer")
    assert (result["status"] == "failed", len(failures) == 1) == (fails, fails)
    assert ("wyoming: RTF" in result["reason"]) == fails
