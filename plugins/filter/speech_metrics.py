"""Filters of the voice_verify role: word error rate and the DeepSpeech client's timing line."""
from __future__ import annotations

import re
from typing import Any, Callable, Dict, List

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


class FilterModule:
    def filters(self) -> Dict[str, Callable[..., Any]]:
        return {"voice_verify_wer": word_error_rate, "voice_verify_timing": deepspeech_timing}
