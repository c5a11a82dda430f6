"""ctypes binding of the libdeepspeech 0.7.4 C API (``deepspeech.h``).

Same function names and return conventions as upstream's SWIG module
``deepspeech.impl`` (``CreateModel`` returns ``(status, handle)``, strings come
back as ``str``, metadata as Python objects), so code that reaches into
``deepspeech.impl`` keeps working. Unlike SWIG's objects, metadata is copied
into plain Python objects and the C structure is freed at once, so a token can
never outlive the memory it points to.

The library is loaded on first use (see ``_library``), so ``import deepspeech``
works on a machine without it and the error names what is missing.
"""
from __future__ import annotations

import ctypes
import os
import threading
from array import array
from typing import Any, List, Optional, Tuple

from . import _checks, _library
from ._errors import LibraryError

# Error codes of deepspeech.h 0.7.4 (DS_FOR_EACH_ERROR).
ERR_OK = 0x0000
ERR_NO_MODEL = 0x1000
ERR_INVALID_ALPHABET = 0x2000
ERR_INVALID_SHAPE = 0x2001
ERR_INVALID_SCORER = 0x2002
ERR_MODEL_INCOMPATIBLE = 0x2003
ERR_SCORER_NOT_ENABLED = 0x2004
ERR_SCORER_UNREADABLE = 0x2005
ERR_SCORER_INVALID_LM = 0x2006
ERR_SCORER_NO_TRIE = 0x2007
ERR_SCORER_INVALID_TRIE = 0x2008
ERR_SCORER_VERSION_MISMATCH = 0x2009
ERR_FAIL_INIT_MMAP = 0x3000
ERR_FAIL_INIT_SESS = 0x3001
ERR_FAIL_INTERPRETER = 0x3002
ERR_FAIL_RUN_SESS = 0x3003
ERR_FAIL_CREATE_STREAM = 0x3004
ERR_FAIL_READ_PROTOBUF = 0x3005
ERR_FAIL_CREATE_SESS = 0x3006
ERR_FAIL_CREATE_MODEL = 0x3007

_UINT_MAX = 0xFFFFFFFF


class _CTokenMetadata(ctypes.Structure):
    _fields_ = [("text", ctypes.c_char_p), ("timestep", ctypes.c_uint), ("start_time", ctypes.c_float)]


class _CCandidateTranscript(ctypes.Structure):
    _fields_ = [
        ("tokens", ctypes.POINTER(_CTokenMetadata)),
        ("num_tokens", ctypes.c_uint),
        ("confidence", ctypes.c_double),
    ]


class _CMetadata(ctypes.Structure):
    _fields_ = [("transcripts", ctypes.POINTER(_CCandidateTranscript)), ("num_transcripts", ctypes.c_uint)]


_MetadataPtr = ctypes.POINTER(_CMetadata)
_ShortPtr = ctypes.POINTER(ctypes.c_short)
_vp = ctypes.c_void_p
_uint = ctypes.c_uint
_int = ctypes.c_int

_PROTOTYPES = {
    "DS_CreateModel": (_int, [ctypes.c_char_p, ctypes.POINTER(_vp)]),
    "DS_GetModelBeamWidth": (_uint, [_vp]),
    "DS_SetModelBeamWidth": (_int, [_vp, _uint]),
    "DS_GetModelSampleRate": (_int, [_vp]),
    "DS_FreeModel": (None, [_vp]),
    "DS_EnableExternalScorer": (_int, [_vp, ctypes.c_char_p]),
    "DS_DisableExternalScorer": (_int, [_vp]),
    "DS_SetScorerAlphaBeta": (_int, [_vp, ctypes.c_float, ctypes.c_float]),
    "DS_SpeechToText": (_vp, [_vp, _ShortPtr, _uint]),
    "DS_SpeechToTextWithMetadata": (_MetadataPtr, [_vp, _ShortPtr, _uint, _uint]),
    "DS_CreateStream": (_int, [_vp, ctypes.POINTER(_vp)]),
    "DS_FeedAudioContent": (None, [_vp, _ShortPtr, _uint]),
    "DS_IntermediateDecode": (_vp, [_vp]),
    "DS_IntermediateDecodeWithMetadata": (_MetadataPtr, [_vp, _uint]),
    "DS_FinishStream": (_vp, [_vp]),
    "DS_FinishStreamWithMetadata": (_MetadataPtr, [_vp, _uint]),
    "DS_FreeStream": (None, [_vp]),
    "DS_FreeMetadata": (None, [_MetadataPtr]),
    "DS_FreeString": (None, [_vp]),
    "DS_Version": (_vp, []),
    "DS_ErrorCodeToErrorMessage": (_vp, [_int]),
}

_lock = threading.Lock()
_lib: Optional[ctypes.CDLL] = None
_lib_info: Optional[_library.LibraryInfo] = None


def library() -> ctypes.CDLL:
    """The loaded libdeepspeech (loaded on first call)."""
    global _lib, _lib_info
    if _lib is None:
        with _lock:
            if _lib is None:
                path = _library.find_library()
                info = _library.inspect_library(path)
                lib = _library.open_library(path)
                for name, (restype, argtypes) in _PROTOTYPES.items():
                    try:
                        function = getattr(lib, name)
                    except AttributeError:
                        raise LibraryError(
                            "{} has no {}: it is not a DeepSpeech 0.7.x libdeepspeech.so.".format(path, name)
                        ) from None
                    function.restype = restype
                    function.argtypes = argtypes
                _lib_info = info
                _lib = lib
    return _lib


def library_info() -> _library.LibraryInfo:
    """Path, flavour and ELF architecture of the loaded library."""
    library()
    assert _lib_info is not None
    return _lib_info


# --- conversions -----------------------------------------------------------------

def _decode(raw: bytes) -> str:
    # SWIG decodes char* as UTF-8 with surrogateescape; a UTF-8-mode token can be a partial character.
    return raw.decode("utf-8", "surrogateescape")


def _take_string(pointer: Optional[int]) -> str:
    if not pointer:
        raise RuntimeError("libdeepspeech returned no string (NULL)")
    try:
        return _decode(ctypes.string_at(pointer))
    finally:
        library().DS_FreeString(pointer)


def _encode_path(value: Any, what: str) -> Optional[bytes]:
    if value is None:
        return None
    if isinstance(value, str) or hasattr(value, "__fspath__"):
        path = os.fspath(value)
        if isinstance(path, str):
            return os.fsencode(path)
    raise TypeError("{} must be a str path (or os.PathLike), got {}".format(what, type(value).__name__))


def _check_uint(value: Any, what: str) -> int:
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise TypeError("{} must be an int, got {}".format(what, type(value).__name__))
    number = value.__index__()
    if not 0 <= number <= _UINT_MAX:
        raise OverflowError("{} must be between 0 and {}, got {}".format(what, _UINT_MAX, number))
    return number


def _audio_pointer(audio: Any) -> Tuple[Any, int, Any]:
    """(pointer, sample count, object to keep alive) for 16-bit mono samples.

    Accepted: a 1-D numpy array of int16 (or of a type that casts to int16 without
    loss, as upstream's numpy typemap allows), ``array('h')``, a bytes-like object
    of native-endian int16 samples (bytes, bytearray, memoryview), or a sequence
    of ints in the int16 range.
    """
    if type(audio).__module__ == "numpy" and hasattr(audio, "dtype") and hasattr(audio, "ndim"):
        import numpy

        if audio.ndim != 1:
            raise TypeError(
                "audio must be a 1-D array of 16-bit mono samples, got an array of shape {} "
                "(for stereo take one channel, e.g. audio[:, 0])".format(tuple(audio.shape))
            )
        if audio.dtype != numpy.int16:
            if not numpy.can_cast(audio.dtype, numpy.int16, casting="safe"):
                raise TypeError(
                    "audio must hold int16 samples, got dtype {}; convert explicitly "
                    "(e.g. numpy.int16 PCM from the WAV, or (audio * 32767).astype(numpy.int16) for floats "
                    "in [-1, 1])".format(audio.dtype)
                )
            audio = audio.astype(numpy.int16)
        audio = numpy.ascontiguousarray(audio, dtype=numpy.dtype("int16").newbyteorder("="))
        return audio.ctypes.data_as(_ShortPtr), int(audio.shape[0]), audio
    if isinstance(audio, array):
        if audio.typecode != "h":
            raise TypeError("audio array must have typecode 'h' (int16), got {!r}".format(audio.typecode))
        samples = audio
    elif isinstance(audio, (bytes, bytearray, memoryview)):
        view = memoryview(audio)
        if view.format == "h" and view.itemsize == 2:
            samples = array("h", view.tobytes())
        elif view.itemsize == 1:
            raw = view.tobytes()
            if len(raw) % 2:
                raise ValueError(
                    "audio bytes must be whole 16-bit samples, got an odd length of {} bytes".format(len(raw))
                )
            samples = array("h")
            samples.frombytes(raw)
        else:
            raise TypeError("audio memoryview must hold int16 ('h') items, got format {!r}".format(view.format))
    elif isinstance(audio, (list, tuple)):
        try:
            samples = array("h", audio)
        except OverflowError:
            raise ValueError("audio samples must be in the int16 range -32768..32767") from None
        except TypeError:
            raise TypeError("audio sequence must hold int samples") from None
    else:
        raise TypeError(
            "audio must be a numpy int16 array, array('h'), bytes-like int16 data or a list of ints, "
            "got {}".format(type(audio).__name__)
        )
    address, count = samples.buffer_info()
    return ctypes.cast(address, _ShortPtr), count, samples


# --- metadata ----------------------------------------------------------------------

class TokenMetadata(object):
    """One token (character) of a transcript with its timing."""

    __slots__ = ("_text", "_timestep", "_start_time")

    def __init__(self, text: str, timestep: int, start_time: float) -> None:
        self._text = text
        self._timestep = timestep
        self._start_time = start_time

    @property
    def text(self) -> str:
        """The text of this token."""
        return self._text

    @property
    def timestep(self) -> int:
        """Position of the token in units of 20 ms."""
        return self._timestep

    @property
    def start_time(self) -> float:
        """Position of the token in seconds."""
        return self._start_time

    def __repr__(self) -> str:
        return "TokenMetadata(text='{}', timestep={}, start_time={})".format(self.text, self.timestep, self.start_time)


class CandidateTranscript(object):
    """One candidate transcript: its tokens and an approximate confidence."""

    __slots__ = ("_tokens", "_confidence")

    def __init__(self, tokens: List[TokenMetadata], confidence: float) -> None:
        self._tokens = tokens
        self._confidence = confidence

    @property
    def tokens(self) -> List[TokenMetadata]:
        """List of TokenMetadata."""
        return list(self._tokens)

    @property
    def confidence(self) -> float:
        """Roughly the sum of the acoustic model's logit values of the tokens."""
        return self._confidence

    def __repr__(self) -> str:
        tokens = "\n".join("  " + line for line in ",\n".join(repr(t) for t in self._tokens).split("\n"))
        return "CandidateTranscript(confidence={}, tokens=[\n{}\n])".format(self.confidence, tokens)


class Metadata(object):
    """The candidate transcripts of one decoding, best first."""

    __slots__ = ("_transcripts",)

    def __init__(self, transcripts: List[CandidateTranscript]) -> None:
        self._transcripts = transcripts

    @property
    def transcripts(self) -> List[CandidateTranscript]:
        """List of CandidateTranscript."""
        return list(self._transcripts)

    def __repr__(self) -> str:
        transcripts = "\n".join("  " + line for line in ",\n".join(repr(t) for t in self._transcripts).split("\n"))
        return "Metadata(transcripts=[\n{}\n])".format(transcripts)


def _take_metadata(pointer: Any) -> Metadata:
    if not pointer:
        raise RuntimeError("libdeepspeech returned no metadata (NULL)")
    try:
        meta = pointer.contents
        transcripts = []
        for i in range(meta.num_transcripts):
            candidate = meta.transcripts[i]
            tokens = [
                TokenMetadata(_decode(t.text or b""), int(t.timestep), float(t.start_time))
                for t in (candidate.tokens[j] for j in range(candidate.num_tokens))
            ]
            transcripts.append(CandidateTranscript(tokens, float(candidate.confidence)))
        return Metadata(transcripts)
    finally:
        library().DS_FreeMetadata(pointer)


# --- the C API under upstream's SWIG names ---------------------------------------------

def CreateModel(aModelPath: Any) -> Tuple[int, Optional[int]]:
    """``(status, handle)`` as upstream; raises ModelFormatError for a truncated/corrupt .tflite.

    The TFLite build of libdeepspeech 0.7.4 follows the model's FlatBuffer offsets without
    checking them and crashes the whole process (SIGSEGV) on a truncated or corrupt file, so
    such a file is refused here, before the library sees it.
    """
    lib = library()
    path = _encode_path(aModelPath, "model path")
    if path is not None and library_info().flavour != _library.FLAVOUR_TENSORFLOW:
        _checks.precheck_tflite(os.fsdecode(path))
    handle = ctypes.c_void_p()
    status = lib.DS_CreateModel(path, ctypes.byref(handle))
    return status, (handle.value if status == ERR_OK else None)


def GetModelBeamWidth(aCtx: int) -> int:
    return int(library().DS_GetModelBeamWidth(aCtx))


def SetModelBeamWidth(aCtx: int, aBeamWidth: Any) -> int:
    return int(library().DS_SetModelBeamWidth(aCtx, _check_uint(aBeamWidth, "beam width")))


def GetModelSampleRate(aCtx: int) -> int:
    return int(library().DS_GetModelSampleRate(aCtx))


def FreeModel(ctx: int) -> None:
    library().DS_FreeModel(ctx)


def EnableExternalScorer(aCtx: int, aScorerPath: Any) -> int:
    return int(library().DS_EnableExternalScorer(aCtx, _encode_path(aScorerPath, "scorer path")))


def DisableExternalScorer(aCtx: int) -> int:
    return int(library().DS_DisableExternalScorer(aCtx))


def SetScorerAlphaBeta(aCtx: int, aAlpha: float, aBeta: float) -> int:
    return int(library().DS_SetScorerAlphaBeta(aCtx, float(aAlpha), float(aBeta)))


def SpeechToText(aCtx: int, aBuffer: Any) -> str:
    pointer, count, keep = _audio_pointer(aBuffer)
    result = library().DS_SpeechToText(aCtx, pointer, count)
    del keep
    return _take_string(result)


def SpeechToTextWithMetadata(aCtx: int, aBuffer: Any, aNumResults: Any) -> Metadata:
    num_results = _check_uint(aNumResults, "num_results")
    pointer, count, keep = _audio_pointer(aBuffer)
    result = library().DS_SpeechToTextWithMetadata(aCtx, pointer, count, num_results)
    del keep
    return _take_metadata(result)


def CreateStream(aCtx: int) -> Tuple[int, Optional[int]]:
    handle = ctypes.c_void_p()
    status = library().DS_CreateStream(aCtx, ctypes.byref(handle))
    return status, (handle.value if status == ERR_OK else None)


def FeedAudioContent(aSctx: int, aBuffer: Any) -> None:
    pointer, count, keep = _audio_pointer(aBuffer)
    library().DS_FeedAudioContent(aSctx, pointer, count)
    del keep


def IntermediateDecode(aSctx: int) -> str:
    return _take_string(library().DS_IntermediateDecode(aSctx))


def IntermediateDecodeWithMetadata(aSctx: int, aNumResults: Any) -> Metadata:
    return _take_metadata(library().DS_IntermediateDecodeWithMetadata(aSctx, _check_uint(aNumResults, "num_results")))


def FinishStream(aSctx: int) -> str:
    """Decode and free the stream (the C function frees it)."""
    return _take_string(library().DS_FinishStream(aSctx))


def FinishStreamWithMetadata(aSctx: int, aNumResults: Any) -> Metadata:
    """Decode with metadata and free the stream (the C function frees it)."""
    return _take_metadata(library().DS_FinishStreamWithMetadata(aSctx, _check_uint(aNumResults, "num_results")))


def FreeStream(aSctx: int) -> None:
    library().DS_FreeStream(aSctx)


def Version() -> str:
    return _take_string(library().DS_Version())


def ErrorCodeToErrorMessage(aErrorCode: int) -> str:
    return _take_string(library().DS_ErrorCodeToErrorMessage(int(aErrorCode)))
