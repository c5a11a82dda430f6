"""Filters of the voice_verify role: the checks the module health_check runs (one command per path), word error
rate, the DeepSpeech client's timing line, and the result (what each path heard, scored and judged, with what the
Pi runs: the fact voice_verify_result and the fleet report's row)."""
from __future__ import annotations

import json
import posixpath
import re
from typing import Any, Callable, Dict, List, Mapping, Optional

_TIMING = re.compile(r"Inference took ([0-9.]+)s for ([0-9.]+)s audio file")


def word_error_rate(hypothesis: str, reference: str) -> float:
    """Word-level Levenshtein distance divided by the reference's word count."""
    hyp: List[str] = hypothesis.split()
    ref: List[str] = reference.split()
    if not ref:
        raise ValueError("the expected transcript is empty: give the words spoken in the test WAV")
    previous = list(range(len(hyp) + 1))
    for i, ref_word in enumerate(ref, 1):
        current = [i]
        for j, hyp_word in enumerate(hyp, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref_word != hyp_word)))
        previous = current
    return round(previous[-1] / len(ref), 4)


def deepspeech_timing(stderr: str) -> Dict[str, float]:
    """Inference and audio seconds from the client's 'Inference took Xs for Ys audio file.' line."""
    match = _TIMING.search(stderr)
    if not match:
        raise ValueError("no 'Inference took ... audio file' line in the DeepSpeech client's output: {!r}".format(stderr[-300:]))
    inference, audio = float(match.group(1)), float(match.group(2))
    return {"inference_s": inference, "audio_s": audio, "rtf": round(inference / audio, 4) if audio else float("inf")}


# A client's own timeout plus this is how long the health check lets it run before it kills it.
_CLIENT_GRACE_S = 60.0


def verify_checks(inputs: Mapping[str, Any]) -> List[Dict[str, Any]]:
    """The checks for the module health_check: one command per enabled path, in the order cli, mqtt, wyoming.

    inputs: enabled ({cli, mqtt, wyoming}), wav (the test WAV on the Pi), deepspeech_command, model, scorer (the
    command line's scorer, "" for none), hermes_command, mqtt (the rhasspy_asr local fact: site_id, mqtt_host,
    mqtt_port, username, password_file), mqtt_timeout, mqtt_username, mqtt_password (both "" = the fact's
    verification account, whose password the client reads from its root-only file), wyoming_command, wyoming (the
    wyoming_asr local fact: host, port), wyoming_timeout. A password goes into the check's env, never into argv.
    """
    enabled: Mapping[str, Any] = inputs.get("enabled") or {}
    wav = str(inputs["wav"])
    checks: List[Dict[str, Any]] = []
    if enabled.get("cli"):
        argv = [str(inputs["deepspeech_command"]), "--model", str(inputs["model"]), "--audio", wav]
        if inputs.get("scorer"):
            argv += ["--scorer", str(inputs["scorer"])]
        checks.append({"path": "cli", "argv": argv})
    if enabled.get("mqtt"):
        fact: Mapping[str, Any] = inputs.get("mqtt") or {}
        timeout = _float(inputs.get("mqtt_timeout"))
        argv = [str(inputs["hermes_command"]), "--wav", wav, "--site-id", str(fact["site_id"]),
                "--host", str(fact["mqtt_host"]), "--port", str(fact["mqtt_port"]), "--timeout", str(inputs["mqtt_timeout"])]
        env: Dict[str, str] = {}
        if inputs.get("mqtt_username"):
            argv += ["--username", str(inputs["mqtt_username"])]
            env["VOICE_HERMES_PASSWORD"] = str(inputs.get("mqtt_password") or "")
        elif fact.get("username"):
            argv += ["--username", str(fact["username"]), "--password-file", str(fact["password_file"])]
        checks.append({"path": "mqtt", "argv": argv, "env": env, "timeout": timeout + _CLIENT_GRACE_S})
    if enabled.get("wyoming"):
        fact = inputs.get("wyoming") or {}
        timeout = _float(inputs.get("wyoming_timeout"))
        checks.append({"path": "wyoming", "timeout": timeout + _CLIENT_GRACE_S,
                       "argv": [str(inputs["wyoming_command"]), "--wav", wav, "--host", str(fact["host"]),
                                "--port", str(fact["port"]), "--timeout", str(inputs["wyoming_timeout"])]})
    return checks


def _float(value: Any) -> float:
    try:
        return float(value or 0)
    except (TypeError, ValueError):
        return 0.0


def _stderr(result: Mapping[str, Any]) -> str:
    return str(result.get("stderr") or "").strip()


def _cli_check(cli: Mapping[str, Any], expected: str) -> Dict[str, Any]:
    stdout = str(cli.get("stdout") or "").strip()
    if cli.get("rc") == 0 and "Inference took" in str(cli.get("stderr") or ""):
        timing = deepspeech_timing(str(cli["stderr"]))
        return {"path": "cli", "transcript": stdout, "wer": word_error_rate(stdout, expected), "rtf": timing["rtf"],
                "inference_s": timing["inference_s"], "audio_s": timing["audio_s"]}
    return {"path": "cli", "transcript": stdout,
            "error": "deepspeech exited with {}: {}".format(cli.get("rc"), " / ".join(_stderr(cli).splitlines()[-3:]))}


def _client_check(path: str, result: Mapping[str, Any], expected: str) -> Dict[str, Any]:
    """A check of voice-hermes-check or voice-wyoming-check: their JSON on success, their message otherwise."""
    if result.get("rc") != 0:
        return {"path": path, "error": _stderr(result)}
    try:
        heard = json.loads(str(result.get("stdout") or ""))
    except ValueError:
        return {"path": path, "error": "the client printed no JSON result: {!r}".format(str(result.get("stdout"))[-300:])}
    seconds = heard.get("seconds")
    # A Hermes service that reports no decode time: its latency is the best measure there is.
    inference = seconds if path == "wyoming" or _float(seconds) > 0 else heard.get("latency_s")
    return {"path": path, "transcript": heard["transcript"], "wer": word_error_rate(heard["transcript"], expected),
            "rtf": heard.get("rtf"), "inference_s": inference, "latency_s": heard.get("latency_s"), "audio_s": heard.get("audio_s")}


def _limits_exceeded(check: Mapping[str, Any], max_wer: float, max_rtf: float) -> List[str]:
    """Which limits a path's check exceeds, of "wer" and "rtf" (none for a check with an error: it has nothing to judge).
    The one comparison behind both the result's reason and the gate's messages."""
    if "error" in check:
        return []
    return [name for name, value, limit in (("wer", check["wer"], max_wer), ("rtf", check["rtf"], max_rtf))
            if _float(value) > limit]


def _path_checks(inputs: Mapping[str, Any], paths: List[str], expected: str) -> List[Dict[str, Any]]:
    """Each path voice_verify_paths asks for: its check's result, or why it could not run."""
    enabled: Mapping[str, Any] = inputs.get("enabled") or {}
    checks: List[Dict[str, Any]] = []
    if enabled.get("cli"):
        checks.append(_cli_check(inputs.get("cli") or {}, expected))
    if enabled.get("mqtt"):
        checks.append(_client_check("mqtt", inputs.get("hermes") or {}, expected))
    elif "mqtt" in paths:
        checks.append({"path": "mqtt", "error": "no Hermes ASR service recorded on this Pi (the role rhasspy_asr writes "
                       "/etc/ansible/facts.d/rhasspy_asr.fact); remove mqtt from voice_verify_paths to check only the command line"})
    if enabled.get("wyoming"):
        checks.append(_client_check("wyoming", inputs.get("wyoming") or {}, expected))
    elif "wyoming" in paths and not inputs.get("wyoming_recorded"):
        checks.append({"path": "wyoming", "error": "no Wyoming server recorded on this Pi (the role wyoming_asr writes "
                       "/etc/ansible/facts.d/wyoming_asr.fact); remove wyoming from voice_verify_paths to skip it"})
    return checks


def verify_result(inputs: Mapping[str, Any]) -> Dict[str, Any]:
    """voice_verify_result from what the role's tasks registered (see roles/voice_verify/tasks/main.yml).

    inputs: paths, enabled ({cli, mqtt, wyoming}), cli, hermes, wyoming (the module health_check's results per
    path: rc, stdout, stderr), wyoming_recorded, expected, wav, max_wer, max_rtf, facts (distribution*,
    architecture, python), runtime (the deepspeech local fact), model, scorer, installed (health_check's result:
    model_id, model_sums, scorer; checks_skipped when it ran no check, which makes the status "skipped").
    """
    paths: List[str] = list(inputs.get("paths") or [])
    expected = str(inputs["expected"])
    installed: Mapping[str, Any] = inputs.get("installed") or {}
    # Check mode on a Pi that lacks the test WAV (a first run's preview): no path was checked, and none failed.
    skipped = str(installed.get("checks_skipped") or "")
    checks = [] if skipped else _path_checks(inputs, paths, expected)

    max_wer, max_rtf = float(inputs["max_wer"]), float(inputs["max_rtf"])
    reasons = [] if checks or skipped else ["no path checked: voice_verify_paths is empty"]
    for check in checks:
        if "error" in check:
            reasons.append("{}: {}".format(check["path"], check["error"]))
            continue
        exceeded = _limits_exceeded(check, max_wer, max_rtf)
        if "wer" in exceeded:
            reasons.append("{} heard '{}': WER {} > {}".format(check["path"], check["transcript"], check["wer"], max_wer))
        if "rtf" in exceeded:
            reasons.append("{}: RTF {} > {}".format(check["path"], check["rtf"], max_rtf))

    sums: Mapping[str, Any] = installed.get("model_sums") or {}
    model = str(inputs.get("model") or "")
    graph = "pb" if model.endswith(".pb") else "tflite"
    facts: Mapping[str, Any] = inputs.get("facts") or {}
    python: Mapping[str, Any] = (facts.get("python") or {}).get("version") or {}
    runtime: Mapping[str, Any] = inputs.get("runtime") or {}
    scorer_state: Mapping[str, Any] = installed.get("scorer") or {}
    model_id = str(installed.get("model_id") or posixpath.basename(posixpath.dirname(model)))
    first: Mapping[str, Any] = next((check for check in checks if "error" not in check), {})
    return {
        "path": first.get("path", "cli"), "wav": posixpath.basename(str(inputs.get("wav") or "")), "expected": expected,
        "transcript": first.get("transcript", ""), "wer": first.get("wer", 1.0), "rtf": first.get("rtf"),
        "inference_s": first.get("inference_s"), "audio_s": first.get("audio_s"),
        "checks": checks, "status": "skipped" if skipped else "failed" if reasons else "ok",
        "reason": skipped or "; ".join(reasons),
        "max_wer": max_wer, "max_rtf": max_rtf,
        "os": "{} {} ({})".format(facts.get("distribution", "?"), facts.get("distribution_version", "?"),
                                  facts.get("distribution_release", "?")),
        "arch": facts.get("architecture", ""), "debian_arch": runtime.get("arch", ""),
        "python": "{}.{}.{}".format(python.get("major", ""), python.get("minor", ""), python.get("micro", "")),
        "flavour": runtime.get("flavour", ""), "runtime": runtime.get("requirement", ""),
        "model_id": model_id, "model_sha256": sums.get(graph, ""),
        "scorer": str(inputs.get("scorer") or "") if scorer_state.get("exists") else "",
        "scorer_sha256": scorer_state.get("sha256", ""), "scorer_mtime": scorer_state.get("mtime"),
    }


def verify_failures(result: Mapping[str, Any], host: str, model: str, scorer: str) -> List[str]:
    """The gate's messages for voice_verify_result (verify_result's): every path whose check failed, heard too many
    wrong words or was too slow, each naming what was heard or measured, the limit and where to look; [] passes.

    A path with an error is named by its error alone (it has no transcript to judge). The scorer (the words of
    sentences.ini) is named for the paths through the running services (mqtt, wyoming), which decode with it.
    """
    failures: List[str] = []
    max_wer, max_rtf = float(result["max_wer"]), float(result["max_rtf"])
    for check in result.get("checks") or []:
        path = check["path"]
        if "error" in check:
            failures.append("{}: the {} check failed: {}".format(host, path, check["error"]))
            continue
        exceeded = _limits_exceeded(check, max_wer, max_rtf)
        if "wer" in exceeded:
            failures.append(
                "{} heard '{}' in {} ({}), expected '{}': word error rate {} is above voice_verify_max_wer {}. Check the model "
                "({}){} and the recording (16 kHz mono 16-bit).".format(
                    host, check["transcript"], result["wav"], path, result["expected"], check["wer"], result["max_wer"], model,
                    ", the scorer {} (the words of sentences.ini)".format(scorer) if path in ("mqtt", "wyoming") else ""))
        if "rtf" in exceeded:
            failures.append(
                "{} needed {} s for {} s of audio ({}): real-time factor {} is above voice_verify_max_rtf {} (an overloaded or "
                "throttled Pi, or a model too large for it).".format(
                    host, check["inference_s"], check["audio_s"], path, check["rtf"], result["max_rtf"]))
    return failures


class FilterModule:
    def filters(self) -> Dict[str, Callable[..., Any]]:
        return {"voice_verify_checks": verify_checks, "voice_verify_wer": word_error_rate,
                "voice_verify_timing": deepspeech_timing, "voice_verify_result": verify_result,
                "voice_verify_failures": verify_failures}
