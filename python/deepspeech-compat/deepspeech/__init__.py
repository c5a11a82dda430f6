"""Drop-in ``deepspeech`` 0.7.4: the upstream Python API over the official libdeepspeech.so via ctypes.

Same classes, methods, return values and errors as Mozilla's 0.7.4 binding
(``RuntimeError("CreateModel failed with '<message>' (0x<CODE>)")`` and so on),
for any CPython 3.7+, with numpy optional. Where upstream fails cryptically the
errors are subclasses of the upstream type that also explain the fix (see
``_errors``). Which library is used: ``$DEEPSPEECH_LIBRARY`` or the one embedded
in the package (``deepspeech/lib/libdeepspeech.so``), see ``_library``.
"""
from __future__ import annotations

import os
import warnings
from typing import Any, Optional

from . import impl
from ._checks import check_model_file, diagnose_scorer, explain_model_code
from ._errors import (
    AudioFormatError,
    DeepSpeechError,
    LibraryError,
    ModelFormatError,
    ModelNotFoundError,
    ScorerError,
)
from .impl import CandidateTranscript, Metadata, TokenMetadata
from .impl import Version as version

__all__ = [
    "Model",
    "Stream",
    "Metadata",
    "CandidateTranscript",
    "TokenMetadata",
    "version",
    "library_info",
    "DeepSpeechError",
    "ModelNotFoundError",
    "ModelFormatError",
    "ScorerError",
    "LibraryError",
    "AudioFormatError",
]

library_info = impl.library_info


def _failure(function: str, status: int) -> str:
    """Upstream's wording: ``<Function> failed with '<library message>' (0x<CODE>)``."""
    return "{} failed with '{}' (0x{:X})".format(function, impl.ErrorCodeToErrorMessage(status), status)


class Model(object):
    """
    Class holding a DeepSpeech model

    :param model_path: Path to model file to load
    :type model_path: str
    """

    def __init__(self, model_path: Any) -> None:
        # make sure the attribute is there if CreateModel fails (as upstream)
        self._impl: Optional[int] = None

        info = impl.library_info()
        if model_path is not None and (isinstance(model_path, str) or hasattr(model_path, "__fspath__")):
            path = os.fspath(model_path)
            if isinstance(path, str) and path:
                check_model_file(path, info.flavour, info.path)
        status, handle = impl.CreateModel(model_path)
        if status != impl.ERR_OK:
            message = _failure("CreateModel", status)
            hint = explain_model_code(status)
            raise DeepSpeechError(message + (": " + hint if hint else ""), status)
        self._impl = handle

    def __del__(self) -> None:
        handle = getattr(self, "_impl", None)
        if handle:
            self._impl = None
            try:
                impl.FreeModel(handle)
            except Exception:  # interpreter shutdown: the library may already be gone
                pass

    def _handle(self) -> int:
        if not self._impl:
            raise RuntimeError("Model object is not valid (model creation failed or the model was freed)")
        return self._impl

    def beamWidth(self) -> int:
        """
        Get beam width value used by the model. If setBeamWidth was not called
        before, returns the default value loaded from the model file.

        :return: Beam width value used by the model.
        :type: int
        """
        return impl.GetModelBeamWidth(self._handle())

    def setBeamWidth(self, beam_width: int) -> int:
        """
        Set beam width value used by the model.

        :param beam_width: Beam width; larger is better and slower.
        :type beam_width: int

        :return: Zero on success, non-zero on failure.
        :type: int
        """
        return impl.SetModelBeamWidth(self._handle(), beam_width)

    def sampleRate(self) -> int:
        """
        Return the sample rate expected by the model.

        :return: Sample rate.
        :type: int
        """
        return impl.GetModelSampleRate(self._handle())

    def enableExternalScorer(self, scorer_path: Any) -> None:
        """
        Enable decoding using an external scorer.

        :param scorer_path: The path to the external scorer file.
        :type scorer_path: str

        :throws: RuntimeError on error (ScorerError, which also says why the file was refused)
        """
        status = impl.EnableExternalScorer(self._handle(), scorer_path)
        if status != impl.ERR_OK:
            message = _failure("EnableExternalScorer", status)
            if isinstance(scorer_path, str) or hasattr(scorer_path, "__fspath__"):
                message += ": " + diagnose_scorer(os.fspath(scorer_path))
            raise ScorerError(message, status)

    def disableExternalScorer(self) -> int:
        """
        Disable decoding using an external scorer.

        :return: Zero on success, non-zero (0x2004, no scorer enabled) on failure.
        """
        return impl.DisableExternalScorer(self._handle())

    def setScorerAlphaBeta(self, alpha: float, beta: float) -> int:
        """
        Set hyperparameters alpha and beta of the external scorer.

        As upstream, returns the library's status instead of raising. Upstream
        then drops the values silently when no scorer is enabled (status
        0x2004); here a RuntimeWarning says so, so the loss is never silent:
        call enableExternalScorer() first, then setScorerAlphaBeta().

        :param alpha: Language model weight.
        :type alpha: float

        :param beta: Word insertion weight.
        :type beta: float

        :return: Zero on success, non-zero on failure.
        :type: int
        """
        status = impl.SetScorerAlphaBeta(self._handle(), alpha, beta)
        if status != impl.ERR_OK:
            warnings.warn(
                "setScorerAlphaBeta({}, {}) was not applied: {} - call enableExternalScorer() before "
                "setScorerAlphaBeta()".format(alpha, beta, _failure("SetScorerAlphaBeta", status)),
                RuntimeWarning,
                stacklevel=2,
            )
        return status

    def stt(self, audio_buffer: Any) -> str:
        """
        Use the DeepSpeech model to perform Speech-To-Text.

        :param audio_buffer: A 16-bit, mono raw audio signal at the model's sample rate.
        :type audio_buffer: numpy.int16 array (or array('h'), int16 bytes, list of ints)

        :return: The STT result.
        :type: str
        """
        return impl.SpeechToText(self._handle(), audio_buffer)

    def sttWithMetadata(self, audio_buffer: Any, num_results: int = 1) -> Metadata:
        """
        Use the DeepSpeech model to perform Speech-To-Text and return results including metadata.

        :param audio_buffer: A 16-bit, mono raw audio signal at the model's sample rate.
        :type audio_buffer: numpy.int16 array (or array('h'), int16 bytes, list of ints)

        :param num_results: Maximum number of candidate transcripts to return.
        :type num_results: int

        :return: Metadata object containing candidate transcripts with per-token timing.
        :type: :func:`Metadata`
        """
        return impl.SpeechToTextWithMetadata(self._handle(), audio_buffer, num_results)

    def createStream(self) -> "Stream":
        """
        Create a new streaming inference state.

        :return: Stream object representing the newly created stream
        :type: :func:`Stream`

        :throws: RuntimeError on error
        """
        status, ctx = impl.CreateStream(self._handle())
        if status != impl.ERR_OK:
            raise DeepSpeechError(_failure("CreateStream", status), status)
        stream = Stream(ctx)
        stream._model = self  # keeps the model alive as long as the stream
        return stream


class Stream(object):
    """
    Class wrapping a DeepSpeech stream. The constructor cannot be called directly.
    Use :func:`Model.createStream()`
    """

    def __init__(self, native_stream: Optional[int]) -> None:
        self._impl = native_stream
        self._model: Optional[Model] = None

    def __del__(self) -> None:
        if getattr(self, "_impl", None):
            try:
                self.freeStream()
            except Exception:
                pass

    def feedAudioContent(self, audio_buffer: Any) -> None:
        """
        Feed audio samples to an ongoing streaming inference.

        :param audio_buffer: A 16-bit, mono raw audio signal at the model's sample rate.
        :type audio_buffer: numpy.int16 array (or array('h'), int16 bytes, list of ints)

        :throws: RuntimeError if the stream object is not valid
        """
        if not self._impl:
            raise RuntimeError("Stream object is not valid. Trying to feed an already finished stream?")
        impl.FeedAudioContent(self._impl, audio_buffer)

    def intermediateDecode(self) -> str:
        """
        Compute the intermediate decoding of an ongoing streaming inference.

        :return: The STT intermediate result.
        :type: str

        :throws: RuntimeError if the stream object is not valid
        """
        if not self._impl:
            raise RuntimeError("Stream object is not valid. Trying to decode an already finished stream?")
        return impl.IntermediateDecode(self._impl)

    def intermediateDecodeWithMetadata(self, num_results: int = 1) -> Metadata:
        """
        Compute the intermediate decoding of an ongoing streaming inference, with metadata.

        :param num_results: Maximum number of candidate transcripts to return.
        :type num_results: int

        :return: Metadata object containing candidate transcripts with per-token timing.
        :type: :func:`Metadata`

        :throws: RuntimeError if the stream object is not valid
        """
        if not self._impl:
            raise RuntimeError("Stream object is not valid. Trying to decode an already finished stream?")
        return impl.IntermediateDecodeWithMetadata(self._impl, num_results)

    def finishStream(self) -> str:
        """
        Compute the final decoding and end the stream; it must not be used afterwards.

        :return: The STT result.
        :type: str

        :throws: RuntimeError if the stream object is not valid
        """
        if not self._impl:
            raise RuntimeError("Stream object is not valid. Trying to finish an already finished stream?")
        handle, self._impl = self._impl, None
        return impl.FinishStream(handle)

    def finishStreamWithMetadata(self, num_results: int = 1) -> Metadata:
        """
        Compute the final decoding with metadata and end the stream; it must not be used afterwards.

        :param num_results: Maximum number of candidate transcripts to return.
        :type num_results: int

        :return: Metadata object containing candidate transcripts with per-token timing.
        :type: :func:`Metadata`

        :throws: RuntimeError if the stream object is not valid
        """
        if not self._impl:
            raise RuntimeError("Stream object is not valid. Trying to finish an already finished stream?")
        impl._check_uint(num_results, "num_results")
        handle, self._impl = self._impl, None
        return impl.FinishStreamWithMetadata(handle, num_results)

    def freeStream(self) -> None:
        """
        Destroy a streaming state without decoding the computed logits.

        :throws: RuntimeError if the stream object is not valid
        """
        if not self._impl:
            raise RuntimeError("Stream object is not valid. Trying to free an already finished stream?")
        handle, self._impl = self._impl, None
        impl.FreeStream(handle)
