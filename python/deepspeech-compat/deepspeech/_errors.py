"""Exception types of the compat binding.

Every error that upstream's SWIG binding raises as ``RuntimeError`` is still a
``RuntimeError`` here (code written for upstream keeps catching it); the
subclasses only add an explanation and the fix.
"""
from __future__ import annotations

from typing import Optional


class DeepSpeechError(RuntimeError):
    """A libdeepspeech call failed; ``code`` is the library's error code (or None)."""

    def __init__(self, message: str, code: Optional[int] = None) -> None:
        super().__init__(message)
        self.code = code


class ModelNotFoundError(DeepSpeechError):
    """The model path does not name a readable file."""


class ModelFormatError(DeepSpeechError):
    """The model file's format does not fit the loaded library's flavour (TFLite / TensorFlow)."""


class ScorerError(DeepSpeechError):
    """The external scorer could not be enabled."""


class LibraryError(OSError):
    """libdeepspeech.so cannot be found or cannot be loaded into this process."""


class AudioFormatError(ValueError):
    """A WAV file is not 16-bit mono PCM at the model's sample rate."""
