"""Transcription with the real fixture model (files/fixture) on both official x86_64 libraries.

The TFLite library reads output_graph.tflite, the TensorFlow library output_graph.pb.
"""
from __future__ import annotations

import json
import os
from typing import Dict, List, Tuple

import pytest

import dscompat_support as support
from dscompat_support import write_pcm_wav

MODEL_FOR = {"tflite": "tflite", "tensorflow": "pb"}


def manifest() -> Dict:
    with open(os.path.join(support.FIXTURE, "manifest.json"), encoding="utf-8") as handle:
        return json.load(handle)


def model_path(flavour: str) -> str:
    return os.path.join(support.FIXTURE, manifest()["model"][MODEL_FOR[flavour]])


def fixture_wav() -> Tuple[str, str]:
    entry = manifest()["test_wav"]
    return os.path.join(support.FIXTURE, entry["file"]), entry["transcript"]


def heldout() -> List[Tuple[str, str]]:
    held = manifest()["heldout"]
    rows = []
    with open(os.path.join(support.FIXTURE, held["transcripts"]), encoding="utf-8") as handle:
        header = handle.readline().rstrip("\n").split("\t")
        for line in handle:
            values = dict(zip(header, line.rstrip("\n").split("\t")))
            rows.append((os.path.join(support.FIXTURE, held["dir"], values["wav"]), values["transcript"]))
    assert len(rows) == held["count"]
    return rows


def check_metadata(candidates: List[Dict], expected_text: str, max_results: int) -> None:
    assert 1 <= len(candidates) <= max_results
    assert candidates[0]["text"] == expected_text
    confidences = [c["confidence"] for c in candidates]
    assert confidences == sorted(confidences, reverse=True)
    assert all(c["confidence_type"] == "float" for c in candidates)
    for candidate in candidates:
        steps = [t["timestep"] for t in candidate["tokens"]]
        assert steps == sorted(steps)
        for token in candidate["tokens"]:
            assert token["types"] == ["str", "int", "float"]
            assert token["start_time"] == pytest.approx(token["timestep"] * 0.02, abs=1e-4)


def test_transcribe_batch_stream_and_metadata(flavour, libraries):
    wav, transcript = fixture_wav()
    result = support.run_worker(libraries[flavour], "transcribe", model=model_path(flavour), wavs=[wav],
                                chunk=1600, num_results=3, all_inputs=True).data
    assert result["sample_rate"] == 16000
    assert result["beam_width"] == manifest()["model"]["metadata"]["metadata_beam_width"]
    entry = result["files"][wav]
    assert entry["stt"] == transcript and entry["stt_type"] == "str"
    assert entry["stream"] == entry["stt"]  # streaming in 100 ms chunks == batch
    assert entry["meta_type"] == "Metadata"
    check_metadata(entry["metadata"], transcript, 3)
    check_metadata(entry["stream_metadata"], transcript, 3)
    assert entry["stream_metadata"] == entry["metadata"]
    # decoded before the final window and the trailing context: a prefix of the final words
    assert transcript.startswith(entry["intermediate_last"].rstrip()) and entry["intermediate_last"]
    check_metadata(entry["intermediate_meta"], entry["intermediate_last"], 3)
    expected_inputs = {"array_h", "bytes", "bytearray", "memoryview", "list"}
    try:
        import numpy  # noqa: F401  (optional: the worker adds numpy inputs when it can)
        expected_inputs |= {"numpy_int16", "numpy_big_endian", "numpy_noncontiguous"}
    except ImportError:
        pass
    assert set(entry["inputs"]) == expected_inputs
    assert set(entry["inputs"].values()) == {transcript}, entry["inputs"]


def official_results(flavour: str) -> Dict:
    """What the official 0.7.4 binding transcribed when the fixture was made (manifest)."""
    model = manifest()["model"][MODEL_FOR[flavour]]
    runs = [run for run in manifest()["accuracy_official_no_scorer"].values() if run["model"] == model]
    assert len(runs) == 1, "manifest has no single official run for " + model
    return runs[0]


def test_heldout_accuracy_without_scorer(libraries):
    rows = heldout()
    wavs = [wav for wav, _ in rows]
    # both libraries at once, each in its own process (2 cores)
    running = {flavour: support.start_worker(libraries[flavour], "stt_many", model=model_path(flavour), wavs=wavs)
               for flavour in MODEL_FOR}
    results = {flavour: support.finish_worker(proc).data["transcripts"] for flavour, proc in running.items()}
    for flavour, result in results.items():
        correct = sum(result[wav] == text for wav, text in rows)
        misses = {os.path.basename(wav): result[wav] for wav, text in rows if result[wav] != text}
        assert correct / float(len(rows)) >= 0.95, (flavour, misses)
        # and word for word what Mozilla's own binding produced with the same library
        official = official_results(flavour)
        assert official["test_wav"] == fixture_wav()[1]
        assert misses == official["heldout"]["misses"], flavour


def test_api_semantics_and_errors(flavour, libraries, tmp_path):
    wav, transcript = fixture_wav()
    arpa = str(tmp_path / "lm.arpa")
    with open(arpa, "w") as handle:
        handle.write("\\data\\\nngram 1=1\n\n\\1-grams:\n-1.0\t<s>\n\n\\end\\\n")
    scorers = {
        "missing": str(tmp_path / "missing.scorer"),
        "arpa": arpa,
        "lm_binary": os.path.join(support.SCORER_DATA, "lm.binary"),
        "valid": os.path.join(support.SCORER_DATA, "reference.scorer"),
    }
    out = support.run_worker(libraries[flavour], "api_errors", model=model_path(flavour), wav=wav, scorers=scorers).data
    assert out["disable_without_scorer"] == 0x2004
    assert out["alpha_beta_without_scorer"] == 0x2004  # upstream's return value ...
    assert len(out["alpha_beta_warnings"]) == 1 and "was not applied" in out["alpha_beta_warnings"][0]  # ... not silent
    assert "call enableExternalScorer() before setScorerAlphaBeta()" in out["alpha_beta_warnings"][0]
    prefix = "EnableExternalScorer failed with 'Invalid scorer file.' (0x2002): "
    for name, reason in (("missing", "does not exist"), ("arpa", "ARPA text language model"),
                         ("lm_binary", "without the vocabulary trie")):
        failure = out["scorers"][name]["error"]
        assert failure["type"] == "ScorerError" and failure["runtime"] and failure["code"] == 0x2002
        assert failure["message"].startswith(prefix) and reason in failure["message"], failure
    assert out["scorers"]["valid"] == {"value": None, "stderr": out["scorers"]["valid"]["stderr"]}
    assert out["alpha_beta_with_scorer"] == 0 and out["disable_with_scorer"] == 0
    assert isinstance(out["with_scorer"], str)
    assert out["set_beam_width"] == 0 and out["beam_width_after"] == 7
    assert out["negative_beam"]["error"]["type"] == "OverflowError"
    assert out["float_beam"]["error"]["type"] == "TypeError"
    assert out["bad_num_results"]["error"]["type"] == "OverflowError"
    assert out["zero_results"] == 0
    assert out["odd_bytes"]["error"]["type"] == "ValueError" and "odd length" in out["odd_bytes"]["error"]["message"]
    assert out["float_list"]["error"]["type"] == "TypeError"
    assert out["overflow_list"]["error"]["type"] == "ValueError"
    assert out["wrong_array"]["error"]["type"] == "TypeError" and "'i'" in out["wrong_array"]["error"]["message"]
    assert out["str_audio"]["error"]["type"] == "TypeError"
    # no samples: the library still decodes its final (zero) window, as in a stream fed nothing
    assert out["empty_audio"] == {"value": out["empty_stream"]}
    if out["numpy"] is not None:
        assert out["numpy"]["float"]["error"]["type"] == "TypeError" and "float32" in out["numpy"]["float"]["error"]["message"]
        assert out["numpy"]["int32"]["error"]["type"] == "TypeError"
        assert out["numpy"]["2d"]["error"]["type"] == "TypeError" and "(10, 2)" in out["numpy"]["2d"]["error"]["message"]
    assert out["finish"] == transcript
    upstream_messages = {
        "feed": "Stream object is not valid. Trying to feed an already finished stream?",
        "intermediate": "Stream object is not valid. Trying to decode an already finished stream?",
        "intermediate_meta": "Stream object is not valid. Trying to decode an already finished stream?",
        "finish": "Stream object is not valid. Trying to finish an already finished stream?",
        "finish_meta": "Stream object is not valid. Trying to finish an already finished stream?",
        "free": "Stream object is not valid. Trying to free an already finished stream?",
    }
    for call, message in upstream_messages.items():
        assert out["after_finish"][call]["error"]["type"] == "RuntimeError"
        assert out["after_finish"][call]["error"]["message"] == message
    assert out["free_then_finish"]["error"]["message"] == upstream_messages["finish"]
    assert out["stream_outlives_model"] == transcript


def test_cli_as_upstream(flavour, libraries):
    wav, transcript = fixture_wav()
    model = model_path(flavour)
    plain = support.run_cli(libraries[flavour], ["--model", model, "--audio", wav])
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout == transcript + "\n"
    assert "Loading model from file {}".format(model) in plain.stderr and "Inference took" in plain.stderr
    extended = support.run_cli(libraries[flavour], ["--model", model, "--audio", wav, "--extended"])
    assert extended.stdout == transcript + "\n"
    as_json = support.run_cli(libraries[flavour], ["--model", model, "--audio", wav, "--json", "--candidate_transcripts", "2"])
    document = json.loads(as_json.stdout)
    assert 1 <= len(document["transcripts"]) <= 2
    words = document["transcripts"][0]["words"]
    assert " ".join(w["word"] for w in words) == transcript
    assert all(set(w) == {"word", "start_time ", "duration"} for w in words)
    scored = support.run_cli(libraries[flavour], ["--model", model, "--audio", wav, "--beam_width", "50",
                                                  "--scorer", os.path.join(support.SCORER_DATA, "reference.scorer"),
                                                  "--lm_alpha", "0.5", "--lm_beta", "1.0"])
    assert scored.returncode == 0, scored.stderr
    assert "Loaded scorer in" in scored.stderr and scored.stdout.endswith("\n")


def test_cli_errors(libraries, tmp_path):
    wav, _ = fixture_wav()
    pb_on_tflite = support.run_cli(libraries["tflite"], ["--model", model_path("tensorflow"), "--audio", wav])
    assert pb_on_tflite.returncode == 1 and pb_on_tflite.stdout == ""
    assert "model identifier 'inpu', should be 'TFL3'" in pb_on_tflite.stderr
    assert "error code 12288" in pb_on_tflite.stderr and "output_graph.tflite" in pb_on_tflite.stderr
    tflite_on_tf = support.run_cli(libraries["tensorflow"], ["--model", model_path("tflite"), "--audio", wav])
    assert tflite_on_tf.returncode == 1 and "full TensorFlow build" in tflite_on_tf.stderr
    slow = str(tmp_path / "8k.wav")
    write_pcm_wav(slow, rate=8000)
    rate = support.run_cli(libraries["tflite"], ["--model", model_path("tflite"), "--audio", slow])
    assert rate.returncode == 1 and "8000 Hz (the model needs 16000 Hz)" in rate.stderr
    assert "sox {} -r 16000 -c 1 -b 16 -e signed-integer".format(slow) in rate.stderr
    bad = support.run_cli(libraries["tflite"], ["--model", model_path("tflite"), "--audio", wav,
                                                "--scorer", os.path.join(support.SCORER_DATA, "lm.binary")])
    assert bad.returncode == 1 and "(0x2002)" in bad.stderr and "without the vocabulary trie" in bad.stderr
