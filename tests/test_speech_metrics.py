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
