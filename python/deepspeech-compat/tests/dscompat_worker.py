"""Scenarios run in a fresh interpreter with one real libdeepspeech (DEEPSPEECH_LIBRARY).

    python dscompat_worker.py <scenario> '<json kwargs>'

Prints one JSON line (the observations) on stdout; the tests assert on it.
Library stderr of a single call can be captured (fd 2) to check what the
library itself says.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import warnings
from array import array
from typing import Any, Dict, Iterator, List

import deepspeech
from deepspeech import impl
from deepspeech._checks import read_wav


@contextlib.contextmanager
def captured_fd2(sink: List[str]) -> Iterator[None]:
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            sink.append(tmp.read().decode("utf-8", "replace"))


def error(exc: BaseException) -> Dict[str, Any]:
    return {"type": type(exc).__name__, "message": str(exc), "runtime": isinstance(exc, RuntimeError),
            "code": getattr(exc, "code", None)}


def attempt(function: Any, *args: Any) -> Dict[str, Any]:
    try:
        value = function(*args)
    except Exception as exc:  # the scenario reports every failure to the test
        return {"error": error(exc)}
    return {"value": value if isinstance(value, (int, float, str, type(None))) else repr(value)}


def metadata(meta: Any) -> List[Dict[str, Any]]:
    out = []
    for candidate in meta.transcripts:
        assert type(candidate).__name__ == "CandidateTranscript"
        tokens = []
        for token in candidate.tokens:
            assert type(token).__name__ == "TokenMetadata"
            tokens.append({"text": token.text, "timestep": token.timestep, "start_time": token.start_time,
                           "types": [type(token.text).__name__, type(token.timestep).__name__,
                                     type(token.start_time).__name__]})
        out.append({"confidence": candidate.confidence, "confidence_type": type(candidate.confidence).__name__,
                    "tokens": tokens, "text": "".join(t["text"] for t in tokens)})
    return out


def scenario_library(**_: Any) -> Dict[str, Any]:
    info = deepspeech.library_info()
    names = {name: getattr(impl, name) for name in dir(impl) if name.startswith("ERR_")}
    return {
        "version": deepspeech.version(),
        "version_type": type(deepspeech.version()).__name__,
        "flavour": info.flavour,
        "path": info.path,
        "elf": list(info.elf),
        "messages": {name: impl.ErrorCodeToErrorMessage(code) for name, code in names.items()},
        "unknown": impl.ErrorCodeToErrorMessage(0x7777),
    }


def scenario_create_model(paths: List[Any], raw: bool = False, **_: Any) -> Dict[str, Any]:
    """Model(path) for each path (raw: impl.CreateModel, upstream's unchecked call), with library stderr."""
    results = []
    for path in paths:
        sink: List[str] = []
        with captured_fd2(sink):
            if raw:
                status, handle = impl.CreateModel(path)
                if handle:
                    impl.FreeModel(handle)
                outcome = {"status": status}  # type: Dict[str, Any]
            else:
                try:
                    deepspeech.Model(path)
                    outcome = {"loaded": True}
                except Exception as exc:
                    outcome = {"error": error(exc)}
        outcome["stderr"] = sink[0]
        results.append(outcome)
    return {"results": results}


def _inputs(samples: array) -> Dict[str, Any]:
    variants: Dict[str, Any] = {"array_h": samples, "bytes": samples.tobytes(), "bytearray": bytearray(samples.tobytes()),
                                "memoryview": memoryview(samples), "list": list(samples)}
    try:
        import numpy
    except ImportError:
        return variants
    as_numpy = numpy.frombuffer(samples.tobytes(), numpy.int16)
    variants["numpy_int16"] = as_numpy
    variants["numpy_big_endian"] = as_numpy.astype(">i2")
    variants["numpy_noncontiguous"] = numpy.repeat(as_numpy, 2)[::2]
    return variants


def scenario_transcribe(model: str, wavs: List[str], chunk: int = 1000, num_results: int = 3,
                        all_inputs: bool = False, **_: Any) -> Dict[str, Any]:
    ds = deepspeech.Model(model)
    out = {"beam_width": ds.beamWidth(), "sample_rate": ds.sampleRate(), "files": {}}  # type: Dict[str, Any]
    for wav in wavs:
        samples = read_wav(wav, ds.sampleRate()).samples
        entry = {"stt": ds.stt(samples)}  # type: Dict[str, Any]
        entry["stt_type"] = type(entry["stt"]).__name__
        meta = ds.sttWithMetadata(samples, num_results)
        entry["meta_type"] = type(meta).__name__
        entry["metadata"] = metadata(meta)
        stream = ds.createStream()
        intermediate = []
        for start in range(0, len(samples), chunk):
            stream.feedAudioContent(samples[start:start + chunk])
            intermediate.append(stream.intermediateDecode())
        entry["intermediate_meta"] = metadata(stream.intermediateDecodeWithMetadata(num_results))
        entry["intermediate_last"] = intermediate[-1] if intermediate else ""
        entry["stream"] = stream.finishStream()
        stream2 = ds.createStream()
        stream2.feedAudioContent(samples)
        entry["stream_metadata"] = metadata(stream2.finishStreamWithMetadata(num_results))
        if all_inputs:
            entry["inputs"] = {name: ds.stt(value) for name, value in _inputs(samples).items()}
        out["files"][wav] = entry
    return out


def scenario_stt_many(model: str, wavs: List[str], **_: Any) -> Dict[str, Any]:
    ds = deepspeech.Model(model)
    return {"transcripts": {wav: ds.stt(read_wav(wav, ds.sampleRate()).samples) for wav in wavs}}


def scenario_api_errors(model: str, wav: str, scorers: Dict[str, str], **_: Any) -> Dict[str, Any]:
    ds = deepspeech.Model(model)
    samples = read_wav(wav, ds.sampleRate()).samples
    out = {}  # type: Dict[str, Any]
    out["disable_without_scorer"] = ds.disableExternalScorer()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out["alpha_beta_without_scorer"] = ds.setScorerAlphaBeta(0.5, 1.5)
    out["alpha_beta_warnings"] = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    out["scorers"] = {}
    for name, path in scorers.items():
        sink: List[str] = []
        with captured_fd2(sink):
            result = attempt(ds.enableExternalScorer, path)
        result["stderr"] = sink[0]
        out["scorers"][name] = result
    if "valid" in scorers and "error" not in out["scorers"]["valid"]:
        out["alpha_beta_with_scorer"] = ds.setScorerAlphaBeta(0.75, 1.25)
        out["with_scorer"] = ds.stt(samples)
        out["disable_with_scorer"] = ds.disableExternalScorer()
    out["set_beam_width"] = ds.setBeamWidth(7)
    out["beam_width_after"] = ds.beamWidth()
    out["negative_beam"] = attempt(ds.setBeamWidth, -1)
    out["float_beam"] = attempt(ds.setBeamWidth, 2.5)
    out["bad_num_results"] = attempt(ds.sttWithMetadata, samples, -1)
    out["zero_results"] = len(ds.sttWithMetadata(samples, 0).transcripts)
    out["odd_bytes"] = attempt(ds.stt, samples.tobytes()[:-1])
    out["float_list"] = attempt(ds.stt, [0.5, 1.5])
    out["overflow_list"] = attempt(ds.stt, [40000])
    out["wrong_array"] = attempt(ds.stt, array("i", [1, 2]))
    out["str_audio"] = attempt(ds.stt, "not audio")
    out["empty_audio"] = attempt(ds.stt, array("h"))
    out["empty_stream"] = ds.createStream().finishStream()
    try:
        import numpy
    except ImportError:
        out["numpy"] = None
    else:
        out["numpy"] = {
            "float": attempt(ds.stt, numpy.zeros(10, numpy.float32)),
            "int32": attempt(ds.stt, numpy.zeros(10, numpy.int32)),
            "2d": attempt(ds.stt, numpy.zeros((10, 2), numpy.int16)),
        }
    stream = ds.createStream()
    stream.feedAudioContent(samples)
    out["finish"] = stream.finishStream()
    out["after_finish"] = {
        "feed": attempt(stream.feedAudioContent, samples),
        "intermediate": attempt(stream.intermediateDecode),
        "intermediate_meta": attempt(stream.intermediateDecodeWithMetadata),
        "finish": attempt(stream.finishStream),
        "finish_meta": attempt(stream.finishStreamWithMetadata),
        "free": attempt(stream.freeStream),
    }
    freed = ds.createStream()
    freed.feedAudioContent(samples)
    freed.freeStream()
    out["free_then_finish"] = attempt(freed.finishStream)
    orphan = deepspeech.Model(model).createStream()  # the model object is dropped at once
    orphan.feedAudioContent(samples)
    out["stream_outlives_model"] = orphan.finishStream()
    return out


def main() -> None:
    scenario, kwargs = sys.argv[1], json.loads(sys.argv[2])
    result = globals()["scenario_" + scenario](**kwargs)
    sys.stdout.write(json.dumps(result, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
